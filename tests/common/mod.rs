//! Shared test setup: where the binary, the model and ONNX Runtime are.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use ragwall::config::Config;
use ragwall::detect::{self, Detectors};
use ragwall::firewall::Firewall;

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Makes sure ONNX Runtime can be found (ORT_DYLIB_PATH, else the project's .venv) and panics
/// with the fix when it cannot: tests never silently skip the model.
pub fn ort() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        ragwall::classifier::runtime::find_dylib(None).unwrap_or_else(|e| {
            panic!("{e}\n(run scripts/setup.sh, or scripts/test.sh which runs it)")
        })
    })
    .clone()
}

/// The default model directory.
pub fn model_dir() -> PathBuf {
    root()
        .join("models")
        .join(ragwall::classifier::DEFAULT_MODEL)
}

/// A config using the default model.
pub fn config() -> Config {
    ort();
    let mut cfg = Config::default();
    cfg.classifier.model_dir = Some(model_dir());
    cfg
}

/// The default firewall (rules + default model), built once per test binary.
pub fn detectors() -> Detectors {
    static D: OnceLock<Detectors> = OnceLock::new();
    D.get_or_init(|| detect::from_config(&config()).expect("default detectors load"))
        .clone()
}

pub fn firewall() -> Arc<Firewall> {
    static F: OnceLock<Arc<Firewall>> = OnceLock::new();
    F.get_or_init(|| Arc::new(Firewall::new(&config(), detectors().detector).expect("policy")))
        .clone()
}

/// Runs the ragwall binary with ONNX Runtime and the default model configured.
pub fn ragwall(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ragwall"));
    cmd.args(args)
        .current_dir(root())
        .env("ORT_DYLIB_PATH", ort())
        .env_remove("RAGWALL_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ragwall");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("ragwall runs")
}

/// Parses JSON lines.
pub fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
