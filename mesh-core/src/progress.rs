//! Progress of a plan, as a stream of events the caller renders.

use std::time::Duration;

/// One thing that happened to a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// The step began.
    Started,
    /// The step waits for something (said in plain words).
    Waiting(String),
    /// The step changed the cluster (or, in a dry run, would); says what.
    Changed(String),
    /// The cluster already was as the step wants it.
    Unchanged,
    /// The step changed nothing and found something worth showing (e.g. an address).
    Found(String),
    /// Something the user should know; the step goes on.
    Warning(String),
    /// The step failed; says why.
    Failed(String),
}

/// An event of one step on one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The cluster the step works on (its context name).
    pub cluster: String,
    /// The step's name, e.g. "cacerts" or "meshNetworks".
    pub step: String,
    /// What happened.
    pub kind: EventKind,
    /// Time since the step started.
    pub elapsed: Duration,
}

/// Receives the events of a plan. Implemented for any `Fn(Event)`.
///
/// ```
/// use mesh_core::{Event, Progress};
/// let progress = |e: Event| tracing::info!("{} {} {:?}", e.cluster, e.step, e.kind);
/// progress.event(Event {
///     cluster: "cluster2".into(),
///     step: "cacerts".into(),
///     kind: mesh_core::EventKind::Unchanged,
///     elapsed: std::time::Duration::ZERO,
/// });
/// ```
pub trait Progress: Send + Sync {
    /// Called for every event, from any task.
    fn event(&self, event: Event);
}

impl<F: Fn(Event) + Send + Sync> Progress for F {
    fn event(&self, event: Event) {
        self(event)
    }
}

/// A progress sink that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _: Event) {}
}
