//! ONNX Runtime: finding the shared library, one process-wide environment, and the one helper
//! that builds every session (device, execution providers, threads).
//!
//! ragwall never downloads ONNX Runtime. The library ships inside the `onnxruntime` wheel on PyPI
//! (`onnxruntime-gpu` for CUDA); `scripts/setup.sh` installs it into the project's `.venv`. The
//! library is found, in order, from `classifier.ort_dylib`, `ORT_DYLIB_PATH`, then a `.venv` in
//! the working directory or beside the executable. Failing all three, the error says how to
//! install it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

/// Why no session could be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found ({0}). Install it with `scripts/setup.sh` (puts the \
         onnxruntime wheel from PyPI into .venv), or `pip install onnxruntime==1.32.0` and set \
         ORT_DYLIB_PATH to <site-packages>/onnxruntime/capi/libonnxruntime.so.1.32.0, or set \
         classifier.ort_dylib in the config"
    )]
    NotFound(String),
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("invalid device {0:?}: expected cpu, cuda:N or tensorrt:N")]
    Device(String),
    #[error(
        "{device} requested but unavailable: {reason}. Set classifier.allow_cpu_fallback = true to run on CPU instead"
    )]
    Gpu { device: String, reason: String },
    #[error("cannot build ONNX session: {0}")]
    Session(String),
}

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda(i32),
    TensorRt(i32),
}

impl std::str::FromStr for Device {
    type Err = RuntimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = |rest: &str| -> Result<i32, RuntimeError> {
            match rest {
                "" => Ok(0),
                r => r
                    .strip_prefix(':')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| RuntimeError::Device(s.to_owned())),
            }
        };
        if s == "cpu" {
            Ok(Device::Cpu)
        } else if let Some(rest) = s.strip_prefix("cuda") {
            Ok(Device::Cuda(id(rest)?))
        } else if let Some(rest) = s.strip_prefix("tensorrt") {
            Ok(Device::TensorRt(id(rest)?))
        } else {
            Err(RuntimeError::Device(s.to_owned()))
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::TensorRt(n) => write!(f, "tensorrt:{n}"),
        }
    }
}

/// Finds `libonnxruntime`. See the module docs for the search order.
pub fn find_dylib(configured: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    if let Some(p) = configured {
        return p.exists().then(|| p.to_owned()).ok_or_else(|| {
            RuntimeError::NotFound(format!(
                "classifier.ort_dylib = {} does not exist",
                p.display()
            ))
        });
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from) {
        return p.exists().then(|| p.clone()).ok_or_else(|| {
            RuntimeError::NotFound(format!("ORT_DYLIB_PATH = {} does not exist", p.display()))
        });
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(4).map(Path::to_path_buf));
    }
    for root in roots {
        if let Some(p) = find_in_venv(&root.join(".venv")) {
            return Ok(p);
        }
    }
    Err(RuntimeError::NotFound(
        "no classifier.ort_dylib, no ORT_DYLIB_PATH, no .venv with onnxruntime".into(),
    ))
}

fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/onnxruntime/capi"))
        .filter_map(|capi| std::fs::read_dir(capi).ok())
        .flat_map(|d| d.filter_map(Result::ok).map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libonnxruntime.so")
                    || n.starts_with("libonnxruntime.") && n.ends_with(".dylib")
            })
        })
        .collect();
    found.sort();
    found.pop()
}

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process-wide ONNX Runtime environment, loading the library on first use.
pub fn environment(configured: Option<&Path>) -> Result<&'static Environment, RuntimeError> {
    let path = find_dylib(configured)?;
    let env = ENVIRONMENT.get_or_init(|| {
        tracing::info!(path = %path.display(), "loading ONNX Runtime");
        ort::init_from(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_name("ragwall").build().map_err(|e| e.to_string()))
    });
    env.as_ref().map_err(|message| RuntimeError::Load {
        path,
        message: message.clone(),
    })
}

/// What a built session ended up running on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub requested: Device,
    pub used: Device,
    /// Why `used` differs from `requested`, if it does.
    pub fallback_reason: Option<String>,
}

/// Session settings shared by every session ragwall builds.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub device: Device,
    pub allow_cpu_fallback: bool,
    pub intra_threads: usize,
}

/// How many sessions to run and how many intra-op threads each gets, after resolving the
/// automatic (0) settings for `cores` cores. Returns `(workers, intra_threads)`, where an
/// `intra_threads` of 0 leaves the choice to ONNX Runtime (all cores).
pub fn plan_threads(workers: usize, intra: usize, device: Device, cores: usize) -> (usize, usize) {
    let cores = cores.max(1);
    if device != Device::Cpu {
        // One device, one session: more would only split its memory.
        return (workers.max(1), intra);
    }
    match (workers, intra) {
        (0, 0) => (cores, 1),
        (0, t) => ((cores / t).max(1), t),
        (1, 0) => (1, 0),
        (w, 0) => (w, (cores / w).max(1)),
        (w, t) => (w, t),
    }
}

/// Builds a session for `model` bytes. The single place where execution providers and threads
/// are chosen, so CPU and GPU paths cannot drift apart.
pub fn build_session(
    env: &Environment,
    model: &[u8],
    opts: &SessionOptions,
) -> Result<(Session, Placement), RuntimeError> {
    let requested = opts.device;
    if requested == Device::Cpu {
        return Ok((
            cpu_session(env, model, opts)?,
            Placement {
                requested,
                used: Device::Cpu,
                fallback_reason: None,
            },
        ));
    }
    match gpu_session(env, model, opts) {
        Ok(s) => Ok((
            s,
            Placement {
                requested,
                used: requested,
                fallback_reason: None,
            },
        )),
        Err(reason) if opts.allow_cpu_fallback => {
            tracing::warn!(device = %requested, %reason, "GPU execution provider unavailable; falling back to CPU");
            Ok((
                cpu_session(env, model, opts)?,
                Placement {
                    requested,
                    used: Device::Cpu,
                    fallback_reason: Some(reason),
                },
            ))
        }
        Err(reason) => Err(RuntimeError::Gpu {
            device: requested.to_string(),
            reason,
        }),
    }
}

fn session_err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Session(e.to_string())
}

fn base_builder(
    env: &Environment,
    opts: &SessionOptions,
) -> Result<ort::session::builder::SessionBuilder, RuntimeError> {
    let mut b = Session::builder(env)
        .map_err(session_err)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(session_err)?;
    if opts.intra_threads > 0 {
        b = b
            .with_intra_threads(opts.intra_threads)
            .map_err(session_err)?;
    }
    Ok(b)
}

fn cpu_session(
    env: &Environment,
    model: &[u8],
    opts: &SessionOptions,
) -> Result<Session, RuntimeError> {
    base_builder(env, opts)?
        .commit_from_memory(model)
        .map_err(session_err)
}

#[cfg(any(feature = "cuda", feature = "tensorrt"))]
fn gpu_session(env: &Environment, model: &[u8], opts: &SessionOptions) -> Result<Session, String> {
    use ort::ep;
    let dispatch = match opts.device {
        #[cfg(feature = "cuda")]
        Device::Cuda(id) => ep::CUDA::default()
            .with_device_id(id)
            .build()
            .error_on_failure(),
        #[cfg(feature = "tensorrt")]
        Device::TensorRt(id) => ep::TensorRT::default()
            .with_device_id(id)
            .build()
            .error_on_failure(),
        other => {
            return Err(format!(
                "ragwall was built without the cargo feature for {other}"
            ));
        }
    };
    base_builder(env, opts)
        .map_err(|e| e.to_string())?
        .with_execution_providers([dispatch])
        .map_err(|e| e.to_string())?
        .commit_from_memory(model)
        .map_err(|e| e.to_string())
}

#[cfg(not(any(feature = "cuda", feature = "tensorrt")))]
fn gpu_session(_: &Environment, _: &[u8], opts: &SessionOptions) -> Result<Session, String> {
    Err(format!(
        "ragwall was built without GPU support (rebuild with `--features cuda` or `--features tensorrt` for {})",
        opts.device
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>().ok(), Some(Device::Cpu));
        assert_eq!("cuda".parse::<Device>().ok(), Some(Device::Cuda(0)));
        assert_eq!("cuda:1".parse::<Device>().ok(), Some(Device::Cuda(1)));
        assert_eq!(
            "tensorrt:0".parse::<Device>().ok(),
            Some(Device::TensorRt(0))
        );
        assert!("cuda:x".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().is_err());
    }

    #[test]
    fn automatic_threading_gives_each_core_one_single_threaded_session() {
        let cpu = Device::Cpu;
        assert_eq!(plan_threads(0, 0, cpu, 2), (2, 1));
        assert_eq!(plan_threads(0, 0, cpu, 8), (8, 1));
        assert_eq!(plan_threads(0, 4, cpu, 8), (2, 4));
        assert_eq!(plan_threads(0, 4, cpu, 2), (1, 4));
        // one worker keeps ONNX Runtime's own pool over all cores
        assert_eq!(plan_threads(1, 0, cpu, 8), (1, 0));
        assert_eq!(plan_threads(2, 0, cpu, 8), (2, 4));
        assert_eq!(plan_threads(3, 2, cpu, 2), (3, 2));
        assert_eq!(plan_threads(0, 0, cpu, 0), (1, 1));
        assert_eq!(plan_threads(0, 0, Device::Cuda(0), 8), (1, 0));
        assert_eq!(plan_threads(2, 0, Device::TensorRt(1), 8), (2, 0));
    }

    #[test]
    fn missing_library_explains_how_to_install_it() {
        let err =
            find_dylib(Some(Path::new("/nonexistent/libonnxruntime.so"))).expect_err("missing");
        let msg = err.to_string();
        assert!(
            msg.contains("scripts/setup.sh") && msg.contains("ORT_DYLIB_PATH"),
            "{msg}"
        );
    }
}
