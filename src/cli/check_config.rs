//! `ragwall check-config FILE`: validate a config, load its detectors, print what it resolves to.

use std::path::Path;

use crate::config::Config;
use crate::detect;
use crate::firewall::Firewall;

/// Loads and validates `file` fully (detectors included) and returns a human summary.
pub fn run(file: &Path) -> anyhow::Result<String> {
    let cfg = Config::load(Some(file))?;
    let detector = detect::from_config(&cfg)?.detector;
    let fw = Firewall::new(&cfg, detector)?;
    let d = fw.policy().for_collection(None);
    let fmt = |t: Option<f32>| t.map_or("off".to_owned(), |v| format!("{v:.3}"));
    let mut s = format!(
        "config OK: {}\n  policy version: {}\n  on_error: {}\n  default thresholds: tag {}, quarantine {}, block {}\n  detector: {}\n",
        file.display(),
        fw.policy().version,
        fw.policy().on_error,
        fmt(d.tag),
        fmt(d.quarantine),
        fmt(d.block),
        fw.detector_id(),
    );
    for name in cfg.policy.collections.keys() {
        let c = fw.policy().for_collection(Some(name));
        s.push_str(&format!(
            "  collection {name}: tag {}, quarantine {}, block {}\n",
            fmt(c.tag),
            fmt(c.quarantine),
            fmt(c.block)
        ));
    }
    Ok(s)
}
