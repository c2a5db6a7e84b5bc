//! The `ragwall` binary: parses the command line, sets up logging, runs a subcommand, and turns
//! errors into messages and exit codes. All logic lives in the library.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use ragwall::cli::{Cli, Command, check_config, guard};
use ragwall::{Config, Firewall, detect};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ragwall: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(cli: &Cli) {
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig(args) => {
            print!("{}", check_config::run(&args.file)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Guard(args) => {
            let cfg = Config::load(cli.config.as_deref())?;
            let fw = Firewall::new(&cfg, detect::from_config(&cfg)?)?;
            let opts = guard::GuardOptions {
                wrap: args.wrap,
                collection: args.collection,
                batch: args.batch,
            };
            let stdout = BufWriter::new(std::io::stdout().lock());
            let summary = if args.input.as_os_str() == "-" {
                guard::run(&fw, std::io::stdin().lock(), stdout, &opts)?
            } else {
                let f = File::open(&args.input)
                    .with_context(|| format!("cannot open {}", args.input.display()))?;
                guard::run(&fw, BufReader::new(f), stdout, &opts)?
            };
            tracing::info!(?summary, "guard finished");
            if summary.unscanned > 0 {
                eprintln!(
                    "ragwall: {} of {} chunk(s) could not be scanned (see their \"error\")",
                    summary.unscanned, summary.chunks
                );
                return Ok(ExitCode::from(2));
            }
            if let Some(a) = args.fail_on
                && summary.at_least(a) > 0
            {
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
