//! `ragwall model info`: print a model's manifest after verifying every file's sha256.

use std::path::Path;

use crate::classifier::manifest::ModelFiles;
use crate::classifier::{ClassifierError, default_model_dir};

/// Verifies the model in `dir` (or the default one) and renders its manifest.
pub fn info(dir: Option<&Path>, as_json: bool) -> Result<String, ClassifierError> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => default_model_dir().ok_or(ClassifierError::NoDefaultModel)?,
    };
    let files = ModelFiles::from_dir(&dir)?;
    let m = &files.manifest;
    if as_json {
        let v = serde_json::json!({
            "directory": dir.display().to_string(),
            "verified": true,
            "model_sha256": m.model_sha256(),
            "manifest": m,
        });
        return Ok(format!("{v:#}\n"));
    }
    let mut s = format!(
        "model {} {} ({})\n  directory: {}\n  model sha256: {}\n",
        m.name,
        m.version,
        m.licence,
        dir.display(),
        m.model_sha256()
    );
    for (file, sha) in &m.files {
        s.push_str(&format!("  verified {file}: sha256 {sha} OK\n"));
    }
    s.push_str("\n# manifest\n");
    s.push_str(&toml::to_string_pretty(m).unwrap_or_default());
    Ok(s)
}
