//! Renders mesh-core's progress events: spinners on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mesh_core::{Event, EventKind, Progress};

/// Draws one line per (cluster, step).
pub struct Renderer {
    enabled: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<(String, String), ProgressBar>>,
}

impl Renderer {
    /// A renderer on stderr; `enabled` false renders nothing (machine output).
    pub fn new(enabled: bool) -> Renderer {
        let tty = std::io::stderr().is_terminal();
        Renderer {
            enabled,
            multi: (enabled && tty)
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Ends every spinner still running.
    pub fn finish(&self) {
        for bar in self.bars.lock().unwrap().values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

fn mark(kind: &EventKind, color: bool) -> (&'static str, String) {
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    };
    match kind {
        EventKind::Unchanged => ("unchanged", paint("32", "✓")),
        EventKind::Found(_) => ("found", paint("32", "✓")),
        EventKind::Changed(_) => ("changed", paint("32", "✓")),
        EventKind::Failed(_) => ("failed", paint("31", "✗")),
        EventKind::Warning(_) => ("warning", paint("33", "!")),
        EventKind::Waiting(_) => ("waiting", "…".into()),
        EventKind::Started => ("started", "…".into()),
    }
}

fn detail(kind: &EventKind) -> &str {
    match kind {
        EventKind::Changed(s)
        | EventKind::Failed(s)
        | EventKind::Warning(s)
        | EventKind::Found(s) => s,
        EventKind::Waiting(s) => s,
        _ => "",
    }
}

impl Progress for Renderer {
    fn event(&self, e: Event) {
        if !self.enabled {
            return;
        }
        let label = format!("{:<10} {:<22}", e.cluster, e.step);
        let (word, symbol) = mark(&e.kind, crate::cli::color_enabled());
        let secs = e.elapsed.as_secs_f64();
        let Some(multi) = &self.multi else {
            // Plain lines: no control characters, one line per outcome.
            if !matches!(e.kind, EventKind::Started) {
                let d = detail(&e.kind);
                let sep = if d.is_empty() { "" } else { ": " };
                eprintln!("{symbol} {label} {word}{sep}{d} ({secs:.1}s)");
            }
            return;
        };
        let key = (e.cluster.clone(), e.step.clone());
        let mut bars = self.bars.lock().unwrap();
        match &e.kind {
            EventKind::Started => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {msg}")
                        .expect("valid template"),
                );
                bar.set_prefix(label);
                bar.enable_steady_tick(Duration::from_millis(100));
                bars.insert(key, bar);
            }
            EventKind::Waiting(what) => {
                if let Some(bar) = bars.get(&key) {
                    bar.set_message(format!("waiting {what}"));
                }
            }
            EventKind::Warning(w) => {
                let _ = multi.println(format!("{symbol} {label} {w}"));
            }
            kind => {
                let d = detail(kind);
                let sep = if d.is_empty() { "" } else { ": " };
                let line = format!("{symbol} {label} {word}{sep}{d} ({secs:.1}s)");
                match bars.get(&key) {
                    Some(bar) => {
                        bar.set_style(
                            ProgressStyle::with_template("{msg}").expect("valid template"),
                        );
                        bar.finish_with_message(line);
                    }
                    None => {
                        let _ = multi.println(line);
                    }
                }
            }
        }
    }
}
