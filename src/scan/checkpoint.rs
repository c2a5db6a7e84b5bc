//! Where an interrupted collection scan continues: the next scroll offset and the tally so far,
//! saved atomically after every page whose writes (copies, deletes, stamps) are all done.
//!
//! A checkpoint belongs to one URL, collection, mode, detector and policy version; resuming with
//! any of them changed is refused (the verdicts before and after would not be comparable), and
//! the message says which file to delete to start over. The file is removed when the scan
//! completes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::scan::report::Tally;
use crate::scan::{Mode, ScanError};

/// Format version.
pub const VERSION: u32 = 1;

/// What a checkpoint is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub url: String,
    pub collection: String,
    pub mode: Mode,
    pub detector: String,
    pub policy: String,
}

/// The saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub v: u32,
    pub identity: Identity,
    /// Point id the next page starts at (a number or a UUID string); `null` before the first
    /// page.
    pub offset: Option<serde_json::Value>,
    pub tally: Tally,
}

impl Checkpoint {
    pub fn new(identity: Identity) -> Self {
        Checkpoint {
            v: VERSION,
            identity,
            offset: None,
            tally: Tally::default(),
        }
    }

    pub fn parse(text: &str) -> Result<Checkpoint, String> {
        let c: Checkpoint = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if c.v != VERSION {
            return Err(format!("unknown checkpoint version {}", c.v));
        }
        Ok(c)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Why this checkpoint cannot be resumed by a scan for `want`, if it cannot.
    pub fn mismatch(&self, want: &Identity) -> Option<String> {
        let i = &self.identity;
        let what = if i.url != want.url {
            "URL"
        } else if i.collection != want.collection {
            "collection"
        } else if i.mode != want.mode {
            "mode"
        } else if i.detector != want.detector {
            "detector (model or rule packs)"
        } else if i.policy != want.policy {
            "policy version"
        } else {
            return None;
        };
        Some(format!("it was written for another {what}"))
    }
}

/// The checkpoint file for a scan: `DIR/<collection>.<mode>.<hash of URL and collection>.json`.
pub fn path(dir: &Path, url: &str, collection: &str, mode: Mode) -> PathBuf {
    let safe: String = collection
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let digest = Sha256::digest(format!("{url}\n{collection}").as_bytes());
    let tag = hex::encode(&digest[..6]);
    dir.join(format!(
        "{safe}.{}.{tag}.json",
        mode.label().replace('+', "-")
    ))
}

/// Loads the checkpoint at `path` for `want`: `None` if there is none.
pub fn load(path: &Path, want: &Identity) -> Result<Option<Checkpoint>, ScanError> {
    let bad = |detail: String| ScanError::Checkpoint {
        path: path.display().to_string(),
        detail,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ScanError::io(path, e)),
    };
    let c = Checkpoint::parse(&text).map_err(|e| bad(format!("{e}; delete it to start over")))?;
    if let Some(why) = c.mismatch(want) {
        return Err(bad(format!("{why}; delete it to start over")));
    }
    Ok(Some(c))
}

pub fn save(path: &Path, c: &Checkpoint) -> Result<(), ScanError> {
    crate::scan::atomic::write(path, c.to_json().as_bytes()).map_err(|e| ScanError::io(path, e))
}

pub fn remove(path: &Path) -> Result<(), ScanError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ScanError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            url: "http://q:6334".into(),
            collection: "docs/a b".into(),
            mode: Mode {
                stamp: true,
                quarantine: false,
            },
            detector: "onnx:1".into(),
            policy: "p1".into(),
        }
    }

    #[test]
    fn round_trips_and_refuses_another_scan() {
        let mut c = Checkpoint::new(identity());
        c.offset = Some(serde_json::json!("6a1b7f5e-3c1d-4d8e-9f00-2b9e0c1d2e3f"));
        c.tally.points = 42;
        let back = Checkpoint::parse(&c.to_json()).expect("parses");
        assert_eq!(back, c);
        assert_eq!(back.mismatch(&identity()), None);
        let other = Identity {
            policy: "p2".into(),
            ..identity()
        };
        assert!(back.mismatch(&other).expect("mismatch").contains("policy"));
        let other = Identity {
            mode: Mode::DRY_RUN,
            ..identity()
        };
        assert!(back.mismatch(&other).expect("mismatch").contains("mode"));
        assert!(Checkpoint::parse("{\"v\":2}").is_err());
    }

    #[test]
    fn file_names_are_safe_and_distinct() {
        let dir = Path::new("/ck");
        let a = path(dir, "http://a:6334", "docs/a b", Mode::DRY_RUN);
        let b = path(dir, "http://b:6334", "docs/a b", Mode::DRY_RUN);
        assert_ne!(a, b);
        let name = a.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(name.starts_with("docs_a_b.dry-run."), "{name}");
        assert_eq!(a.parent(), Some(dir));
    }

    #[test]
    fn load_save_remove() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = path(dir.path(), "u", "c", Mode::DRY_RUN);
        assert_eq!(load(&p, &identity()).expect("none"), None);
        let c = Checkpoint::new(identity());
        save(&p, &c).expect("save");
        assert_eq!(load(&p, &identity()).expect("load"), Some(c));
        let err = load(
            &p,
            &Identity {
                url: "x".into(),
                ..identity()
            },
        )
        .expect_err("refused");
        assert!(err.to_string().contains("delete it"), "{err}");
        remove(&p).expect("rm");
        remove(&p).expect("rm twice");
    }
}
