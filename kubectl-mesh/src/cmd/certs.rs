//! `kubectl mesh certs check|generate`: plugged-in CA bundles (`cacerts`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use mesh_certs::generate::{
    IntermediateOptions, KeyType, RootCa, RootOptions, WriteOptions, write_layout,
};
use mesh_certs::{
    BundleFile, CaBundle, Check, CheckOutcome, Finding, Report, RootAgreement, Severity, Status,
    ValidationOptions,
};
use serde::Serialize;

use crate::style::Style;

const DAY: u64 = 24 * 60 * 60;

/// Options of `kubectl mesh certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// What to do with CA bundles.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// The `certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Validate plugged-in CA bundles before they reach a cluster.
    ///
    /// Each DIR holds one cluster's bundle, the four files of the `cacerts` Secret:
    /// ca-cert.pem (the cluster's intermediate CA), ca-key.pem (its private key),
    /// root-cert.pem (the root(s) every cluster trusts) and cert-chain.pem
    /// (ca-cert.pem, then its issuers up to the root, which may be left out).
    ///
    /// Checks, stricter than istiod: well-formed PEM of the right kind in each file;
    /// an unencrypted RSA (>= 2048 bits) or ECDSA key that matches ca-cert.pem;
    /// ca-cert.pem is a CA allowed to sign and valid now (a warning when it expires
    /// soon); root-cert.pem holds self-signed CAs; cert-chain.pem is ordered; ca-cert.pem
    /// chains to a root with every signature, path length and validity checked; SHA-1
    /// is a warning. With several DIRs the bundles must also share a root.
    ///
    /// Exit status: 0 valid (warnings allowed), 1 a bundle is invalid or the roots
    /// differ, 2 usage error (e.g. a DIR that does not exist).
    #[command(after_help = "Examples:\n  \
# One bundle, as laid out by Istio's tools/certs or `kubectl mesh certs generate`\n  \
kubectl mesh certs check certs/cluster1\n\n  \
# Two clusters that will join one mesh: both valid, and one shared root\n  \
kubectl mesh certs check certs/cluster1 certs/cluster2\n\n  \
# For scripts\n  \
kubectl mesh certs check certs/cluster1 -o json")]
    Check(CheckArgs),

    /// Create a root CA and one intermediate CA per cluster, as Istio's tools/certs does.
    ///
    /// Writes OUT/root-cert.pem and OUT/root-key.pem (the root, 10 years, O=Istio,
    /// CN=Root CA) and for each NAME the cacerts bundle in OUT/NAME/: ca-cert.pem and
    /// ca-key.pem, an intermediate CA (2 years, pathlen 0, O=Istio, CN=Intermediate CA,
    /// L=NAME, SAN DNS:istiod.istio-system.svc), root-cert.pem, and cert-chain.pem
    /// = intermediate then root. Keys are ECDSA P-256 unless --key-type rsa; key files
    /// are written with mode 0600.
    ///
    /// When OUT already holds root-cert.pem and root-key.pem, that root is reused, so a
    /// cluster can join an existing mesh later. An existing root is never replaced
    /// unless both --new-root and --force are given, and an existing OUT/NAME bundle
    /// only with --force.
    #[command(after_help = "Examples:\n  \
# A new mesh of two clusters\n  \
kubectl mesh certs generate --out certs cluster1 cluster2\n\n  \
# A third cluster joins later: reuses certs/root-cert.pem and certs/root-key.pem\n  \
kubectl mesh certs generate --out certs cluster3\n\n  \
# Then, in each cluster\n  \
kubectl create secret generic cacerts -n istio-system --from-file=certs/cluster3/ --context cluster3")]
    Generate(GenerateArgs),
}

/// Output formats of `certs check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// ✓/✗ lines per check, with a fix for each problem.
    Text,
    /// One JSON object, for machines.
    Json,
}

/// Options of `kubectl mesh certs check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Directories holding ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = CheckFormat::Text)]
    pub output: CheckFormat,

    /// Warn when ca-cert.pem expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub expiry_warning_days: u64,
}

/// Key types `certs generate` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    /// ECDSA P-256.
    Ecdsa,
    /// RSA; see --rsa-bits.
    Rsa,
}

/// RSA key sizes `certs generate` can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RsaBits {
    /// 2048 bits.
    #[value(name = "2048")]
    B2048,
    /// 4096 bits (what Istio's tools/certs uses).
    #[value(name = "4096")]
    B4096,
}

/// Options of `kubectl mesh certs generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory to write the root and the per-cluster bundles into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Cluster names; each gets OUT/NAME/ (letters, digits, '-', '_', '.').
    #[arg(value_name = "NAME", required = true, value_parser = parse_name)]
    pub names: Vec<String>,

    /// Key type of newly created keys.
    #[arg(long, value_enum, default_value_t = KeyTypeArg::Ecdsa)]
    pub key_type: KeyTypeArg,

    /// RSA key size, with --key-type rsa.
    #[arg(long, value_name = "BITS", value_enum, default_value_t = RsaBits::B4096)]
    pub rsa_bits: RsaBits,

    /// Validity of a new root, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 3650)]
    pub root_days: u64,

    /// Validity of the intermediates, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 730)]
    pub intermediate_days: u64,

    /// Create a new root even when OUT already has one (needs --force to replace it).
    #[arg(long)]
    pub new_root: bool,

    /// Replace existing files: OUT/NAME bundles, and the root with --new-root.
    #[arg(long)]
    pub force: bool,
}

fn parse_name(name: &str) -> Result<String, String> {
    mesh_certs::generate::check_cluster_name(name)
        .map(|()| name.to_owned())
        .map_err(|e| e.to_string())
}

/// Runs `kubectl mesh certs ...`.
pub fn run(args: &CertsArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        CertsCommand::Check(args) => check(args),
        CertsCommand::Generate(args) => generate(args),
    }
}

/// `certs check -o json`: the verdict, each bundle's checks, and whether they share a root.
#[derive(Debug, Serialize)]
struct CheckReport<'a> {
    /// Every bundle valid and, with several, one root shared by all.
    valid: bool,
    /// One entry per DIR, in the order given.
    bundles: Vec<BundleReport<'a>>,
    /// With several DIRs: whether they share a root; `null` for one.
    roots: Option<RootsReport<'a>>,
}

/// One bundle of a [`CheckReport`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleReport<'a> {
    /// The directory, as given.
    dir: &'a str,
    /// No error (warnings allowed).
    valid: bool,
    /// Every check with its status, by stable id.
    checks: &'a [CheckOutcome],
    /// The problems found, each with its fix.
    findings: &'a [Finding],
    /// SHA-256 fingerprints of the roots in root-cert.pem.
    root_fingerprints: Vec<String>,
}

/// Whether the bundles of a [`CheckReport`] share a root.
#[derive(Debug, Serialize)]
struct RootsReport<'a> {
    /// Every bundle trusts at least one common root.
    agreed: bool,
    /// Which roots are common, and which bundles disagree.
    #[serde(flatten)]
    agreement: &'a RootAgreement,
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    // A DIR that is not a directory is a usage error: nothing to check.
    for dir in &args.dirs {
        if !dir.is_dir() {
            let why = if dir.exists() {
                "not a directory"
            } else {
                "no such directory"
            };
            eprintln!(
                "error: {}: {why}\n\nUsage: kubectl mesh certs check DIR [DIR...]\n\
                 Each DIR holds ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem.",
                dir.display()
            );
            return Ok(ExitCode::from(2));
        }
    }
    let options = ValidationOptions {
        expiry_warning: Duration::from_secs(args.expiry_warning_days.saturating_mul(DAY)),
        ..ValidationOptions::default()
    };
    let mut bundles = Vec::new();
    for dir in &args.dirs {
        let bundle = CaBundle::load_dir(dir)
            .with_context(|| format!("reading the bundle in {}", dir.display()))?;
        let report = bundle.validate(&options);
        bundles.push((dir.display().to_string(), bundle, report));
    }
    let agreement = (bundles.len() > 1).then(|| {
        let named: Vec<(&str, &CaBundle)> =
            bundles.iter().map(|(n, b, _)| (n.as_str(), b)).collect();
        mesh_certs::common_root(&named)
    });
    let all_valid = bundles.iter().all(|(_, _, r)| r.is_valid());
    let roots_ok = agreement.as_ref().is_none_or(|a| a.is_agreed());
    let valid = all_valid && roots_ok;

    match args.output {
        CheckFormat::Json => {
            let report = CheckReport {
                valid,
                bundles: bundles
                    .iter()
                    .map(|(dir, bundle, report)| BundleReport {
                        dir,
                        valid: report.is_valid(),
                        checks: &report.checks,
                        findings: &report.findings,
                        root_fingerprints: bundle.root_fingerprints(),
                    })
                    .collect(),
                roots: agreement.as_ref().map(|agreement| RootsReport {
                    agreed: agreement.is_agreed(),
                    agreement,
                }),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        CheckFormat::Text => {
            let style = Style::stdout();
            for (dir, _, report) in &bundles {
                print_report(style, dir, report);
            }
            if let Some(a) = &agreement {
                println!("roots shared by all bundles:");
                if a.is_agreed() {
                    println!(
                        "  {} {} {}",
                        style.ok(),
                        Check::CommonRoot.description(),
                        style.dim(&format!("(sha256 {})", short(&a.common[0])))
                    );
                } else {
                    println!("  {} the bundles do not share a root:", style.failed());
                    for (dir, bundle, _) in &bundles {
                        let set = bundle.root_set();
                        let roots: Vec<String> = set
                            .roots()
                            .iter()
                            .map(|r| format!("{} (sha256 {})", r.subject, short(&r.fingerprint)))
                            .collect();
                        let roots = if roots.is_empty() {
                            "no readable root".to_owned()
                        } else {
                            roots.join(" and ")
                        };
                        let odd = if a.disagreeing.contains(dir) {
                            " (disagrees)"
                        } else {
                            ""
                        };
                        println!("      {dir}{odd} trusts {roots}");
                    }
                    println!(
                        "      fix: issue every cluster's intermediate from one root (`kubectl mesh certs generate --out DIR NAME...` reuses DIR's root), or put both roots in each root-cert.pem during a rotation"
                    );
                }
            }
            let invalid = bundles.iter().filter(|(_, _, r)| !r.is_valid()).count();
            let summary = match (invalid, roots_ok) {
                (0, true) => format!("{} bundle(s) valid", bundles.len()),
                (0, false) => format!(
                    "{} bundle(s) valid, but without a shared root",
                    bundles.len()
                ),
                (n, _) => format!("{n} of {} bundle(s) invalid", bundles.len()),
            };
            println!("{summary}");
        }
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn short(fingerprint: &str) -> &str {
    &fingerprint[..fingerprint.len().min(16)]
}

fn print_report(style: Style, dir: &str, report: &Report) {
    println!("{dir}:");
    let path = |file: BundleFile| Path::new(dir).join(file.file_name()).display().to_string();
    for outcome in &report.checks {
        let check = outcome.check;
        match outcome.status {
            Status::Passed => println!("  {} {}", style.ok(), check.description()),
            Status::Skipped => println!(
                "  {}",
                style.dim(&format!(
                    "- {} (not checked: an earlier check failed)",
                    check.description()
                ))
            ),
            Status::Warning | Status::Failed => {
                for f in report.findings_for(check) {
                    let mark = match f.severity {
                        Severity::Error => style.failed(),
                        Severity::Warning => style.warning(),
                    };
                    println!("  {mark} {}: {}", path(f.file), f.message);
                    println!("      fix: {}", f.fix);
                }
            }
        }
    }
}

fn key_type(args: &GenerateArgs) -> KeyType {
    match (args.key_type, args.rsa_bits) {
        (KeyTypeArg::Ecdsa, _) => KeyType::EcdsaP256,
        (KeyTypeArg::Rsa, RsaBits::B2048) => KeyType::Rsa2048,
        (KeyTypeArg::Rsa, RsaBits::B4096) => KeyType::Rsa4096,
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let out = &args.out;
    if out.exists() && !out.is_dir() {
        eprintln!("error: --out {}: not a directory", out.display());
        return Ok(ExitCode::from(2));
    }
    let key_type = key_type(args);
    let root_cert = out.join("root-cert.pem");
    let root_key = out.join("root-key.pem");
    let has_root = root_cert.exists() || root_key.exists();

    // Refuse before creating anything.
    if has_root && args.new_root && !args.force {
        bail!(
            "{} already holds a root CA; refusing to overwrite it (clusters that trust it would \
             stop trusting new certificates). Pass --new-root --force to replace it, or drop \
             --new-root to add clusters under the existing root",
            out.display()
        );
    }
    if has_root && !args.new_root && !(root_cert.exists() && root_key.exists()) {
        let missing = if root_cert.exists() {
            &root_key
        } else {
            &root_cert
        };
        bail!(
            "{} is missing, so the root in {} cannot be reused; restore it, or pass \
             --new-root --force to create a new root",
            missing.display(),
            out.display()
        );
    }
    if !args.force {
        for name in &args.names {
            for file in BundleFile::ALL {
                let path = out.join(name).join(file.file_name());
                if path.exists() {
                    bail!(
                        "{} already exists; refusing to replace the bundle of {name} \
                         (pass --force to reissue it; its cluster then needs the new cacerts \
                         and an istiod restart)",
                        path.display()
                    );
                }
            }
        }
    }

    let (root, reused) = if has_root && !args.new_root {
        let root = RootCa::load(out)
            .with_context(|| format!("reusing the root CA in {}", out.display()))?;
        (root, true)
    } else {
        let root = RootCa::generate(&RootOptions {
            key_type,
            validity: Duration::from_secs(args.root_days.saturating_mul(DAY)),
            ..RootOptions::default()
        })?;
        (root, false)
    };
    let options = IntermediateOptions {
        key_type,
        validity: Duration::from_secs(args.intermediate_days.saturating_mul(DAY)),
        ..IntermediateOptions::default()
    };
    let intermediates = args
        .names
        .iter()
        .map(|name| root.issue_intermediate(name, &options))
        .collect::<Result<Vec<_>, _>>()?;
    // Belt and braces: never write a bundle our own check would refuse.
    for ica in &intermediates {
        let report = ica.to_bundle().validate(&ValidationOptions::default());
        if !report.is_valid() {
            bail!(
                "the bundle generated for {} does not pass `certs check`: {:?}",
                ica.name(),
                report.errors().map(|f| &f.message).collect::<Vec<_>>()
            );
        }
    }
    write_layout(
        out,
        &root,
        &intermediates,
        WriteOptions {
            overwrite: args.force,
        },
    )?;

    let verb = if reused { "Reused" } else { "Created" };
    println!(
        "{verb} root CA {} (sha256 {})",
        root_cert.display(),
        short(&root.fingerprint())
    );
    for ica in &intermediates {
        let dir = out.join(ica.name());
        println!(
            "Created {}/{{ca-cert,ca-key,root-cert,cert-chain}}.pem",
            dir.display()
        );
    }
    println!("\nNext, for each cluster NAME (istiod reads cacerts only when it starts):");
    println!(
        "  kubectl create secret generic cacerts -n istio-system --from-file={}/ --context NAME",
        out.join("NAME").display()
    );
    println!(
        "Keep {} offline: it can issue certificates every cluster trusts.",
        root_key.display()
    );
    Ok(ExitCode::SUCCESS)
}
