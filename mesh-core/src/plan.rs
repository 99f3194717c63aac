//! What join and unjoin share: running named steps, reporting each as progress events,
//! and collecting what changed and what the user should know.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::progress::{Event, EventKind, Progress};

/// One object a plan changed, or in a dry run would change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The context of the cluster.
    pub cluster: String,
    /// The step that changed it.
    pub step: String,
    /// What changed, e.g. "created Secret istio-system/cacerts".
    pub description: String,
    /// The object as applied (Secrets holding keys or tokens are left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<serde_json::Value>,
}

/// How a step ended.
pub(crate) enum Outcome {
    /// The cluster already was as the step wants it.
    Unchanged,
    /// Nothing changed; the step found something worth showing.
    Found(String),
    /// Something changed (described), with the object applied when it can be shown.
    Changed(String, Option<serde_json::Value>),
}

impl Outcome {
    /// `Changed` with the descriptions joined, or `Unchanged` when there are none.
    pub(crate) fn from_changes(done: Vec<String>) -> Outcome {
        if done.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::Changed(done.join("; "), None)
        }
    }
}

/// A plan's options together with its step runner (steps are reached through `Deref`).
pub(crate) struct Run<'a, O> {
    pub(crate) opts: &'a O,
    pub(crate) steps: Steps<'a>,
}

impl<'a, O> std::ops::Deref for Run<'a, O> {
    type Target = Steps<'a>;
    fn deref(&self) -> &Steps<'a> {
        &self.steps
    }
}

/// How long a request goes unanswered before its step says it waits on it.
const STALLED: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs steps and records their changes and warnings.
pub(crate) struct Steps<'a> {
    dry_run: bool,
    progress: &'a dyn Progress,
    changes: Mutex<Vec<Change>>,
    warnings: Mutex<Vec<String>>,
    interrupt: Interrupt,
    completed: Mutex<Vec<String>>,
}

impl<'a> Steps<'a> {
    pub(crate) fn new(dry_run: bool, progress: &'a dyn Progress) -> Steps<'a> {
        Steps {
            dry_run,
            progress,
            changes: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            interrupt: Interrupt::default(),
            completed: Mutex::new(Vec::new()),
        }
    }

    /// Steps that stop at `interrupt`: none starts once it is raised, and a running one
    /// is let go (a helm it runs ends first: see `install::Helm`).
    pub(crate) fn interruptible(mut self, interrupt: &Interrupt) -> Steps<'a> {
        self.interrupt = interrupt.clone();
        self
    }

    /// [`Error::Interrupted`] with the steps completed so far, when `interrupt` was raised.
    pub(crate) fn interrupted(&self) -> Option<Error> {
        Some(Error::Interrupted {
            signal: self.interrupt.raised()?,
            completed: self.completed.lock().unwrap().clone(),
        })
    }

    pub(crate) fn emit(&self, cluster: &str, step: &str, kind: EventKind, started: Instant) {
        self.progress.event(Event {
            cluster: cluster.to_owned(),
            step: step.to_owned(),
            kind,
            elapsed: started.elapsed(),
        });
    }

    /// Records a warning and reports it; the log keeps it at info (the caller renders it).
    pub(crate) fn warn(&self, cluster: &str, step: &str, message: String) {
        // Said once: several steps may find the same thing (each link to one cluster).
        let line = format!("{cluster}: {message}");
        {
            let mut warnings = self.warnings.lock().unwrap();
            if warnings.contains(&line) {
                return;
            }
            warnings.push(line);
        }
        tracing::info!(cluster, step, "warning: {message}");
        self.emit(cluster, step, EventKind::Warning(message), Instant::now());
    }

    /// Runs one step with its Started / Changed / Unchanged / Found / Failed events.
    pub(crate) async fn step<F>(&self, cluster: &str, step: &str, body: F) -> Result<()>
    where
        F: std::future::Future<Output = Result<Outcome>>,
    {
        if let Some(err) = self.interrupted() {
            return Err(err);
        }
        let started = Instant::now();
        self.emit(cluster, step, EventKind::Started, started);
        // While the body runs, a request to this cluster that goes unanswered for a
        // while is shown as what the step waits on (each request has a deadline).
        let mut body = std::pin::pin!(body);
        let mut shown = None;
        let mut stopping = false;
        let result = loop {
            let tick = std::time::Duration::from_millis(if stopping { 100 } else { 1000 });
            tokio::select! {
                result = &mut body => break result,
                _ = self.interrupt.wait(), if !stopping => stopping = true,
                _ = tokio::time::sleep(tick) => {
                    // Stopped: a running helm ends its own way first (the body then
                    // fails); anything else is let go at once.
                    if stopping && !self.interrupt.children_running() {
                        break Err(self.interrupted().expect("raised"));
                    }
                    let stalled = mesh_kubeconfig::pending_requests(STALLED)
                        .into_iter()
                        .find(|p| p.cluster == cluster);
                    if let Some(p) = stalled {
                        let key = (p.cluster.clone(), p.request.clone());
                        if shown.as_ref() != Some(&key) {
                            self.emit(cluster, step, EventKind::Waiting(p.to_string()), started);
                            shown = Some(key);
                        }
                    }
                }
            }
        };
        // Whatever ended a step after a signal, the signal is the reason.
        let result = match result {
            Err(_) if self.interrupt.raised().is_some() => Err(self.interrupted().expect("raised")),
            other => other,
        };
        if result.is_ok() {
            self.completed
                .lock()
                .unwrap()
                .push(format!("{cluster} {step}"));
        }
        match result {
            Ok(Outcome::Unchanged) => {
                self.emit(cluster, step, EventKind::Unchanged, started);
                Ok(())
            }
            Ok(Outcome::Found(what)) => {
                self.emit(cluster, step, EventKind::Found(what), started);
                Ok(())
            }
            Ok(Outcome::Changed(description, object)) => {
                let description = if self.dry_run {
                    format!("would have {description}")
                } else {
                    description
                };
                self.changes.lock().unwrap().push(Change {
                    cluster: cluster.to_owned(),
                    step: step.to_owned(),
                    description: description.clone(),
                    object,
                });
                self.emit(cluster, step, EventKind::Changed(description), started);
                Ok(())
            }
            Err(err) => {
                self.emit(cluster, step, EventKind::Failed(err.to_string()), started);
                Err(err)
            }
        }
    }

    /// [`Steps::step`] for a body that returns what it changed, one line per object
    /// (none: the step had nothing to do).
    pub(crate) async fn step_listing<F>(&self, cluster: &str, step: &str, body: F) -> Result<()>
    where
        F: std::future::Future<Output = Result<Vec<String>>>,
    {
        self.step(cluster, step, async {
            body.await.map(Outcome::from_changes)
        })
        .await
    }

    /// What changed and the warnings, in the order they happened.
    pub(crate) fn finish(&self) -> (Vec<Change>, Vec<String>) {
        (
            std::mem::take(&mut *self.changes.lock().unwrap()),
            std::mem::take(&mut *self.warnings.lock().unwrap()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::NoProgress;

    #[tokio::test]
    async fn no_step_starts_after_a_signal_and_the_error_lists_what_completed() {
        let interrupt = Interrupt::default();
        let steps = Steps::new(false, &NoProgress).interruptible(&interrupt);
        steps
            .step("cluster1", "cacerts", async { Ok(Outcome::Unchanged) })
            .await
            .unwrap();
        interrupt.raise(15);
        let mut ran = false;
        let err = steps
            .step("cluster1", "meshNetworks", async {
                ran = true;
                Ok(Outcome::Unchanged)
            })
            .await
            .unwrap_err();
        assert!(!ran, "a step started after the signal");
        assert_eq!(
            err.to_string(),
            "stopped by SIGTERM; completed: cluster1 cacerts; running the same command again completes the rest"
        );
    }

    #[tokio::test]
    async fn a_running_step_without_helm_is_let_go_at_the_signal() {
        let interrupt = Interrupt::default();
        let steps = Steps::new(false, &NoProgress).interruptible(&interrupt);
        let raise = {
            let interrupt = interrupt.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                interrupt.raise(2);
            }
        };
        let started = Instant::now();
        let (result, ()) = tokio::join!(
            steps.step("cluster2", "gateway address", async {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                Ok(Outcome::Unchanged)
            }),
            raise
        );
        assert!(matches!(result, Err(Error::Interrupted { signal: 2, .. })));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
