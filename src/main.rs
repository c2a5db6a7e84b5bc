//! The `ragwall` binary: parses the command line, sets up logging, runs a subcommand, and turns
//! errors into messages and exit codes. All logic lives in the library.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use ragwall::classifier::Classifier;
use ragwall::cli::{
    AuditCommand, Cli, Command, ModelCommand, check_config, classify, eval, guard, model,
};
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
    // ONNX Runtime is chatty at info; keep it at warn unless the filter says otherwise.
    let spec = if cli.log.contains("ort") {
        cli.log.clone()
    } else {
        format!("{},ort=warn", cli.log)
    };
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Opens `path`, or standard input for `-`.
fn open_input(path: &std::path::Path) -> anyhow::Result<Box<dyn std::io::BufRead>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(Box::new(BufReader::new(f)))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Model(ModelCommand::Info(args)) => {
            let cfg = Config::load(cli.config.as_deref())?;
            let dir = args.model_dir.or(cfg.classifier.model_dir);
            print!("{}", model::info(dir.as_deref(), args.json)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Classify(args) => {
            let cfg = Config::load(cli.config.as_deref())?;
            let classifier = Classifier::from_config(&cfg.classifier)?;
            let out = BufWriter::new(std::io::stdout().lock());
            let failed = classify::run(
                &classifier,
                &cfg.normalize,
                open_input(&args.input)?,
                out,
                args.batch,
            )?;
            Ok(if failed > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Eval(args) => {
            let cfg = Config::load(cli.config.as_deref())?;
            let fw = Firewall::new(&cfg, detect::from_config(&cfg)?.detector)?;
            let gate = args.gate.as_deref().map(eval::load_gate).transpose()?;
            let mut by = args.by.clone();
            for f in gate.iter().flat_map(|g| g.fields()) {
                if !by.contains(&f) {
                    by.push(f);
                }
            }
            let opts = eval::Options {
                by,
                filters: args.filters.clone(),
                batch: args.batch,
            };
            let mut scores = match &args.scores {
                Some(p) => Some(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot create {}", p.display()))?,
                )),
                None => None,
            };
            let report = eval::run(
                &fw,
                open_input(&args.data)?,
                &args.data.display().to_string(),
                &opts,
                scores.as_mut().map(|w| w as &mut dyn std::io::Write),
            )?;
            if let Some(mut w) = scores {
                std::io::Write::flush(&mut w)?;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", eval::table(&report));
            }
            if let (Some(gate), Some(g)) = (&args.gate, &gate) {
                let violations = eval::check(&report, g);
                if !violations.is_empty() {
                    eprintln!("ragwall eval: gate {} failed:", gate.display());
                    for v in &violations {
                        eprintln!("  {v}");
                    }
                    return Ok(ExitCode::from(1));
                }
                eprintln!("ragwall eval: gate {} passed", gate.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Proxy(args) => {
            let mut cfg = Config::load(cli.config.as_deref())?;
            args.apply(&mut cfg.proxy);
            cfg.validate()?;
            let fw = Firewall::new(&cfg, detect::from_config(&cfg)?.detector)?;
            let proxy = std::sync::Arc::new(ragwall::proxy::Proxy::new(&cfg, fw.into())?);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(&cfg.proxy.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", cfg.proxy.listen))?;
                eprintln!(
                    "ragwall proxy: listening on {}, upstream {}",
                    listener.local_addr()?,
                    cfg.proxy.upstream
                );
                let shutdown = ragwall::http::shutdown::shutdown_signal();
                ragwall::proxy::serve(proxy, listener, shutdown).await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let mut cfg = Config::load(cli.config.as_deref())?;
            args.apply(&mut cfg.server);
            let app = ragwall::server::App::new(&cfg, detect::from_config(&cfg)?)?;
            tokio::runtime::Runtime::new()?.block_on(ragwall::server::run(app))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify(args)) => {
            use ragwall::server::audit::{VerifyError, verify};
            match verify(&args.file) {
                Ok(r) => {
                    println!("ok: {} line(s), head sha256 {}", r.lines, r.head);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ VerifyError::Broken { .. }) => {
                    eprintln!("ragwall audit verify: {}: {e}", args.file.display());
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Scan(args) => {
            let cfg = Config::load(cli.config.as_deref())?;
            let fw = Firewall::new(&cfg, detect::from_config(&cfg)?.detector)?;
            Ok(ExitCode::from(ragwall::scan::run(&cfg, fw.into(), args)?))
        }
        Command::CheckConfig(args) => {
            print!("{}", check_config::run(&args.file)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Guard(args) => {
            let cfg = Config::load(cli.config.as_deref())?;
            let fw = Firewall::new(&cfg, detect::from_config(&cfg)?.detector)?;
            let opts = guard::GuardOptions {
                wrap: args.wrap,
                collection: args.collection,
                batch: args.batch,
            };
            let stdout = BufWriter::new(std::io::stdout().lock());
            let summary = guard::run(&fw, open_input(&args.input)?, stdout, &opts)?;
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
