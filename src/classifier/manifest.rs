//! The model manifest (`model.toml`) and its supply-chain check.
//!
//! A model directory is only trusted through its manifest: every file the runtime reads must be
//! listed with its sha256, and a mismatch refuses to load. The model's identity in verdicts and
//! audit lines is the sha256 of `model.onnx`, so "which model decided this" has one answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Files every model directory must have.
pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const MANIFEST_FILE: &str = "model.toml";

/// `model.toml`. Fields beyond these (training and evaluation details) are kept verbatim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// Class names in logit order.
    pub labels: Vec<String>,
    /// Index of the logit that means "injection".
    pub injection_label: usize,
    /// Tokens per window the model was trained for, special tokens included.
    pub max_length: usize,
    /// Calibrated score threshold (1% FPR on the validation split), if measured.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Calibrated threshold for tagging (a higher false-positive budget than `threshold`), if
    /// measured; the policy's `tag = "calibrated"` takes it.
    #[serde(default)]
    pub tag_threshold: Option<f32>,
    pub licence: String,
    pub source: String,
    /// Whether a window's score is independent of the other rows in its batch. Dynamically
    /// quantized (int8) graphs compute activation scales over the whole batch, so they are not:
    /// for them ragwall runs one window per session call, keeping every score reproducible (and
    /// every cached score valid) whatever else is in flight.
    #[serde(default = "yes")]
    pub batch_invariant: bool,
    /// sha256 (hex) of every file in the directory the runtime uses.
    pub files: BTreeMap<String, String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, toml::Value>,
}

fn yes() -> bool {
    true
}

/// Why a model directory is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("manifest does not list {0} in [files]")]
    Unlisted(&'static str),
    #[error(
        "sha256 mismatch for {file}: manifest says {expected}, file has {actual}. \
         Refusing to load a model that is not the one its manifest describes"
    )]
    Mismatch {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("manifest is inconsistent: {0}")]
    Invalid(String),
}

impl Manifest {
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self.labels.len() < 2 && self.labels.len() != 1 {
            return Err(ManifestError::Invalid("labels must not be empty".into()));
        }
        if self.injection_label >= self.labels.len().max(1) {
            return Err(ManifestError::Invalid(format!(
                "injection_label {} is not an index into labels {:?}",
                self.injection_label, self.labels
            )));
        }
        if self.max_length < 8 {
            return Err(ManifestError::Invalid(
                "max_length must be at least 8".into(),
            ));
        }
        for (what, t) in [
            ("threshold", self.threshold),
            ("tag_threshold", self.tag_threshold),
        ] {
            if let Some(t) = t
                && !(0.0..=1.0).contains(&t)
            {
                return Err(ManifestError::Invalid(format!(
                    "{what} {t} is outside [0, 1]"
                )));
            }
        }
        if let (Some(tag), Some(q)) = (self.tag_threshold, self.threshold)
            && tag > q
        {
            return Err(ManifestError::Invalid(format!(
                "tag_threshold {tag} is above threshold {q}"
            )));
        }
        for f in [MODEL_FILE, TOKENIZER_FILE] {
            if !self.files.contains_key(f) {
                return Err(ManifestError::Unlisted(f));
            }
        }
        Ok(())
    }

    /// sha256 of `model.onnx` as listed (verified before any session sees the bytes).
    pub fn model_sha256(&self) -> &str {
        self.files
            .get(MODEL_FILE)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Checks one file's bytes against the manifest.
    pub fn verify(&self, file: &str, bytes: &[u8]) -> Result<(), ManifestError> {
        let expected = self
            .files
            .get(file)
            .ok_or_else(|| ManifestError::Invalid(format!("{file} is not listed in [files]")))?;
        let actual = hex::encode(Sha256::digest(bytes));
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(ManifestError::Mismatch {
                file: file.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// A model's verified bytes, ready for a session.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub manifest: Manifest,
    pub model: std::sync::Arc<Vec<u8>>,
    pub tokenizer: Vec<u8>,
    /// Where it came from, for messages (`bundled` or a directory).
    pub origin: String,
}

impl ModelFiles {
    /// Reads and verifies every file a directory's manifest lists.
    pub fn from_dir(dir: &Path) -> Result<Self, ManifestError> {
        let read = |name: &str| -> Result<Vec<u8>, ManifestError> {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| ManifestError::Io { path, source })
        };
        let mpath = dir.join(MANIFEST_FILE);
        let text = String::from_utf8(read(MANIFEST_FILE)?).map_err(|e| {
            ManifestError::Invalid(format!("{} is not UTF-8: {e}", mpath.display()))
        })?;
        let manifest = Manifest::parse(&text, &mpath)?;
        for file in manifest.files.keys() {
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                return Err(ManifestError::Invalid(format!(
                    "file name {file:?} must be plain"
                )));
            }
            if file != MODEL_FILE && file != TOKENIZER_FILE {
                manifest.verify(file, &read(file)?)?;
            }
        }
        let model = read(MODEL_FILE)?;
        manifest.verify(MODEL_FILE, &model)?;
        let tokenizer = read(TOKENIZER_FILE)?;
        manifest.verify(TOKENIZER_FILE, &tokenizer)?;
        Ok(ModelFiles {
            manifest,
            model: std::sync::Arc::new(model),
            tokenizer,
            origin: dir.display().to_string(),
        })
    }

    /// Verifies in-memory files (the bundled model, or a caller's own bytes).
    pub fn from_bytes(
        manifest_text: &str,
        model: Vec<u8>,
        tokenizer: Vec<u8>,
        origin: &str,
    ) -> Result<Self, ManifestError> {
        let manifest = Manifest::parse(manifest_text, Path::new(origin))?;
        manifest.verify(MODEL_FILE, &model)?;
        manifest.verify(TOKENIZER_FILE, &tokenizer)?;
        Ok(ModelFiles {
            manifest,
            model: std::sync::Arc::new(model),
            tokenizer,
            origin: origin.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(model_sha: &str) -> String {
        format!(
            r#"
name = "t"
version = "1"
labels = ["benign", "injection"]
injection_label = 1
max_length = 128
threshold = 0.9
licence = "Apache-2.0"
source = "test"
[files]
"model.onnx" = "{model_sha}"
"tokenizer.json" = "{}"
[evaluation]
f1 = 0.99
"#,
            hex::encode(Sha256::digest(b"tok"))
        )
    }

    #[test]
    fn verifies_hashes_and_keeps_extra_fields() {
        let sha = hex::encode(Sha256::digest(b"model"));
        let m = ModelFiles::from_bytes(&manifest(&sha), b"model".to_vec(), b"tok".to_vec(), "t")
            .expect("valid");
        assert_eq!(m.manifest.model_sha256(), sha);
        assert!(m.manifest.extra.contains_key("evaluation"));
        let err =
            ModelFiles::from_bytes(&manifest(&sha), b"tampered".to_vec(), b"tok".to_vec(), "t")
                .expect_err("mismatch");
        assert!(matches!(err, ManifestError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn rejects_inconsistent_manifests() {
        let sha = hex::encode(Sha256::digest(b"model"));
        let bad = manifest(&sha).replace("injection_label = 1", "injection_label = 5");
        assert!(Manifest::parse(&bad, Path::new("x")).is_err());
        let bad = manifest(&sha).replace("\"model.onnx\"", "\"other.onnx\"");
        assert!(matches!(
            Manifest::parse(&bad, Path::new("x")),
            Err(ManifestError::Unlisted(MODEL_FILE))
        ));
    }
}
