//! In-process tests of failure paths the real model cannot be made to take on demand: a
//! detector that fails or reports overload after a successful warm-up. Everything else is tested
//! over real HTTP with the real model in `tests/server`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::App;
use crate::config::Config;
use crate::detect::{DetectError, Detection, Detector, Detectors};

/// Scores the first call (the warm-up), then fails every call the way it is told.
#[derive(Debug)]
struct FailsAfterWarmUp {
    calls: AtomicUsize,
    overloaded: bool,
}

impl Detector for FailsAfterWarmUp {
    fn id(&self) -> String {
        "test:fails-after-warm-up".into()
    }

    fn detect(&self, texts: &[&str]) -> Result<Vec<Detection>, DetectError> {
        if self.calls.fetch_add(1, Ordering::Relaxed) == 0 {
            return Ok(vec![Detection::default(); texts.len()]);
        }
        Err(if self.overloaded {
            DetectError::Overloaded("7 windows queued".into())
        } else {
            DetectError::Failed("session run failed: /secret/path".into())
        })
    }
}

async fn scan_with(overloaded: bool) -> (StatusCode, Option<String>, Value) {
    let mut cfg = Config::default();
    cfg.server.retry_after_secs = 3;
    let detectors = Detectors {
        detector: Arc::new(FailsAfterWarmUp {
            calls: AtomicUsize::new(0),
            overloaded,
        }),
        classifier: None,
        rules: None,
    };
    let app = App::new(&cfg, detectors).expect("app");
    let warm = app.clone();
    tokio::task::spawn_blocking(move || warm.warm_up())
        .await
        .expect("task")
        .expect("warm-up");
    let req = Request::post("/v1/scan")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"chunks": [{"id": 1, "text": "hello"}]}"#))
        .expect("request");
    let res = app.router().oneshot(req).await.expect("infallible");
    let status = res.status();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, retry, serde_json::from_slice(&bytes).expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detector_failure_is_500_and_never_a_verdict() {
    let (status, retry, v) = scan_with(false).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(retry, None);
    assert_eq!(v["error"]["kind"], "detector_failed");
    assert!(v.get("verdicts").is_none());
    assert!(
        !v.to_string().contains("/secret/path"),
        "detail stays in the log: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detector_overload_is_503_with_retry_after() {
    let (status, retry, v) = scan_with(true).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.as_deref(), Some("3"));
    assert_eq!(v["error"]["kind"], "overloaded");
    assert!(v.get("verdicts").is_none());
}
