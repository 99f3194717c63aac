//! Command-line surface of `kubectl mesh`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration::parse_duration;

/// Join Kubernetes clusters into one Istio service mesh that spans networks.
///
/// One cluster runs the control plane (the primary); the others are remotes whose
/// traffic crosses an east-west gateway. Every command checks before it changes
/// anything and can be re-run safely.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl mesh",
    bin_name = "kubectl mesh",
    version,
    propagate_version = true,
    after_help = "Run `kubectl mesh COMMAND --help` for the options of a command."
)]
pub struct Cli {
    /// Options every command takes (kubectl does not parse them for plugins).
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's global options, which plugins must parse themselves.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The Istio namespace.
    #[arg(
        short = 'n',
        long,
        global = true,
        default_value = "istio-system",
        value_name = "NAMESPACE"
    )]
    pub namespace: String,

    /// How long to wait for a single API request before giving up (e.g. 30s, 1m;
    /// default 30s, also when 0): a request without an answer by then fails, naming the
    /// cluster and the request.
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,

    /// More diagnostics on stderr: -v info, -vv debug, -vvv trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// `--request-timeout`; `None` when unset or zero: the default deadline
    /// ([`mesh_kubeconfig::DEFAULT_REQUEST_TIMEOUT`]) then applies — no request waits forever.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout.filter(|d| !d.is_zero())
    }
}

/// The commands of `kubectl mesh`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version, git commit and build target.
    Version(crate::cmd::version::VersionArgs),
    /// Print the Secret that lets the primary's istiod read a remote cluster.
    ///
    /// In REMOTE it makes sure the reader ServiceAccount exists (creating it, bound to a
    /// read-only ClusterRole equivalent to Istio's reader role, if missing) and gets a token
    /// for it: from the ServiceAccount's legacy secrets[] reference, else from an existing
    /// token Secret, else from a token Secret it creates (Kubernetes 1.24 and later create
    /// none) — or, with --token-ttl, a TokenRequest token that expires. It prints
    /// istio-remote-secret-<name>: a kubeconfig with inline CA data and that token, labelled
    /// istio/multiCluster=true, for `kubectl apply` on the primary (the GitOps path, like
    /// `istioctl create-remote-secret`). Warnings go to stderr; the token only to stdout.
    RemoteSecret(Box<crate::cmd::remote_secret::RemoteSecretArgs>),
    /// Check or create the CA bundles (cacerts) that let clusters trust each other.
    ///
    /// Every cluster of a multi-cluster mesh needs a `cacerts` Secret with ca-cert.pem,
    /// ca-key.pem, root-cert.pem and cert-chain.pem issued under one shared root.
    /// `check` validates bundles before they reach a cluster; `generate` creates them.
    Certs(crate::cmd::certs::CertsArgs),
    /// Join clusters to the primary's Istio mesh across networks (the guide's whole procedure).
    ///
    /// Checks everything first — contexts reachable and authorised, Istio installed, names
    /// and networks consistent, CA bundles valid and sharing one root with what the clusters
    /// store — and changes nothing if any check fails. Then, changing only what differs:
    /// cacerts in each cluster, the topology.istio.io/network label, the cross-network
    /// Gateway (TLS AUTO_PASSTHROUGH) on each east-west gateway, meshNetworks with each
    /// gateway's address, and reader credentials plus the remote Secret istiod watches.
    /// A second run changes nothing; a failed run can simply be re-run.
    Join(Box<crate::cmd::join::JoinArgs>),
    /// Take a remote out of the primary's mesh, removing what join added for it.
    ///
    /// Removes the remote Secret(s) for the cluster from the primary, its meshNetworks
    /// entry, and the token Secret join created in the remote (unless another remote
    /// Secret still uses it) — nothing else. --purge also removes what join set up in the
    /// remote (cacerts, network label, cross-network Gateway, reader account). A remote
    /// that no longer answers does not stop it: the primary is cleaned and the rest is
    /// reported. Running it again changes nothing.
    Unjoin(Box<crate::cmd::unjoin::UnjoinArgs>),
    /// Show the mesh (one row per cluster) and check every link: credentials, token
    /// expiry, shared roots, networks, gateways, and where remote-profile remotes reach
    /// istiod.
    ///
    /// Reads the primary's remote Secrets (label istio/multiCluster=true); each data key
    /// is a cluster ID with the kubeconfig istiod uses. Changes nothing; prints no token.
    /// Exits 1 when a check fails, with a hint saying what to run.
    Status(Box<crate::cmd::status::StatusArgs>),
    /// Replace links' credentials (the reader token in each remote Secret) with no
    /// moment when istiod cannot read the cluster.
    ///
    /// Per link: a new token, checked against the remote, written into the link's own
    /// remote Secret, then — once the new kubeconfig authenticates and istiod reports the
    /// cluster synced again (--istiod) — the old token revoked. An interrupted run is
    /// completed by running it again. --if-expiring-within makes it a scheduled job.
    Rotate(Box<crate::cmd::rotate::RotateArgs>),
    /// Prove the mesh works: what istiod tells each cluster's sidecars about a service,
    /// and, where pods run, which versions answer requests (the guide's last step).
    ///
    /// Deploys the guide's samples where missing (helloworld v1 in the primary, v2 in every
    /// other cluster, sleep everywhere), asks istiod over xDS what sleep's sidecar in each
    /// cluster is told for helloworld, judges it against Istio's split-horizon rules, sends
    /// the guide's requests from sleep, and removes the samples it deployed. Changes
    /// nothing else. Exits 1 when something fails, each failure with the cause found.
    Verify(Box<crate::cmd::verify::VerifyArgs>),
    /// Print a shell completion script (bash, zsh, fish, …) for `kubectl-mesh`.
    ///
    /// kubectl (1.26 and later) completes `kubectl mesh …` itself with the help of the
    /// `kubectl_complete-mesh` executable on PATH: a symlink to `kubectl-mesh`.
    Completion(crate::cmd::completion::CompletionArgs),
}

/// How a command that changes clusters runs (`join`, `unjoin`): only planned or applied,
/// asked for or confirmed up front, and in what form its summary comes out.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Change nothing; say what would be created, changed or removed (with -o yaml|json:
    /// the plan as data).
    #[arg(long)]
    pub dry_run: bool,

    /// Output: text progress, or the summary as yaml or json on stdout.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Do not ask for confirmation (needed without a terminal).
    #[arg(short, long)]
    pub yes: bool,
}

/// Output formats shared by commands that print objects or reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// JSON, for machines.
    Json,
    /// YAML, for `kubectl apply -f -` and GitOps.
    Yaml,
}
