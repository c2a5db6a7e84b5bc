//! Prometheus metrics, one registry per [`super::App`] (so tests see only their own server).
//!
//! Every name starts with `ragwall_`, every histogram has explicit buckets, and routes are
//! labelled by their matched path (`/v1/scan`, never the raw URI, so cardinality is bounded;
//! unmatched requests are `unmatched`):
//!
//! - `ragwall_http_requests_total{route,method,status}`, `ragwall_http_request_duration_seconds{route}`,
//!   `ragwall_http_requests_in_flight`, `ragwall_http_errors_total{kind}`;
//! - `ragwall_verdicts_total{route,action}`, `ragwall_verdict_reasons_total{route,reason}` (reason
//!   codes are bounded: `score`, `finding.<kind>`, `rule.<id>` of the loaded packs, `limit.*`),
//!   `ragwall_chunks_unscanned_total{route}`, `ragwall_audit_lines_total`;
//! - `ragwall_inspect_duration_seconds` (one request's normalize + detect + policy) and
//!   `ragwall_detector_duration_seconds` (one detector batch: classifier queueing, cache and
//!   inference, plus rules): the classifier latency seen by requests;
//! - from the classifier's own counters, read at scrape time:
//!   `ragwall_classifier_batch_size` (histogram over `queue::BATCH_BUCKETS`),
//!   `ragwall_classifier_cache_{hits,misses}_total`, `ragwall_classifier_queue_depth_windows`,
//!   `ragwall_classifier_inference_seconds_total`, `ragwall_classifier_{overloaded,abandoned}_total`;
//! - `ragwall_ready` (1 once the model is warmed up).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::chunk::Verdict;
use crate::classifier::ClassifierStats;
use crate::classifier::queue::BATCH_BUCKETS;
use crate::detect::{DetectError, Detection, Detector};

/// Latency buckets for HTTP requests and inspections, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The service's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_in_flight: IntGauge,
    pub http_errors: IntCounterVec,
    pub verdicts: IntCounterVec,
    pub reasons: IntCounterVec,
    pub unscanned: IntCounterVec,
    pub audit_lines: IntCounter,
    pub inspect_duration: Histogram,
    pub detector_duration: Histogram,
    pub ready: IntGauge,
}

fn latency(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

impl Metrics {
    /// Registers every metric; `classifier` adds the classifier's counters.
    pub fn new(classifier: Option<Arc<ClassifierStats>>) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            http_requests: IntCounterVec::new(
                Opts::new(
                    "ragwall_http_requests_total",
                    "HTTP requests by route, method and status",
                ),
                &["route", "method", "status"],
            )?,
            http_duration: HistogramVec::new(
                latency(
                    "ragwall_http_request_duration_seconds",
                    "HTTP request latency by route",
                ),
                &["route"],
            )?,
            http_in_flight: IntGauge::new(
                "ragwall_http_requests_in_flight",
                "HTTP requests being served",
            )?,
            http_errors: IntCounterVec::new(
                Opts::new("ragwall_http_errors_total", "Error answers by kind"),
                &["kind"],
            )?,
            verdicts: IntCounterVec::new(
                Opts::new("ragwall_verdicts_total", "Verdicts by route and action"),
                &["route", "action"],
            )?,
            reasons: IntCounterVec::new(
                Opts::new(
                    "ragwall_verdict_reasons_total",
                    "Verdict reasons by route and code",
                ),
                &["route", "reason"],
            )?,
            unscanned: IntCounterVec::new(
                Opts::new(
                    "ragwall_chunks_unscanned_total",
                    "Chunks that got a fail-closed verdict without being scanned",
                ),
                &["route"],
            )?,
            audit_lines: IntCounter::new("ragwall_audit_lines_total", "Audit lines written")?,
            inspect_duration: Histogram::with_opts(latency(
                "ragwall_inspect_duration_seconds",
                "Time to inspect one request's chunks (normalize, detectors, policy)",
            ))?,
            detector_duration: Histogram::with_opts(latency(
                "ragwall_detector_duration_seconds",
                "Time of one detector batch (classifier queueing, cache and inference; rules)",
            ))?,
            ready: IntGauge::new("ragwall_ready", "1 once the model is loaded and warmed up")?,
            registry,
        };
        m.registry.register(Box::new(m.http_requests.clone()))?;
        m.registry.register(Box::new(m.http_duration.clone()))?;
        m.registry.register(Box::new(m.http_in_flight.clone()))?;
        m.registry.register(Box::new(m.http_errors.clone()))?;
        m.registry.register(Box::new(m.verdicts.clone()))?;
        m.registry.register(Box::new(m.reasons.clone()))?;
        m.registry.register(Box::new(m.unscanned.clone()))?;
        m.registry.register(Box::new(m.audit_lines.clone()))?;
        m.registry.register(Box::new(m.inspect_duration.clone()))?;
        m.registry.register(Box::new(m.detector_duration.clone()))?;
        m.registry.register(Box::new(m.ready.clone()))?;
        if let Some(stats) = classifier {
            m.registry
                .register(Box::new(ClassifierCollector::new(stats)?))?;
        }
        Ok(m)
    }

    /// Counts a request's verdicts.
    pub fn record_verdicts(&self, route: &str, verdicts: &[Verdict]) {
        for v in verdicts {
            self.verdicts
                .with_label_values(&[route, v.action.as_str()])
                .inc();
            for r in &v.reasons {
                self.reasons.with_label_values(&[route, &r.code]).inc();
            }
            if !v.scanned {
                self.unscanned.with_label_values(&[route]).inc();
            }
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

/// A detector that times each batch of the detector it wraps; identity and calibration are the
/// wrapped detector's, so verdicts are unchanged.
#[derive(Debug)]
pub struct TimedDetector {
    inner: Arc<dyn Detector>,
    duration: Histogram,
}

impl TimedDetector {
    pub fn new(inner: Arc<dyn Detector>, duration: Histogram) -> Self {
        TimedDetector { inner, duration }
    }
}

impl Detector for TimedDetector {
    fn id(&self) -> String {
        self.inner.id()
    }

    fn calibrated_threshold(&self) -> Option<f32> {
        self.inner.calibrated_threshold()
    }

    fn calibrated_tag_threshold(&self) -> Option<f32> {
        self.inner.calibrated_tag_threshold()
    }

    fn is_evidence(&self) -> bool {
        self.inner.is_evidence()
    }

    fn detect(&self, texts: &[&str]) -> Result<Vec<Detection>, DetectError> {
        let started = Instant::now();
        let out = self.inner.detect(texts);
        self.duration.observe(started.elapsed().as_secs_f64());
        out
    }
}

/// Exports the classifier's atomic counters at scrape time.
struct ClassifierCollector {
    stats: Arc<ClassifierStats>,
    descs: Vec<Desc>,
}

const CLASSIFIER_FAMILIES: [(&str, &str); 8] = [
    (
        "ragwall_classifier_batch_size",
        "Windows per inference batch",
    ),
    (
        "ragwall_classifier_cache_hits_total",
        "Texts whose score came from the cache",
    ),
    (
        "ragwall_classifier_cache_misses_total",
        "Texts that needed inference",
    ),
    (
        "ragwall_classifier_queue_depth_windows",
        "Windows waiting for an inference worker",
    ),
    (
        "ragwall_classifier_inference_seconds_total",
        "Time spent in model inference",
    ),
    (
        "ragwall_classifier_windows_total",
        "Windows scored by the model",
    ),
    (
        "ragwall_classifier_overloaded_total",
        "Submissions refused because the queue was full",
    ),
    (
        "ragwall_classifier_abandoned_total",
        "Jobs dropped because their caller had gone",
    ),
];

impl ClassifierCollector {
    fn new(stats: Arc<ClassifierStats>) -> Result<Self, prometheus::Error> {
        let descs = CLASSIFIER_FAMILIES
            .iter()
            .map(|(name, help)| {
                Desc::new(
                    (*name).to_owned(),
                    (*help).to_owned(),
                    Vec::new(),
                    HashMap::new(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(ClassifierCollector { stats, descs })
    }
}

fn family(name: &str, help: &str, kind: MetricType, metric: proto::Metric) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_owned());
    f.set_help(help.to_owned());
    f.set_field_type(kind);
    f.set_metric(vec![metric]);
    f
}

fn counter(name: &str, help: &str, value: f64) -> MetricFamily {
    let mut c = proto::Counter::default();
    c.set_value(value);
    let mut m = proto::Metric::default();
    m.set_counter(c);
    family(name, help, MetricType::COUNTER, m)
}

impl Collector for ClassifierCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let q = &self.stats.queue;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let help = |i: usize| CLASSIFIER_FAMILIES[i].1;

        // BATCH_BUCKETS ends with usize::MAX, which is the +Inf bucket the encoder adds itself.
        let mut cumulative = 0u64;
        let mut buckets = Vec::new();
        for (i, &bound) in BATCH_BUCKETS.iter().enumerate() {
            cumulative += load(&q.batch_size_buckets[i]);
            if bound != usize::MAX {
                let mut b = proto::Bucket::default();
                b.set_upper_bound(bound as f64);
                b.set_cumulative_count(cumulative);
                buckets.push(b);
            }
        }
        let mut h = proto::Histogram::default();
        h.set_bucket(buckets);
        h.set_sample_count(cumulative);
        h.set_sample_sum(load(&q.windows) as f64);
        let mut hm = proto::Metric::default();
        hm.set_histogram(h);

        let mut depth = proto::Gauge::default();
        depth.set_value(q.queued_windows.load(Ordering::Relaxed) as f64);
        let mut dm = proto::Metric::default();
        dm.set_gauge(depth);

        vec![
            family(CLASSIFIER_FAMILIES[0].0, help(0), MetricType::HISTOGRAM, hm),
            counter(
                CLASSIFIER_FAMILIES[1].0,
                help(1),
                load(&self.stats.cache_hits) as f64,
            ),
            counter(
                CLASSIFIER_FAMILIES[2].0,
                help(2),
                load(&self.stats.cache_misses) as f64,
            ),
            family(CLASSIFIER_FAMILIES[3].0, help(3), MetricType::GAUGE, dm),
            counter(
                CLASSIFIER_FAMILIES[4].0,
                help(4),
                load(&q.inference_nanos) as f64 / 1e9,
            ),
            counter(CLASSIFIER_FAMILIES[5].0, help(5), load(&q.windows) as f64),
            counter(
                CLASSIFIER_FAMILIES[6].0,
                help(6),
                load(&q.overloaded) as f64,
            ),
            counter(CLASSIFIER_FAMILIES[7].0, help(7), load(&q.abandoned) as f64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_histogram_is_cumulative_with_explicit_buckets() {
        let stats = Arc::new(ClassifierStats::default());
        stats.queue.batch_size_buckets[0].store(2, Ordering::Relaxed); // size 1
        stats.queue.batch_size_buckets[3].store(1, Ordering::Relaxed); // size ≤ 8
        stats.queue.batch_size_buckets[7].store(1, Ordering::Relaxed); // > 64
        stats.queue.windows.store(2 + 7 + 100, Ordering::Relaxed);
        stats.cache_hits.store(5, Ordering::Relaxed);
        let m = Metrics::new(Some(stats)).expect("metrics");
        let text = m.render().expect("render");
        for line in [
            "ragwall_classifier_batch_size_bucket{le=\"1\"} 2",
            "ragwall_classifier_batch_size_bucket{le=\"4\"} 2",
            "ragwall_classifier_batch_size_bucket{le=\"8\"} 3",
            "ragwall_classifier_batch_size_bucket{le=\"64\"} 3",
            "ragwall_classifier_batch_size_bucket{le=\"+Inf\"} 4",
            "ragwall_classifier_batch_size_count 4",
            "ragwall_classifier_batch_size_sum 109",
            "ragwall_classifier_cache_hits_total 5",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("ragwall_inspect_duration_seconds_bucket{le=\"0.001\"} 0"));
    }
}
