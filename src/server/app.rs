//! The service's state ([`App`]) and its router ([`App::router`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use tokio::sync::Semaphore;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ServerError;
use super::audit::{AuditLog, Entry};
use super::config::ServerConfig;
use super::errors::ApiError;
use super::handlers;
use super::metrics::{Metrics, TimedDetector};
use super::middleware::{self, Permit};
use crate::chunk::{Chunk, Verdict};
use crate::classifier::Classifier;
use crate::config::Config;
use crate::detect::Detectors;
use crate::firewall::Firewall;
use crate::http::auth::{ApiKeys, AuthLayer};

/// The service: firewall, limits, metrics, audit log and readiness. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    fw: Firewall,
    classifier: Option<Arc<Classifier>>,
    cfg: ServerConfig,
    metrics: Metrics,
    audit: Option<AuditLog>,
    keys: Option<Arc<ApiKeys>>,
    limiter: Arc<Semaphore>,
    ready: AtomicBool,
}

/// Text of the warm-up inspection (benign; it only has to run the model once).
const WARM_UP: &str = "Refunds are processed within 30 days of the request.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ragwall",
        description = "Retrieval firewall: scans retrieved chunks for indirect prompt injection \
                       before they reach the prompt."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "firewall", description = "Scan and guard retrieved chunks"),
        (name = "operations", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

impl App {
    /// Builds the service from a validated config and its detectors. Loads API keys and opens
    /// the audit log; does not warm the model up (see [`App::warm_up`]).
    pub fn new(cfg: &Config, detectors: Detectors) -> Result<Self, ServerError> {
        cfg.server.validate().map_err(ServerError::Config)?;
        let metrics = Metrics::new(detectors.classifier.as_ref().map(|c| Arc::clone(c.stats())))
            .map_err(|e| ServerError::Metrics(e.to_string()))?;
        let timed = Arc::new(TimedDetector::new(
            detectors.detector,
            metrics.detector_duration.clone(),
        ));
        let fw = Firewall::new(cfg, timed)?;
        let keys = ApiKeys::from_config(&cfg.server.auth)?.map(Arc::new);
        if keys.is_none() {
            tracing::warn!("no API keys configured: /v1/* is open to anyone who can connect");
        }
        let audit = match &cfg.server.audit_log {
            Some(p) => Some(AuditLog::open(p, cfg.server.audit_fsync)?),
            None => None,
        };
        Ok(App(Arc::new(Inner {
            fw,
            classifier: detectors.classifier,
            limiter: Arc::new(Semaphore::new(cfg.server.max_concurrent_requests)),
            cfg: cfg.server.clone(),
            metrics,
            audit,
            keys,
            ready: AtomicBool::new(false),
        })))
    }

    pub fn firewall(&self) -> &Firewall {
        &self.0.fw
    }

    pub fn classifier(&self) -> Option<&Arc<Classifier>> {
        self.0.classifier.as_ref()
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.cfg
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn audit(&self) -> Option<&AuditLog> {
        self.0.audit.as_ref()
    }

    pub(crate) fn limiter(&self) -> Arc<Semaphore> {
        Arc::clone(&self.0.limiter)
    }

    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    /// Runs one inspection through the whole pipeline (loading ONNX Runtime's kernels) and
    /// marks the service ready. Blocking: call it from a blocking thread.
    pub fn warm_up(&self) -> Result<(), ServerError> {
        let started = Instant::now();
        let v = self
            .0
            .fw
            .inspect(&[Chunk::new("warm-up", WARM_UP)])
            .map_err(|e| ServerError::WarmUp(e.to_string()))?;
        if v.len() != 1 || !v[0].scanned {
            return Err(ServerError::WarmUp("warm-up chunk was not scanned".into()));
        }
        self.0.ready.store(true, Ordering::Release);
        self.0.metrics.ready.set(1);
        tracing::info!(
            millis = started.elapsed().as_millis() as u64,
            "warmed up, ready"
        );
        Ok(())
    }

    /// Inspects `chunks` on a blocking thread (holding `permit` until done), writes the audit
    /// lines and counts the verdicts. Returns the chunks with their verdicts, in order.
    pub async fn inspect(
        &self,
        route: &'static str,
        request_id: &str,
        chunks: Vec<Chunk>,
        permit: Permit,
    ) -> Result<(Vec<Chunk>, Vec<Verdict>), ApiError> {
        let max = self.0.fw.limits().max_chunks_per_call;
        if chunks.len() > max {
            return Err(ApiError::TooManyChunks {
                got: chunks.len(),
                max,
            });
        }
        let app = self.clone();
        let rid = request_id.to_owned();
        let span = tracing::Span::current();
        let started = Instant::now();
        let (chunks, verdicts) = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let _permit = permit;
            let inner = &app.0;
            let verdicts = inner
                .fw
                .inspect(&chunks)
                .map_err(|e| ApiError::from_firewall(e, inner.cfg.retry_after_secs))?;
            if verdicts.len() != chunks.len() {
                return Err(ApiError::Internal(format!(
                    "{} verdicts for {} chunks",
                    verdicts.len(),
                    chunks.len()
                )));
            }
            if let Some(audit) = &inner.audit {
                let model = inner
                    .classifier
                    .as_ref()
                    .map(|c| c.manifest().model_sha256());
                let entry = Entry {
                    request_id: &rid,
                    route,
                    model_sha256: model,
                };
                let n = audit
                    .record(entry, &verdicts)
                    .map_err(|e| ApiError::Audit(e.to_string()))?;
                inner.metrics.audit_lines.inc_by(n as u64);
            }
            Ok((chunks, verdicts))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("inspection task failed: {e}")))??;
        let m = &self.0.metrics;
        m.inspect_duration.observe(started.elapsed().as_secs_f64());
        m.record_verdicts(route, &verdicts);
        Ok((chunks, verdicts))
    }

    /// The routes and the OpenAPI document generated from them.
    fn routes(&self) -> (Router<App>, utoipa::openapi::OpenApi) {
        let cfg = &self.0.cfg;
        // route_layer applies to the routes added before it: scan and guard get readiness,
        // concurrency and deadline; every /v1 route gets the API keys.
        let mut v1 = OpenApiRouter::<App>::with_openapi(ApiDoc::openapi())
            .routes(routes!(handlers::scan))
            .routes(routes!(handlers::guard))
            .route_layer(from_fn_with_state(self.clone(), middleware::deadline))
            .route_layer(from_fn_with_state(self.clone(), middleware::concurrency))
            .route_layer(from_fn_with_state(self.clone(), middleware::read_body))
            .route_layer(from_fn_with_state(self.clone(), middleware::ready))
            .route_layer(DefaultBodyLimit::max(cfg.max_body_bytes))
            .routes(routes!(handlers::model));
        if let Some(keys) = &self.0.keys {
            v1 = v1.route_layer(AuthLayer::new(Arc::clone(keys)));
        }
        v1.routes(routes!(handlers::healthz))
            .routes(routes!(handlers::readyz))
            .routes(routes!(handlers::metrics))
            .split_for_parts()
    }

    /// The OpenAPI document of the service.
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        self.routes().1
    }

    /// The whole HTTP app. Serve it with [`super::serve`], or bind it yourself.
    pub fn router(&self) -> Router {
        let (router, doc) = self.routes();
        let doc = Arc::new(doc);
        router
            .route(
                "/openapi.json",
                axum::routing::get(move || {
                    let doc = Arc::clone(&doc);
                    async move { axum::Json(doc.as_ref().clone()) }
                }),
            )
            .fallback(handlers::not_found)
            .method_not_allowed_fallback(handlers::method_not_allowed)
            .layer(from_fn_with_state(self.clone(), middleware::track))
            .layer(from_fn(middleware::request_id))
            .layer(axum::middleware::map_response(
                crate::http::listen::close_after_refusal,
            ))
            .with_state(self.clone())
    }
}
