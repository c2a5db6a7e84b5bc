//! Command-line adapters. Each subcommand is a module with a `run` function that takes parsed
//! arguments and returns an exit code; argument parsing lives here, I/O in the modules, and
//! `main.rs` only sets up logging and turns errors into messages.

pub mod check_config;
pub mod classify;
pub mod eval;
pub mod guard;
pub mod jsonl;
pub mod model;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::policy::Action;
use crate::wrap::WrapMode;

/// ragwall — a retrieval firewall for RAG systems.
#[derive(Debug, Parser)]
#[command(name = "ragwall", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML; see ragwall.example.toml). Defaults apply without one.
    #[arg(long, short, global = true, env = "RAGWALL_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log filter (tracing syntax, e.g. `info` or `ragwall=debug`).
    #[arg(long, global = true, env = "RAGWALL_LOG", default_value = "warn")]
    pub log: String,

    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "RAGWALL_LOG_JSON")]
    pub log_json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan chunks from a JSONL file and print one JSON verdict per line.
    Guard(GuardArgs),
    /// Validate a configuration file, load its detectors, and print what it resolves to.
    CheckConfig(CheckConfigArgs),
    /// Score chunks with the ONNX classifier alone (after normalization).
    Classify(ClassifyArgs),
    /// Inspect the classifier model.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Measure detection quality on labelled JSONL ({"text":…,"label":0|1,"source":…}).
    Eval(EvalArgs),
}

#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// Input JSONL, one chunk per line ({"id":…,"text":…}); `-` reads standard input.
    #[arg(long, short, env = "RAGWALL_INPUT")]
    pub input: PathBuf,

    /// Chunks per batch.
    #[arg(long, env = "RAGWALL_BATCH", default_value_t = 32)]
    pub batch: usize,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Verify every file's sha256 and print the manifest.
    Info(ModelInfoArgs),
}

#[derive(Debug, clap::Args)]
pub struct ModelInfoArgs {
    /// Model directory; defaults to classifier.model_dir, then the bundled default model.
    #[arg(long, env = "RAGWALL_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Labelled JSONL: "text", "label" (0/1), optional "source", "kind", "collection".
    #[arg(long, env = "RAGWALL_EVAL_DATA")]
    pub data: PathBuf,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// TOML file of floors/ceilings (min_recall, max_fpr, min_accuracy, min_roc_auc) for
    /// [overall], [sources.NAME] and [kinds.NAME]; exit status 1 when any is violated.
    #[arg(long, env = "RAGWALL_EVAL_GATE")]
    pub gate: Option<PathBuf>,

    /// Examples per batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}

#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    /// Input JSONL, one chunk per line: {"id":…,"text":…} plus optional "collection",
    /// "source", "metadata". `-` reads standard input.
    #[arg(long, short, env = "RAGWALL_INPUT")]
    pub input: PathBuf,

    /// Also wrap the surviving chunks for the prompt: delimit, datamark or base64. Each passing
    /// verdict gets its "wrapped" block and a final line carries the context and the system
    /// instruction.
    #[arg(long, env = "RAGWALL_WRAP")]
    pub wrap: Option<WrapMode>,

    /// Collection applied to chunks that do not name one (selects policy overrides).
    #[arg(long, env = "RAGWALL_COLLECTION")]
    pub collection: Option<String>,

    /// Exit with status 1 when any chunk's action is at least this (tag, quarantine, block).
    #[arg(long, env = "RAGWALL_FAIL_ON")]
    pub fail_on: Option<Action>,

    /// Chunks per detector batch.
    #[arg(long, env = "RAGWALL_BATCH", default_value_t = 32)]
    pub batch: usize,
}

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// Configuration file to check.
    pub file: PathBuf,
}
