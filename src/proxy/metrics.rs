//! Prometheus metrics of the proxy (`prometheus` crate, as the HTTP service), prefixed
//! `ragwall_proxy_`, served at `/_ragwall/metrics`. Each proxy has its own registry. Routes are
//! labelled by template (`/collections/{c}/points/search`), never by raw path; collection labels
//! appear only on point counters, which only collections Qdrant returned points from reach.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::policy::Action;

const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The proxy's metrics and their registry.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    scan_duration: HistogramVec,
    points: IntCounterVec,
    stamp_mismatch: IntCounterVec,
    errors: IntCounterVec,
    fail_open: IntCounterVec,
    ingest: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyMetrics {
    pub fn new() -> Self {
        let r = Registry::new();
        ProxyMetrics {
            requests: counter(
                &r,
                "ragwall_proxy_requests_total",
                "Requests proxied, by route template, method and status.",
                &["route", "method", "status"],
            ),
            duration: histogram(
                &r,
                "ragwall_proxy_request_duration_seconds",
                "Time from request to response, by route template.",
                &["route"],
            ),
            scan_duration: histogram(
                &r,
                "ragwall_proxy_scan_duration_seconds",
                "Time spent deciding the points of one response.",
                &[],
            ),
            points: counter(
                &r,
                "ragwall_proxy_points_total",
                "Points in responses, by collection, action and whether a stamp decided.",
                &["collection", "action", "stamped"],
            ),
            stamp_mismatch: counter(
                &r,
                "ragwall_proxy_stamp_mismatch_total",
                "Stamps not trusted (point rescanned), by collection and reason.",
                &["collection", "why"],
            ),
            errors: counter(
                &r,
                "ragwall_proxy_errors_total",
                "Requests answered with a ragwall error, by kind.",
                &["kind"],
            ),
            fail_open: counter(
                &r,
                "ragwall_proxy_fail_open_total",
                "Responses passed unscanned because fail_open is set, by error kind.",
                &["kind"],
            ),
            ingest: counter(
                &r,
                "ragwall_proxy_ingest_points_total",
                "Upserted payloads scanned, by collection and action.",
                &["collection", "action"],
            ),
            registry: r,
        }
    }

    /// Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn scan(&self, elapsed: Duration) {
        self.scan_duration
            .with_label_values(&[] as &[&str])
            .observe(elapsed.as_secs_f64());
    }

    pub fn point(&self, collection: &str, action: Action, stamped: bool) {
        let stamped = if stamped { "true" } else { "false" };
        self.points
            .with_label_values(&[collection, action.as_str(), stamped])
            .inc();
    }

    pub fn stamp_mismatch(&self, collection: &str, why: &str) {
        self.stamp_mismatch
            .with_label_values(&[collection, why])
            .inc();
    }

    pub fn error(&self, kind: &str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    pub fn fail_open(&self, kind: &str) {
        self.fail_open.with_label_values(&[kind]).inc();
    }

    pub fn ingest(&self, collection: &str, action: Action) {
        self.ingest
            .with_label_values(&[collection, action.as_str()])
            .inc();
    }
}

/// Qdrant 1.18.3's REST paths (its OpenAPI document), the only route labels besides `other`:
/// a label set that clients cannot grow, whatever paths they send (authenticated or not).
const QDRANT_ROUTES: [&str; 60] = [
    "/",
    "/aliases",
    "/cluster",
    "/cluster/peer/{peer_id}",
    "/cluster/recover",
    "/cluster/telemetry",
    "/collections",
    "/collections/aliases",
    "/collections/{c}",
    "/collections/{c}/aliases",
    "/collections/{c}/cluster",
    "/collections/{c}/exists",
    "/collections/{c}/facet",
    "/collections/{c}/index",
    "/collections/{c}/index/{field_name}",
    "/collections/{c}/optimizations",
    "/collections/{c}/points",
    "/collections/{c}/points/batch",
    "/collections/{c}/points/count",
    "/collections/{c}/points/delete",
    "/collections/{c}/points/discover",
    "/collections/{c}/points/discover/batch",
    "/collections/{c}/points/payload",
    "/collections/{c}/points/payload/clear",
    "/collections/{c}/points/payload/delete",
    "/collections/{c}/points/query",
    "/collections/{c}/points/query/batch",
    "/collections/{c}/points/query/groups",
    "/collections/{c}/points/recommend",
    "/collections/{c}/points/recommend/batch",
    "/collections/{c}/points/recommend/groups",
    "/collections/{c}/points/scroll",
    "/collections/{c}/points/search",
    "/collections/{c}/points/search/batch",
    "/collections/{c}/points/search/groups",
    "/collections/{c}/points/search/matrix/offsets",
    "/collections/{c}/points/search/matrix/pairs",
    "/collections/{c}/points/vectors",
    "/collections/{c}/points/vectors/delete",
    "/collections/{c}/points/{id}",
    "/collections/{c}/shards",
    "/collections/{c}/shards/delete",
    "/collections/{c}/shards/{shard_id}/snapshot",
    "/collections/{c}/shards/{shard_id}/snapshots",
    "/collections/{c}/shards/{shard_id}/snapshots/recover",
    "/collections/{c}/shards/{shard_id}/snapshots/upload",
    "/collections/{c}/shards/{shard_id}/snapshots/{snapshot_name}",
    "/collections/{c}/snapshots",
    "/collections/{c}/snapshots/recover",
    "/collections/{c}/snapshots/upload",
    "/collections/{c}/snapshots/{snapshot_name}",
    "/collections/{c}/vectors/{vector_name}",
    "/healthz",
    "/issues",
    "/livez",
    "/metrics",
    "/readyz",
    "/snapshots",
    "/snapshots/{snapshot_name}",
    "/telemetry",
];

/// The route template `path` matches (a `{…}` segment matches any one segment; literal segments
/// win over placeholders), or `other`. Always one of [`QDRANT_ROUTES`] or `other`.
pub fn route_label(path: &str) -> &'static str {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut best: Option<(&'static str, usize)> = None;
    for t in QDRANT_ROUTES {
        let tsegs: Vec<&str> = t.split('/').filter(|s| !s.is_empty()).collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut literal = 0;
        let fits = tsegs.iter().zip(&segs).all(|(t, s)| {
            if t.starts_with('{') {
                true
            } else {
                literal += 1;
                t == s
            }
        });
        if fits && best.is_none_or(|(_, l)| literal > l) {
            best = Some((t, literal));
        }
    }
    best.map_or("other", |(t, _)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templated() {
        assert_eq!(
            route_label("/collections/docs/points/search"),
            "/collections/{c}/points/search"
        );
        assert_eq!(
            route_label("/collections/docs/points/42"),
            "/collections/{c}/points/{id}"
        );
        assert_eq!(
            route_label("/collections/docs/points/6a1b7f5e-3c1d-4d8e-9f00-2b9e0c1d2e3f"),
            "/collections/{c}/points/{id}"
        );
        assert_eq!(route_label("/"), "/");
        assert_eq!(route_label("/a/b/c/d/e/f/g"), "other");
        assert_eq!(
            route_label("/collections/docs/points/delete"),
            "/collections/{c}/points/delete",
            "a literal segment wins over {{id}}"
        );
    }

    #[test]
    fn labels_are_a_fixed_set_whatever_the_paths() {
        let m = ProxyMetrics::new();
        for i in 0..2000 {
            let path = format!("/word{i}/x");
            let method = http::Method::from_bytes(format!("M{i}").as_bytes()).expect("method");
            m.request(
                route_label(&path),
                crate::http::method_label(&method),
                401,
                Duration::ZERO,
            );
            m.request(
                route_label(&format!("/collections/c{i}/points/search")),
                "POST",
                200,
                Duration::ZERO,
            );
        }
        let series = m
            .render()
            .lines()
            .filter(|l| l.starts_with("ragwall_proxy_requests_total"))
            .count();
        assert_eq!(series, 2, "{}", m.render());
    }

    #[test]
    fn renders_with_the_prefix() {
        let m = ProxyMetrics::new();
        m.point("docs", Action::Quarantine, false);
        m.request("/", "GET", 200, Duration::from_millis(2));
        let text = m.render();
        assert!(text.contains("ragwall_proxy_points_total{action=\"quarantine\",collection=\"docs\",stamped=\"false\"} 1"), "{text}");
        assert!(text.contains("ragwall_proxy_request_duration_seconds_bucket"));
    }
}
