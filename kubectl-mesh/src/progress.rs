//! Renders mesh-core's progress events: spinners on a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mesh_core::{Event, EventKind, Progress};

use crate::style::Style;

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

/// The word and the symbol of an event's outcome.
fn mark(kind: &EventKind, style: Style) -> (&'static str, String) {
    match kind {
        EventKind::Unchanged => ("unchanged", style.ok()),
        EventKind::Found(_) => ("found", style.ok()),
        EventKind::Changed(_) => ("changed", style.ok()),
        EventKind::Failed(_) => ("failed", style.failed()),
        EventKind::Warning(_) => ("warning", style.warning()),
        EventKind::Waiting(_) => ("waiting", style.pending()),
        EventKind::Started => ("started", style.pending()),
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
        let (word, symbol) = mark(&e.kind, Style::stderr());
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
