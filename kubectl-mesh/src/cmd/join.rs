//! `kubectl mesh join`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use mesh_certs::CaBundle;
use mesh_core::{
    AddressOverride, ClusterSpec, JoinOptions, JoinSummary, Problem, ProblemKind, Remote,
};
use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};

use crate::cli::{GlobalArgs, OutputFormat, PlanArgs};
use crate::cmd::remote_secret::{CredentialArgs, credentials_request};
use crate::duration::parse_duration;

/// Options of `kubectl mesh join`.
#[derive(Debug, Args)]
#[command(mut_arg("dry_run", |arg| arg.help(
    "Change nothing; say what would change (with -o yaml|json: the objects)"
)))]
#[command(after_help = "Examples:
  # Generate one root and a CA per cluster, then join cluster2 to cluster1's istiod
  kubectl mesh certs generate --out certs cluster1 cluster2
  kubectl mesh join cluster2 --primary cluster1 --certs certs

  # The guide's one bundle for every cluster (Istio's samples/certs; join warns)
  kubectl mesh join cluster2 --primary cluster1 --certs istio-1.28.0/samples/certs

  # See what would change, as objects for GitOps, without changing anything
  kubectl mesh join cluster2 --primary cluster1 --certs certs --dry-run -o yaml

  # Join two remotes at once (concurrently)
  kubectl mesh join cluster2 cluster3 --primary cluster1 --certs certs --yes

  # Multi-primary: every cluster runs istiod and reads the others (links both ways)
  kubectl mesh join cluster2 cluster3 --primary cluster1 --certs certs --model multi-primary

  # Later, one more primary: the model is read from the mesh; name every member
  kubectl mesh join cluster4 cluster2 cluster3 --primary cluster1 --certs certs

  # Clusters on one flat network: no east-west gateway for service traffic
  kubectl mesh join cluster2 --primary cluster1 --certs certs --one-network

  # Install Istio where it is missing (helm upgrade --install, Istio's own charts), then join
  kubectl mesh join cluster2 --primary cluster1 --certs certs --install --istio-charts istio-1.28.0/manifests/charts

  # See what --install would install: the rendered charts, as objects
  kubectl mesh join cluster2 --primary cluster1 --certs certs --install --istio-charts charts --dry-run -o yaml")]
pub struct JoinArgs {
    /// The kubeconfig contexts of the clusters to join (asked for on a terminal when missing).
    #[arg(value_name = "REMOTE")]
    pub remotes: Vec<String>,

    /// The context of the primary cluster, where istiod runs (default: --context, then
    /// the current context).
    #[arg(long, value_name = "CONTEXT")]
    pub primary: Option<String>,

    /// The CA bundles (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), in one of
    /// two layouts: DIR/<cluster name>/ for each cluster, as `kubectl mesh certs generate`
    /// writes them (one intermediate CA per cluster), or the four files in DIR itself
    /// (Istio's samples/certs), one bundle shared by every cluster of the join (with a
    /// warning: every cluster then holds the one intermediate's key). A DIR holding both
    /// layouts is refused.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["primary_certs", "remote_certs"])]
    pub certs: Option<PathBuf>,

    /// The primary's CA bundle directory (instead of --certs).
    #[arg(long, value_name = "DIR")]
    pub primary_certs: Option<PathBuf>,

    /// The remote's CA bundle directory (instead of --certs; one remote only).
    #[arg(long, value_name = "DIR")]
    pub remote_certs: Option<PathBuf>,

    /// The primary's network, when it declares none (default: network-<cluster name>).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,

    /// The remote's network, when it declares none (one remote only).
    #[arg(long, value_name = "NAME")]
    pub remote_network: Option<String>,

    /// The remote's cluster ID (default: its context name as a DNS-1123 label; one remote only).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// The primary's cluster ID (default: istiod's CLUSTER_ID, else the context name).
    #[arg(long, value_name = "NAME")]
    pub primary_cluster_name: Option<String>,

    /// The API server URL the primary uses to reach the remote (default: the context's;
    /// one remote only).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,

    /// The remote's east-west gateway address, ADDR or ADDR:PORT (default: discovered;
    /// one remote only).
    #[arg(long, value_name = "ADDR")]
    pub gateway_address: Option<String>,

    /// The primary's east-west gateway address, ADDR or ADDR:PORT (default: discovered).
    #[arg(long, value_name = "ADDR")]
    pub primary_gateway_address: Option<String>,

    /// The name of the remote Secret in the primary (default: istio-remote-secret-<name>;
    /// one remote only). `n2-k8s-secret` reproduces the guide.
    #[arg(long, value_name = "NAME")]
    pub remote_secret_name: Option<String>,

    /// Overwrite a stored cacerts Secret whose root cannot be read (no readable
    /// root-cert.pem) with the given bundle; without it join refuses, since nothing
    /// shows the given root is the one that cluster's workloads trust.
    #[arg(long)]
    pub replace_cacerts: bool,

    /// Replace links to a remote that kubectl-mesh did not make — the guide's
    /// n2-k8s-secret, or what `istioctl create-remote-secret` applied — with kubectl-mesh's
    /// own (istio-remote-secret-<name>, keyed by the remote's cluster name): the new link
    /// is written first, then the old Secret (or its key) and its meshNetworks registry
    /// are removed. Without it, a hand-made link that works is adopted as it is, under its
    /// cluster ID, and two links to one cluster stop the join.
    #[arg(long)]
    pub replace_links: bool,

    /// Istio's multicluster model: primary-remote (the primary's istiod serves the
    /// remotes) or multi-primary (every cluster named runs istiod and reads every other:
    /// a remote secret in both directions for each pair). Default: the model the primary's
    /// mesh is recorded in, else primary-remote. Every member of a multi-primary mesh must
    /// be named (or be reachable by a context); a join that contradicts the mesh's model
    /// is refused.
    #[arg(long, value_name = "MODEL", value_parser = ["primary-remote", "multi-primary"])]
    pub model: Option<String>,

    /// The clusters share one network (pods reach each other directly): no cross-network
    /// Gateway, no network labels, no meshNetworks gateways. Default: one network when
    /// every cluster declares the same topology.istio.io/network, else a network each.
    #[arg(long)]
    pub one_network: bool,

    /// How the reader credentials are made.
    #[command(flatten)]
    pub credentials: CredentialArgs,

    /// Dry run, output and confirmation, as for every command that changes clusters.
    #[command(flatten)]
    pub plan: PlanArgs,

    /// How long each wait (a gateway's address) may take.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Installing Istio where it is missing (last: its flags have their own heading).
    #[command(flatten)]
    pub install: InstallArgs,
}

/// `--install` and what it takes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Installing Istio (--install)")]
pub struct InstallArgs {
    /// Install Istio where it is missing, with helm (`helm upgrade --install`): on the
    /// primary istio-base, istiod (mesh ID, cluster name, network) and an east-west
    /// gateway; on each remote istio-base and istiod with the remote profile (istiod's
    /// address: the primary's east-west gateway), then its east-west gateway. Releases
    /// already deployed are left as they are.
    #[arg(long)]
    pub install: bool,

    /// Istio's chart directory: an Istio release's manifests/charts, or base/, istiod/
    /// and gateway/ as `helm pull --untar` gives them.
    #[arg(long, value_name = "DIR", env = "ISTIO_CHARTS")]
    pub istio_charts: Option<PathBuf>,

    /// The helm binary.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "helm",
        requires = "install"
    )]
    pub helm: PathBuf,

    /// The mesh ID given to the primary's istiod.
    #[arg(long, value_name = "ID", default_value = mesh_core::install::DEFAULT_MESH_ID, requires = "install")]
    pub mesh_id: String,

    /// A value for the control-plane releases (istio-base, istiod), as helm's --set;
    /// repeatable; wins over ours.
    #[arg(long, value_name = "KEY=VALUE", requires = "install")]
    pub set: Vec<String>,

    /// A values file for the control-plane releases, as helm's --values; repeatable.
    #[arg(short = 'f', long, value_name = "FILE", requires = "install")]
    pub values: Vec<PathBuf>,

    /// A value for the east-west gateway releases (gateway chart); repeatable.
    #[arg(long, value_name = "KEY=VALUE", requires = "install")]
    pub gateway_set: Vec<String>,

    /// A values file for the east-west gateway releases; repeatable.
    #[arg(long, value_name = "FILE", requires = "install")]
    pub gateway_values: Vec<PathBuf>,

    /// Uninstall and reinstall a release of ours left pending-install even when that
    /// happened recently (by default only one older than --timeout plus a minute is:
    /// a younger one may be another helm's install still running).
    #[arg(long, requires = "install")]
    pub repair_pending: bool,
}

/// Runs `kubectl mesh join`.
pub fn run(global: &GlobalArgs, args: &JoinArgs) -> anyhow::Result<ExitCode> {
    let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::from_flag(global.kubeconfig.clone()))?;
    let primary =
        kubeconfigs.context_or_current(args.primary.as_deref().or(global.context.as_deref()))?;
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let remotes = if args.remotes.is_empty() {
        vec![choose_remote(&kubeconfigs, &primary, interactive)?]
    } else {
        args.remotes.clone()
    };
    let single = remotes.len() == 1;
    for (flag, set) in [
        ("--remote-certs", args.remote_certs.is_some()),
        ("--remote-network", args.remote_network.is_some()),
        ("--cluster-name", args.cluster_name.is_some()),
        ("--server", args.server.is_some()),
        ("--gateway-address", args.gateway_address.is_some()),
        ("--remote-secret-name", args.remote_secret_name.is_some()),
    ] {
        if set && !single {
            bail!("{flag} names one remote's setting; join the remotes one at a time to use it");
        }
    }
    let (join_options, warnings) = options(global, args, &primary, &remotes, &kubeconfigs)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let runtime = super::runtime()?;

    // On a terminal, show the plan and ask before changing anything.
    if !args.plan.dry_run && !args.plan.yes {
        if !interactive {
            bail!(
                "join changes {primary} and {}; pass --yes to confirm without a terminal (or --dry-run to see the plan)",
                remotes.join(", ")
            );
        }
        let (mut preview, _) = options(global, args, &primary, &remotes, &kubeconfigs)?;
        preview.dry_run = true;
        let plan = runtime
            .block_on(mesh_core::join(
                &kubeconfigs,
                &preview,
                &mesh_core::NoProgress,
            ))
            .map_err(|e| crate::hints::explain(e, &primary))?;
        if plan.changes.is_empty() {
            eprintln!(
                "Nothing to change: {primary} and {} are already joined.",
                remotes.join(", ")
            );
        } else {
            if !super::confirm_plan(&plan.changes, &plan.warnings, "Apply these changes?")? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }

    let mut summary = super::apply(
        &runtime,
        &args.plan,
        &join_options.interrupt,
        async |progress| mesh_core::join(&kubeconfigs, &join_options, progress).await,
    )
    .map_err(|e| crate::hints::explain(e, &primary))?;
    if args.plan.output != OutputFormat::Text {
        // Said on stderr already; the report as data carries them too.
        summary.warnings.splice(0..0, warnings);
    }
    match args.plan.output {
        OutputFormat::Text => print_summary(&summary),
        // The objects, ready for GitOps.
        OutputFormat::Yaml if summary.dry_run => print_objects(&summary)?,
        data => super::print_data(&summary, data)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The join's options, and the warnings about them to show once.
fn options(
    global: &GlobalArgs,
    args: &JoinArgs,
    primary: &str,
    remotes: &[String],
    kubeconfigs: &Kubeconfigs,
) -> anyhow::Result<(JoinOptions, Vec<String>)> {
    let wait = args.timeout;
    let request_timeout = global.request_timeout();
    let mut warnings = Vec::new();
    let primary_name = args
        .primary_cluster_name
        .clone()
        .unwrap_or_else(|| mesh_kubeconfig::dns1123_label(primary));
    let remote_name = |remote: &str| {
        args.cluster_name
            .clone()
            .unwrap_or_else(|| mesh_kubeconfig::dns1123_label(remote))
    };
    let certs_dir = match &args.certs {
        Some(dir) => {
            let mut names = vec![primary_name.clone()];
            names.extend(remotes.iter().map(|r| remote_name(r)));
            let layout = certs_layout_of(dir, &names)?;
            if layout == CertsLayout::Shared {
                warnings.push(shared_bundle_warning(dir, &names));
            }
            Some((dir.as_path(), layout))
        }
        None => None,
    };
    let primary_certs = match (certs_dir, &args.primary_certs) {
        (Some((dir, layout)), _) => Some(load(
            &layout.dir_of(dir, &primary_name),
            "--certs",
            &primary_name,
        )?),
        (None, Some(dir)) => Some(load(dir, "--primary-certs", primary)?),
        (None, None) => None,
    };
    let mut input_problems = Vec::new();
    let mut gateway_address = |context: &str, flag: &str, text: &Option<String>| {
        let parsed = text
            .as_deref()
            .map(str::parse::<AddressOverride>)
            .transpose();
        parsed.unwrap_or_else(|e| {
            input_problems.push(address_problem(context, flag, text.as_deref(), e));
            None
        })
    };
    let primary_address = gateway_address(
        primary,
        "--primary-gateway-address",
        &args.primary_gateway_address,
    );
    let mut remote_specs = Vec::new();
    for remote in remotes {
        let name = remote_name(remote);
        let certs = match (certs_dir, &args.remote_certs) {
            (Some((dir, layout)), _) => Some(load(&layout.dir_of(dir, &name), "--certs", &name)?),
            (None, Some(dir)) => Some(load(dir, "--remote-certs", remote)?),
            (None, None) => None,
        };
        let mut request = credentials_request(global, remote, &args.credentials)?;
        request.server = args.server.clone();
        request.secret_name = args.remote_secret_name.clone();
        let mut spec = Remote::new(remote.as_str()).with_credentials(request);
        if let Some(name) = &args.cluster_name {
            spec = spec.with_cluster_name(name.as_str());
        }
        if let Some(network) = &args.remote_network {
            spec = spec.with_network(network.as_str());
        }
        if let Some(address) = gateway_address(remote, "--gateway-address", &args.gateway_address) {
            spec = spec.with_gateway_address(address);
        }
        if let Some(certs) = certs {
            spec = spec.with_certs(certs);
        }
        remote_specs.push(spec);
    }
    let options = JoinOptions {
        namespace: global.namespace.clone(),
        primary: ClusterSpec {
            context: primary.to_owned(),
            cluster_name: args.primary_cluster_name.clone(),
            network: args.network.clone(),
            gateway_address: primary_address,
            certs: primary_certs,
        },
        remotes: remote_specs,
        dry_run: args.plan.dry_run,
        wait: if wait.is_zero() {
            Duration::from_secs(120)
        } else {
            wait
        },
        request_timeout,
        install: install_options(&args.install, kubeconfigs)?,
        replace_cacerts: args.replace_cacerts,
        replace_links: args.replace_links,
        control_planes: args
            .model
            .as_deref()
            .map(|m| m.parse().expect("clap checked the value")),
        networks: args
            .one_network
            .then_some(mesh_core::cluster::Networks::One),
        input_problems,
        interrupt: mesh_core::Interrupt::default(),
    };
    Ok((options, warnings))
}

/// Where `--certs DIR` holds each cluster's CA bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertsLayout {
    /// DIR/<cluster name>/, one bundle per cluster (`kubectl mesh certs generate`).
    PerCluster,
    /// The four files in DIR itself: one bundle for every cluster (Istio's samples/certs).
    Shared,
}

impl CertsLayout {
    /// The directory holding `cluster`'s bundle.
    fn dir_of(self, dir: &Path, cluster: &str) -> PathBuf {
        match self {
            CertsLayout::PerCluster => dir.join(cluster),
            CertsLayout::Shared => dir.to_owned(),
        }
    }
}

/// Why `--certs DIR` gives no layout for the clusters of a join.
#[derive(Debug, PartialEq, Eq)]
enum CertsLayoutError {
    /// DIR holds bundle files and directories of clusters of this join: which bundle a
    /// cluster gets would depend on which directories happen to exist.
    Both {
        /// The bundle files in DIR.
        files: Vec<&'static str>,
        /// The clusters with a directory DIR/<cluster>/.
        clusters: Vec<String>,
    },
    /// Neither layout gives `cluster` a bundle.
    Missing {
        /// The first cluster without a directory.
        cluster: String,
    },
}

/// The files that mark DIR itself as a bundle. Not `root-cert.pem`: `certs generate`
/// writes it (and `root-key.pem`) at the top of its per-cluster layout.
const SHARED_MARKERS: [mesh_certs::BundleFile; 3] = [
    mesh_certs::BundleFile::CaCert,
    mesh_certs::BundleFile::CaKey,
    mesh_certs::BundleFile::CertChain,
];

/// Decides the layout from what DIR holds: `files`, the bundle files in DIR itself, and
/// each cluster of the join with whether DIR/<cluster>/ is a directory. A missing file of
/// the layout chosen is not decided here: preflight's bundle validation names it.
fn certs_layout(
    files: &[&'static str],
    clusters: &[(&str, bool)],
) -> Result<CertsLayout, CertsLayoutError> {
    let with_dir: Vec<String> = clusters
        .iter()
        .filter(|(_, has_dir)| *has_dir)
        .map(|(name, _)| (*name).to_owned())
        .collect();
    match (files.is_empty(), with_dir.is_empty()) {
        (false, true) => Ok(CertsLayout::Shared),
        (false, false) => Err(CertsLayoutError::Both {
            files: files.to_vec(),
            clusters: with_dir,
        }),
        (true, _) => match clusters.iter().find(|(_, has_dir)| !has_dir) {
            Some((name, _)) => Err(CertsLayoutError::Missing {
                cluster: (*name).to_owned(),
            }),
            None => Ok(CertsLayout::PerCluster),
        },
    }
}

/// [`certs_layout`] of the directory `dir` for the clusters `names`, as a user-facing error.
fn certs_layout_of(dir: &Path, names: &[String]) -> anyhow::Result<CertsLayout> {
    if !dir.is_dir() {
        bail!(
            "--certs: {} is not a directory; it should hold DIR/<cluster>/ for each cluster (`kubectl mesh certs generate --out DIR {}`) or the four files of one bundle shared by every cluster (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem)",
            dir.display(),
            names.join(" ")
        );
    }
    // symlink_metadata: a file that exists in any form marks the layout; loading it
    // later refuses what is not a small regular file.
    let files: Vec<&'static str> = SHARED_MARKERS
        .iter()
        .map(|f| f.file_name())
        .filter(|f| dir.join(f).symlink_metadata().is_ok())
        .collect();
    let clusters: Vec<(&str, bool)> = names
        .iter()
        .map(|n| (n.as_str(), dir.join(n).is_dir()))
        .collect();
    certs_layout(&files, &clusters).map_err(|e| match e {
        CertsLayoutError::Both { files, clusters } => anyhow::anyhow!(
            "--certs: {} holds both layouts, one bundle for every cluster ({}) and a bundle per cluster ({}); keep one: move those directories out to use the one bundle, or move the files out of {} itself to use a bundle per cluster",
            dir.display(),
            files.join(", "),
            clusters
                .iter()
                .map(|c| format!("{}", dir.join(c).display()))
                .collect::<Vec<_>>()
                .join(", "),
            dir.display(),
        ),
        CertsLayoutError::Missing { cluster } => anyhow::anyhow!(
            "--certs: {} is not a directory, and {} holds no bundle of its own (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem); create one per cluster with `kubectl mesh certs generate --out {} {}`, or put the four files of one bundle shared by every cluster in {}",
            dir.join(&cluster).display(),
            dir.display(),
            dir.display(),
            names.join(" "),
            dir.display(),
        ),
    })
}

/// The warning for [`CertsLayout::Shared`].
fn shared_bundle_warning(dir: &Path, names: &[String]) -> String {
    format!(
        "--certs {} holds one CA bundle, used for every cluster ({}): one intermediate CA shared by all clusters is what Istio's multicluster guide does, and then every cluster holds its key; one intermediate per cluster (`kubectl mesh certs generate --out DIR {}`, then --certs DIR) limits what a leaked key exposes: each cluster holds only its own, and replacing a leaked one re-keys that cluster alone",
        dir.display(),
        names.join(", "),
        names.join(" "),
    )
}

/// A gateway address flag that does not parse, as a problem preflight reports with its own.
fn address_problem(
    context: &str,
    flag: &str,
    text: Option<&str>,
    err: mesh_core::Error,
) -> Problem {
    let why = match err {
        mesh_core::Error::InvalidAddress { reason, .. } => reason,
        other => other.to_string(),
    };
    Problem::new(
        context,
        ProblemKind::GatewayAddressInvalid,
        format!(
            "{flag} {:?} {why}; pass HOST or HOST:PORT",
            text.unwrap_or_default()
        ),
    )
}

/// A join's error as the user reads it: preflight's problems with the flags that fix them.
fn install_options(
    args: &InstallArgs,
    kubeconfigs: &Kubeconfigs,
) -> anyhow::Result<Option<mesh_core::InstallOptions>> {
    if !args.install {
        return Ok(None);
    }
    let Some(charts) = &args.istio_charts else {
        bail!(
            "--install needs Istio's charts: pass --istio-charts DIR (or set ISTIO_CHARTS) with the manifests/charts directory of an Istio release, or a directory holding base/, istiod/ and gateway/ from `helm pull istio/<chart> --untar`"
        );
    };
    let mut install = mesh_core::InstallOptions::new(charts);
    install.helm = args.helm.clone();
    install.kubeconfig_files = kubeconfigs.files().to_vec();
    install.mesh_id = args.mesh_id.clone();
    install.set = args.set.clone();
    install.values_files = args.values.clone();
    install.gateway_set = args.gateway_set.clone();
    install.repair_pending = args.repair_pending;
    install.gateway_values_files = args.gateway_values.clone();
    Ok(Some(install))
}

fn load(dir: &Path, flag: &str, cluster: &str) -> anyhow::Result<CaBundle> {
    if !dir.is_dir() {
        bail!(
            "{flag}: {} is not a directory; it should hold the CA bundle of {cluster} (create one with `kubectl mesh certs generate --out DIR {cluster}`)",
            dir.display()
        );
    }
    Ok(CaBundle::load_dir(dir)?)
}

fn choose_remote(
    kubeconfigs: &Kubeconfigs,
    primary: &str,
    interactive: bool,
) -> anyhow::Result<String> {
    let choices: Vec<&str> = kubeconfigs
        .contexts()
        .into_iter()
        .filter(|c| *c != primary)
        .collect();
    if !interactive {
        bail!(
            "name the cluster to join: kubectl mesh join REMOTE (contexts: {})",
            choices.join(", ")
        );
    }
    if choices.is_empty() {
        bail!(
            "the kubeconfig has no context besides the primary {primary}; add the remote cluster's context first"
        );
    }
    let picked = dialoguer::Select::new()
        .with_prompt(format!("Which cluster joins {primary}'s mesh?"))
        .items(&choices)
        .default(0)
        .interact()
        .context("reading the choice")?;
    Ok(choices[picked].to_owned())
}

/// A dry run's objects as YAML documents, each after a comment naming its cluster.
fn print_objects(summary: &JoinSummary) -> anyhow::Result<()> {
    for (change, c) in summary
        .changes
        .iter()
        .filter_map(|c| Some((c, c.object.as_ref()?)))
    {
        // Which cluster each object is for, as a YAML comment.
        println!("# {}: {}", change.cluster, change.description);
        // A rendered helm release is a List: one document per object.
        let objects = match c["items"].as_array() {
            Some(items) if c["kind"] == "List" => items.iter().collect(),
            _ => vec![c],
        };
        for object in objects {
            print!("---\n{}", serde_saphyr::to_string(object)?);
        }
    }
    Ok(())
}

fn print_summary(summary: &JoinSummary) {
    let verb = if summary.dry_run {
        "would change"
    } else {
        "changed"
    };
    eprintln!();
    eprintln!("model: {}", summary.model);
    for c in std::iter::once(&summary.primary).chain(&summary.remotes) {
        let gw = c
            .gateway
            .as_ref()
            .map(|address| format!("gateway {address}"))
            .unwrap_or_else(|| "no gateway".into());
        eprintln!(
            "{:<12} cluster {:<12} network {:<12} {gw}",
            c.context, c.cluster_name, c.network
        );
    }
    for a in &summary.adopted {
        println!("adopted {a}");
    }
    if summary.changes.is_empty() {
        println!("Everything was already in place: nothing changed.");
    } else {
        println!("{} object(s) {verb}:", summary.changes.len());
        for c in &summary.changes {
            println!("  {}: {}", c.cluster, c.description);
        }
    }
    for w in &summary.warnings {
        eprintln!("warning: {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `--certs DIR` holds, and the layout (or the refusal) it means.
    struct Case {
        name: &'static str,
        /// The bundle files in DIR itself.
        files: &'static [&'static str],
        /// Each cluster of the join, and whether DIR/<cluster>/ is a directory.
        clusters: &'static [(&'static str, bool)],
        expect: Result<CertsLayout, CertsLayoutError>,
    }

    const FILES: &[&str] = &["ca-cert.pem", "ca-key.pem", "cert-chain.pem"];

    fn both(clusters: &[&str]) -> Result<CertsLayout, CertsLayoutError> {
        Err(CertsLayoutError::Both {
            files: FILES.to_vec(),
            clusters: clusters.iter().map(|c| (*c).to_owned()).collect(),
        })
    }

    fn missing(cluster: &str) -> Result<CertsLayout, CertsLayoutError> {
        Err(CertsLayoutError::Missing {
            cluster: cluster.to_owned(),
        })
    }

    #[test]
    fn certs_layout_by_what_the_directory_holds() {
        let cases = [
            Case {
                name: "Istio's samples/certs: the files, no cluster directory",
                files: FILES,
                clusters: &[("cluster1", false), ("cluster2", false)],
                expect: Ok(CertsLayout::Shared),
            },
            Case {
                name: "some of the files mean one bundle (validation names the rest)",
                files: &["ca-cert.pem"],
                clusters: &[("cluster1", false), ("cluster2", false)],
                expect: Ok(CertsLayout::Shared),
            },
            Case {
                name: "certs generate: a directory per cluster (root-cert.pem at the top is no bundle)",
                files: &[],
                clusters: &[("cluster1", true), ("cluster2", true), ("cluster3", true)],
                expect: Ok(CertsLayout::PerCluster),
            },
            Case {
                name: "both layouts for every cluster",
                files: FILES,
                clusters: &[("cluster1", true), ("cluster2", true)],
                expect: both(&["cluster1", "cluster2"]),
            },
            Case {
                name: "both layouts, a directory for one cluster only",
                files: FILES,
                clusters: &[("cluster1", false), ("cluster2", true)],
                expect: both(&["cluster2"]),
            },
            Case {
                name: "a directory per cluster, but not for every cluster",
                files: &[],
                clusters: &[("cluster1", true), ("cluster2", false), ("cluster3", false)],
                expect: missing("cluster2"),
            },
            Case {
                name: "neither layout",
                files: &[],
                clusters: &[("cluster1", false), ("cluster2", false)],
                expect: missing("cluster1"),
            },
        ];
        for c in cases {
            assert_eq!(certs_layout(c.files, c.clusters), c.expect, "{}", c.name);
        }
    }

    #[test]
    fn the_shared_layout_reads_every_cluster_from_dir_itself() {
        let dir = Path::new("certs");
        assert_eq!(CertsLayout::Shared.dir_of(dir, "cluster2"), dir);
        assert_eq!(
            CertsLayout::PerCluster.dir_of(dir, "cluster2"),
            dir.join("cluster2")
        );
    }

    #[test]
    fn the_shared_bundle_warning_says_what_each_layout_means() {
        let names = ["cluster1".to_owned(), "cluster2".to_owned()];
        let w = shared_bundle_warning(Path::new("samples/certs"), &names);
        assert!(w.contains("cluster1, cluster2"), "{w}");
        assert!(
            w.contains("one intermediate CA shared by all clusters"),
            "{w}"
        );
        assert!(w.contains("Istio's multicluster guide"), "{w}");
        assert!(w.contains("kubectl mesh certs generate"), "{w}");
        assert!(w.contains("limits what a leaked key exposes"), "{w}");
    }
}
