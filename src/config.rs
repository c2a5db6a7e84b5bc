//! The one configuration struct, loaded from a documented TOML file (`ragwall.example.toml`)
//! with environment overrides, and validated before anything starts.
//!
//! Environment overrides use the prefix `RAGWALL_CFG__` and `__` between keys, e.g.
//! `RAGWALL_CFG__POLICY__DEFAULT__QUARANTINE=0.7` or `RAGWALL_CFG__CLASSIFIER__DEVICE=cuda:0`.
//! The prefix is distinct from the CLI flags' variables (`RAGWALL_CONFIG`, `RAGWALL_UPSTREAM`…) so
//! that a flag's variable can never be mistaken for a config key.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::normalize::NormalizeOptions;
use crate::policy::{Policy, PolicyConfig, PolicyError};
use crate::wrap::WrapMode;

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "RAGWALL_CFG__";

/// Everything ragwall can be configured with.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub limits: Limits,
    pub normalize: NormalizeOptions,
    pub rules: RulesConfig,
    pub classifier: ClassifierConfig,
    pub policy: PolicyConfig,
    pub wrap: WrapConfig,
    pub proxy: crate::proxy::ProxyConfig,
    pub server: crate::server::ServerConfig,
    pub scan: crate::scan::ScanConfig,
}

/// Input limits. Exceeding a per-chunk limit is a per-chunk error verdict (`policy.on_error`);
/// exceeding a per-call limit refuses the call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest chunk text accepted, in bytes.
    pub max_chunk_bytes: usize,
    /// Most chunks in one call (one guard batch, one request, one Qdrant response).
    pub max_chunks_per_call: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_chunk_bytes: 256 * 1024,
            max_chunks_per_call: 1024,
        }
    }
}

/// `[rules]`: the rule-pack detector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    pub enabled: bool,
    /// Directory of `*.toml` packs; unset means the packs compiled into the binary.
    pub dir: Option<PathBuf>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            enabled: true,
            dir: None,
        }
    }
}

/// `[classifier]`: the ONNX prompt-injection classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    pub enabled: bool,
    /// Model directory (`model.onnx`, `tokenizer.json`, `model.toml`); unset means the default
    /// model bundled with ragwall.
    pub model_dir: Option<PathBuf>,
    /// `cpu`, `cuda:N` or `tensorrt:N` (the GPU ones need the `cuda`/`tensorrt` cargo features).
    pub device: String,
    /// If the GPU provider cannot be used, run on CPU instead of refusing to start.
    pub allow_cpu_fallback: bool,
    /// ONNX Runtime intra-op threads per session; 0 = automatic (see `workers`).
    pub intra_threads: usize,
    /// Inference worker threads, each with its own session; 0 = automatic. On CPU the
    /// automatic plan is one single-threaded session per core: windows run one per call
    /// for the default model, and independent sessions scale with cores where one session's
    /// thread pool, synchronising inside every small matrix product, does not.
    pub workers: usize,
    /// Tokens per window including special tokens; unset means the model's `max_length`.
    pub window_tokens: Option<usize>,
    /// Tokens between window starts; unset means half a window.
    pub stride_tokens: Option<usize>,
    /// Token budget of one batch (windows × padded length).
    pub batch_tokens: usize,
    /// Most windows in one batch.
    pub max_batch: usize,
    /// Most windows waiting for a worker; beyond it callers get an overload error at once.
    pub queue_capacity: usize,
    /// Entries in the score cache (keyed by model sha256 and text hash); 0 disables it.
    pub cache_entries: usize,
    /// Path of `libonnxruntime.so`; unset means `ORT_DYLIB_PATH`, then the project's `.venv`.
    pub ort_dylib: Option<PathBuf>,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            enabled: true,
            model_dir: None,
            device: "cpu".into(),
            allow_cpu_fallback: false,
            intra_threads: 0,
            workers: 0,
            window_tokens: None,
            stride_tokens: None,
            batch_tokens: 8192,
            max_batch: 64,
            queue_capacity: 4096,
            cache_entries: 65536,
            ort_dylib: None,
        }
    }
}

/// `[wrap]`: how surviving chunks are delimited for the prompt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WrapConfig {
    pub mode: WrapMode,
    /// Marker interleaved between words in `datamark` mode.
    pub datamark: char,
}

impl Default for WrapConfig {
    fn default() -> Self {
        WrapConfig {
            mode: WrapMode::Delimit,
            datamark: '\u{02C6}',
        }
    }
}

/// Why a configuration is not usable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Parse(Box<figment::Error>),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads defaults, then `path` (if any), then `RAGWALL_CFG__*` variables, and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(p) = path {
            if !p.exists() {
                return Err(ConfigError::Missing(p.to_owned()));
            }
            fig = fig.merge(Toml::file(p));
        }
        let cfg: Config = fig
            .merge(Env::prefixed(ENV_PREFIX).split("__"))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML string (no environment) and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks everything that can be checked without loading a model.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.limits.max_chunk_bytes == 0 || self.limits.max_chunks_per_call == 0 {
            return bad("limits must be positive".into());
        }
        if self.wrap.datamark.is_whitespace() || self.wrap.datamark.is_control() {
            return bad("wrap.datamark must be a visible character".into());
        }
        let c = &self.classifier;
        if c.max_batch == 0 || c.batch_tokens == 0 || c.queue_capacity == 0 {
            return bad(
                "classifier max_batch, batch_tokens and queue_capacity must be positive".into(),
            );
        }
        if let Some(w) = c.window_tokens {
            if w < 8 {
                return bad(format!(
                    "classifier.window_tokens = {w} is too small (min 8)"
                ));
            }
            if let Some(s) = c.stride_tokens
                && (s == 0 || s > w - 2)
            {
                return bad(format!(
                    "classifier.stride_tokens = {s} must be between 1 and window_tokens - 2"
                ));
            }
        }
        if !(c.device == "cpu" || c.device.starts_with("cuda") || c.device.starts_with("tensorrt"))
        {
            return bad(format!(
                "classifier.device = {:?}: expected cpu, cuda:N or tensorrt:N",
                c.device
            ));
        }
        // Thresholds and ordering; the calibrated value is checked again once a model is loaded.
        Policy::new(&self.policy, None)?;
        self.server.validate().map_err(ConfigError::Invalid)?;
        self.proxy.validate().map_err(ConfigError::Invalid)?;
        self.scan.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_is_valid_and_complete() {
        let text = include_str!("../ragwall.example.toml");
        let cfg = Config::from_toml(text).expect("example config is valid");
        assert_eq!(cfg.policy.on_error, crate::policy::Action::Block);
        // Every section of the struct appears in the documented example.
        for section in [
            "[limits]",
            "[normalize]",
            "[rules]",
            "[classifier]",
            "[policy]",
            "[wrap]",
            "[proxy]",
            "[server]",
            "[scan]",
        ] {
            assert!(text.contains(section), "example lacks {section}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::from_toml("[limits]\nmax_chunk_bytez = 1").is_err());
        assert!(Config::from_toml("[limits]\nmax_chunk_bytes = 0").is_err());
        assert!(Config::from_toml("[classifier]\ndevice = \"tpu\"").is_err());
        assert!(Config::from_toml("[policy.default]\ntag = 2.0").is_err());
        assert!(Config::from_toml("[wrap]\nmode = \"rot13\"").is_err());
        // every section is checked by the same validate() that check-config runs
        assert!(Config::from_toml("[server]\nmax_body_bytes = 0").is_err());
        assert!(Config::from_toml("[server]\ntls_cert = \"/tmp/c.pem\"").is_err());
        assert!(Config::from_toml("[proxy]\nlisten = \"nowhere\"").is_err());
        assert!(Config::from_toml("[classifier]\nworkers = 0\nintra_threads = 0").is_ok());
    }
}
