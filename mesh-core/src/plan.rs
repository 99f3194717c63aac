//! What join and unjoin share: running named steps, reporting each as progress events,
//! and collecting what changed and what the user should know.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::error::Result;
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

/// Runs steps and records their changes and warnings.
pub(crate) struct Steps<'a> {
    dry_run: bool,
    progress: &'a dyn Progress,
    changes: Mutex<Vec<Change>>,
    warnings: Mutex<Vec<String>>,
}

impl<'a> Steps<'a> {
    pub(crate) fn new(dry_run: bool, progress: &'a dyn Progress) -> Steps<'a> {
        Steps {
            dry_run,
            progress,
            changes: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
        }
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
        tracing::info!(cluster, step, "warning: {message}");
        self.warnings
            .lock()
            .unwrap()
            .push(format!("{cluster}: {message}"));
        self.emit(cluster, step, EventKind::Warning(message), Instant::now());
    }

    /// Runs one step with its Started / Changed / Unchanged / Found / Failed events.
    pub(crate) async fn step<F>(&self, cluster: &str, step: &str, body: F) -> Result<()>
    where
        F: std::future::Future<Output = Result<Outcome>>,
    {
        let started = Instant::now();
        self.emit(cluster, step, EventKind::Started, started);
        match body.await {
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
    pub(crate) fn finish(self) -> (Vec<Change>, Vec<String>) {
        (
            self.changes.into_inner().unwrap(),
            self.warnings.into_inner().unwrap(),
        )
    }
}
