//! Progress of a scan: an `indicatif` bar with rate and ETA when standard error is a terminal,
//! plain log lines (at most one every few seconds) otherwise, so logs and CI output stay
//! readable.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain log lines are printed.
const LOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
enum Sink {
    Bar(ProgressBar),
    Log {
        start: Instant,
        last: Instant,
        start_pos: u64,
    },
    Hidden,
}

/// Progress over `total` points (when known).
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: Option<u64>,
    pos: u64,
    sink: Sink,
}

impl Progress {
    /// A bar on a terminal, log lines otherwise. `pos` is where a resumed scan starts.
    pub fn new(label: &str, total: Option<u64>, pos: u64) -> Self {
        let sink = if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            };
            let style = ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} points, {per_sec}, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(label.to_owned());
            bar.set_position(pos);
            bar.reset_eta();
            Sink::Bar(bar)
        } else {
            let now = Instant::now();
            Sink::Log {
                start: now,
                last: now,
                start_pos: pos,
            }
        };
        Progress {
            label: label.to_owned(),
            total,
            pos,
            sink,
        }
    }

    /// Prints nothing (library callers, benches).
    pub fn hidden() -> Self {
        Progress {
            label: String::new(),
            total: None,
            pos: 0,
            sink: Sink::Hidden,
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.pos += n;
        match &mut self.sink {
            Sink::Bar(b) => b.set_position(self.pos),
            Sink::Log { last, .. } if last.elapsed() >= LOG_EVERY => {
                *last = Instant::now();
                eprintln!("{}", self.line());
            }
            _ => {}
        }
    }

    fn line(&self) -> String {
        let Sink::Log {
            start, start_pos, ..
        } = &self.sink
        else {
            return String::new();
        };
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let rate = (self.pos - start_pos) as f64 / secs;
        match self.total {
            Some(t) if t > 0 => {
                let left = t.saturating_sub(self.pos) as f64;
                let eta = if rate > 0.0 {
                    format!("{:.0}s", left / rate)
                } else {
                    "?".into()
                };
                format!(
                    "ragwall scan: {}: {}/{} points ({:.1}%), {:.1} points/s, ETA {eta}",
                    self.label,
                    self.pos,
                    t,
                    100.0 * self.pos as f64 / t as f64,
                    rate
                )
            }
            _ => format!(
                "ragwall scan: {}: {} points, {:.1} points/s",
                self.label, self.pos, rate
            ),
        }
    }

    pub fn finish(&mut self, msg: &str) {
        match &self.sink {
            Sink::Bar(b) => b.finish_with_message(format!("{} {msg}", self.label)),
            Sink::Log { .. } => eprintln!("{} ({msg})", self.line()),
            Sink::Hidden => {}
        }
    }
}
