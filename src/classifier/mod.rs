//! The ONNX prompt-injection classifier, as a [`Detector`].
//!
//! Contract:
//! - a model is any sequence-classification ONNX graph with a Hugging Face `tokenizer.json` and
//!   a `model.toml` manifest whose sha256s match (see [`manifest`]); a mismatch refuses to load;
//! - every text is scored whole: overlapping windows ([`windows`]), score = max over windows,
//!   and the worst window's byte span is reported;
//! - inference runs on dedicated threads behind a bounded queue ([`queue`]); overload is an
//!   immediate `DetectError::Overloaded`, failures are `DetectError::Failed` — never a score;
//! - scores are cached by (model sha256, sha256 of the text) in an LRU, so a repeated chunk
//!   costs a hash instead of an inference.

pub mod manifest;
pub mod model;
pub mod queue;
pub mod runtime;
pub mod windows;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::config::ClassifierConfig;
use crate::detect::{DetectError, Detection, Detector};
use crate::finding::{Finding, FindingKind, Severity, Span};
use manifest::{ManifestError, ModelFiles};
use queue::{Batcher, QueueLimits, QueueStats};
use runtime::{Device, Placement, RuntimeError, SessionOptions};
use windows::Windowing;

/// Name of the default model's directory under `models/`.
pub const DEFAULT_MODEL: &str = "ragwall-minilm-injection";

/// Why the classifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("model: {0}")]
    Model(String),
    #[error(
        "default model not found: looked for models/{DEFAULT_MODEL} in the working directory and \
         beside the executable; set classifier.model_dir"
    )]
    NoDefaultModel,
}

/// Cache and queue counters, for `/metrics` and benches.
#[derive(Debug, Default)]
pub struct ClassifierStats {
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub queue: Arc<QueueStats>,
}

/// Cached result for one text: score and worst-window span.
type Cached = (f32, (usize, usize));

/// The classifier detector. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Classifier {
    files: ModelFiles,
    tokenizer: Tokenizer,
    windowing: Windowing,
    batcher: Batcher,
    cache: Option<Mutex<LruCache<[u8; 32], Cached>>>,
    stats: Arc<ClassifierStats>,
    placement: Placement,
    report_threshold: f32,
}

/// Finds the default model directory (working directory, then beside the executable).
pub fn default_model_dir() -> Option<PathBuf> {
    let rel = Path::new("models").join(DEFAULT_MODEL);
    let mut roots: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    roots
        .into_iter()
        .map(|r| r.join(&rel))
        .find(|p| p.join(manifest::MANIFEST_FILE).exists())
}

impl Classifier {
    /// Loads the model the config names (or the default one) and starts its workers.
    pub fn from_config(cfg: &ClassifierConfig) -> Result<Self, ClassifierError> {
        let dir = match &cfg.model_dir {
            Some(d) => d.clone(),
            None => default_model_dir().ok_or(ClassifierError::NoDefaultModel)?,
        };
        Self::new(ModelFiles::from_dir(&dir)?, cfg)
    }

    /// Builds a classifier from verified model files (from a directory or from bytes).
    pub fn new(files: ModelFiles, cfg: &ClassifierConfig) -> Result<Self, ClassifierError> {
        let mut tokenizer = Tokenizer::from_bytes(&files.tokenizer)
            .map_err(|e| ClassifierError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| ClassifierError::Tokenizer(e.to_string()))?;
        let window = cfg.window_tokens.unwrap_or(files.manifest.max_length);
        if window > files.manifest.max_length {
            return Err(ClassifierError::Model(format!(
                "window_tokens {window} exceeds the model's max_length {}",
                files.manifest.max_length
            )));
        }
        let stride = cfg.stride_tokens.unwrap_or(window / 2);
        let windowing =
            Windowing::new(&tokenizer, window, stride).map_err(ClassifierError::Tokenizer)?;
        let pad_id = ["[PAD]", "<pad>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t))
            .unwrap_or(0) as i64;

        let env = runtime::environment(cfg.ort_dylib.as_deref())?;
        let device = cfg.device.parse::<Device>()?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let (workers, intra_threads) =
            runtime::plan_threads(cfg.workers, cfg.intra_threads, device, cores);
        let opts = SessionOptions {
            device,
            allow_cpu_fallback: cfg.allow_cpu_fallback,
            intra_threads,
        };
        let mut models = Vec::with_capacity(workers);
        let mut placement = None;
        for _ in 0..workers {
            let (session, p) = runtime::build_session(env, &files.model, &opts)?;
            placement.get_or_insert(p);
            models.push(
                model::Model::new(session, files.manifest.injection_label, pad_id)
                    .map_err(ClassifierError::Model)?,
            );
        }
        let placement = placement.ok_or_else(|| ClassifierError::Model("no worker".into()))?;
        let stats = Arc::new(ClassifierStats::default());
        let batcher = Batcher::start(
            models,
            QueueLimits {
                capacity: cfg.queue_capacity,
                max_batch: if files.manifest.batch_invariant {
                    cfg.max_batch
                } else {
                    1
                },
                batch_tokens: cfg.batch_tokens,
            },
            Arc::clone(&stats.queue),
        );
        let cache = NonZeroUsize::new(cfg.cache_entries).map(|n| Mutex::new(LruCache::new(n)));
        let report_threshold = files.manifest.threshold.unwrap_or(0.5);
        tracing::info!(
            model = %files.manifest.name,
            sha256 = %files.manifest.model_sha256(),
            origin = %files.origin,
            device = %placement.used,
            workers, intra_threads,
            window, stride,
            batch_invariant = files.manifest.batch_invariant,
            "classifier ready"
        );
        Ok(Classifier {
            files,
            tokenizer,
            windowing,
            batcher,
            cache,
            stats,
            placement,
            report_threshold,
        })
    }

    pub fn manifest(&self) -> &manifest::Manifest {
        &self.files.manifest
    }

    pub fn origin(&self) -> &str {
        &self.files.origin
    }

    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    pub fn stats(&self) -> &Arc<ClassifierStats> {
        &self.stats
    }

    fn cache_key(&self, text: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.files.manifest.model_sha256().as_bytes());
        h.update([0u8]);
        h.update(text.as_bytes());
        h.finalize().into()
    }

    /// Scores texts: `(score, worst window span)` per text.
    pub fn score(&self, texts: &[&str]) -> Result<Vec<Cached>, DetectError> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| self.cache_key(t)).collect();
        let mut out: Vec<Option<Cached>> = vec![None; texts.len()];
        if let Some(cache) = &self.cache {
            let mut c = cache
                .lock()
                .map_err(|_| DetectError::Failed("cache poisoned".into()))?;
            for (o, k) in out.iter_mut().zip(&keys) {
                *o = c.get(k).copied();
            }
        }
        let hits = out.iter().filter(|o| o.is_some()).count() as u64;
        self.stats.cache_hits.fetch_add(hits, Ordering::Relaxed);
        self.stats
            .cache_misses
            .fetch_add(texts.len() as u64 - hits, Ordering::Relaxed);

        // Windows of every miss go to the queue as one job, so they batch together.
        let mut owners: Vec<(usize, usize)> = Vec::new(); // (text index, window count)
        let mut all = Vec::new();
        for (i, t) in texts.iter().enumerate().filter(|(i, _)| out[*i].is_none()) {
            let w = self
                .windowing
                .windows(&self.tokenizer, t)
                .map_err(|e| DetectError::Failed(format!("tokenizer: {e}")))?;
            owners.push((i, w.len()));
            all.extend(w);
        }
        if !all.is_empty() {
            let spans: Vec<(usize, usize)> = all.iter().map(|w| w.span).collect();
            let scores =
                self.batcher.submit(all)?.blocking_recv().map_err(|_| {
                    DetectError::Failed("inference worker dropped the job".into())
                })??;
            let mut at = 0;
            for (i, n) in owners {
                let (best, span) = (at..at + n).map(|j| (scores[j], spans[j])).fold(
                    (f32::NEG_INFINITY, (0, 0)),
                    |a, b| if b.0 > a.0 { b } else { a },
                );
                at += n;
                out[i] = Some((best, span));
                if let Some(cache) = &self.cache
                    && let Ok(mut c) = cache.lock()
                {
                    c.put(keys[i], (best, span));
                }
            }
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| DetectError::Failed("text left unscored".into())))
            .collect()
    }
}

impl Detector for Classifier {
    fn id(&self) -> String {
        format!(
            "onnx:{}@{}",
            self.files.manifest.name,
            self.files.manifest.model_sha256()
        )
    }

    fn calibrated_threshold(&self) -> Option<f32> {
        self.files.manifest.threshold
    }

    fn calibrated_tag_threshold(&self) -> Option<f32> {
        self.files.manifest.tag_threshold
    }

    fn detect(&self, texts: &[&str]) -> Result<Vec<Detection>, DetectError> {
        let model = format!(
            "{}@{}",
            self.files.manifest.name,
            &self.files.manifest.model_sha256()[..12.min(self.files.manifest.model_sha256().len())]
        );
        Ok(self
            .score(texts)?
            .into_iter()
            .map(|(score, (s, e))| {
                let findings = if score >= self.report_threshold {
                    // Informational: the score itself drives the policy's thresholds.
                    vec![Finding::new(
                        FindingKind::Classifier {
                            model: model.clone(),
                        },
                        Severity::Info,
                        Some(Span::new(s, e)),
                        format!("classifier score {score:.3} on the worst window"),
                    )]
                } else {
                    Vec::new()
                };
                Detection { score, findings }
            })
            .collect())
    }
}
