//! The flags to suggest for preflight problems and for the libraries' errors. The
//! libraries' messages say what is wrong and what to do in their own terms ("give another
//! network", "give an existing kubeconfig file"); this module maps each [`ProblemKind`]
//! (and whether the cluster is the primary or a remote) and each credentials error of
//! mesh-kubeconfig to the flag of `kubectl mesh join` (or `unjoin`, `remote-secret`)
//! that does it.

use mesh_core::{Problem, ProblemKind, ValuesFor};

/// Which cluster of the join a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The primary (`--primary`).
    Primary,
    /// A remote (`REMOTE`).
    Remote,
    /// No cluster: the command's inputs (`-`).
    Inputs,
}

/// How the binary says what to do about a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// The message begins with the library's name for an input the user gave with this
    /// flag: the flag takes its place (`network "x" …` → `--remote-network "x" …`).
    Names {
        subject: &'static str,
        flag: &'static str,
    },
    /// What to pass, said after the message.
    Pass(&'static str),
    /// A flag given that should not be, said after the message.
    Drop(&'static str),
    /// What to pass, said after the library's `words` for it, if the message has them.
    After {
        words: &'static str,
        what: &'static str,
    },
}

/// The hint for a problem of `kind` about a cluster of `role`, if a flag fixes it.
fn hint(kind: ProblemKind, role: Role) -> Option<Hint> {
    let primary = role == Role::Primary;
    let either = |primary_flag, remote_flag| if primary { primary_flag } else { remote_flag };
    Some(match kind {
        ProblemKind::IstioMissing => Hint::Pass("--install (or -n with Istio's namespace)"),
        ProblemKind::CrdsMissing | ProblemKind::IstiodMissing => Hint::Pass("--install"),
        ProblemKind::NameInvalid | ProblemKind::NameGivenTwice => {
            Hint::Pass(either("--primary-cluster-name NAME", "--cluster-name NAME"))
        }
        // About a remote's name, though found in the primary's remote secrets.
        ProblemKind::NameIsPrimarys | ProblemKind::NameTaken => Hint::Pass("--cluster-name NAME"),
        ProblemKind::ClusterIdMismatch => Hint::Drop("--primary-cluster-name"),
        ProblemKind::NetworkInvalid => Hint::Names {
            subject: "network",
            flag: either("--network", "--remote-network"),
        },
        ProblemKind::NetworkContradictsDeclared => {
            Hint::Drop(either("--network", "--remote-network"))
        }
        ProblemKind::SameNetwork => Hint::Pass("--remote-network NAME"),
        ProblemKind::CertsMissing => Hint::Pass("--certs DIR"),
        ProblemKind::StoredCacertsUnreadable => Hint::Pass("--replace-cacerts to overwrite it"),
        ProblemKind::HelmReleasePending => {
            Hint::Pass("--repair-pending to uninstall and reinstall it")
        }
        ProblemKind::HelmUnusable => Hint::Pass("--helm PATH"),
        ProblemKind::ChartsMissing => Hint::Pass("--istio-charts DIR"),
        ProblemKind::ValuesFileMissing(ValuesFor::ControlPlane) => Hint::Names {
            subject: "control-plane values file",
            flag: "--values",
        },
        ProblemKind::ValuesFileMissing(ValuesFor::Gateway) => Hint::Names {
            subject: "gateway values file",
            flag: "--gateway-values",
        },
        ProblemKind::SetInvalid(ValuesFor::ControlPlane) => Hint::Names {
            subject: "control-plane setting",
            flag: "--set",
        },
        ProblemKind::SetInvalid(ValuesFor::Gateway) => Hint::Names {
            subject: "gateway setting",
            flag: "--gateway-set",
        },
        ProblemKind::PlainHttp => Hint::Pass("--allow-plain-http if you really mean it"),
        ProblemKind::UnverifiedCa => Hint::Pass("--certificate-authority FILE"),
        // Unjoin's.
        ProblemKind::LinkedUnderOtherName => Hint::Pass("--cluster-name KEY"),
        ProblemKind::NotLinked => Hint::After {
            words: "give that name",
            what: "--cluster-name NAME",
        },
        ProblemKind::DuplicateLinks => Hint::After {
            words: "replace the hand-made ones with kubectl-mesh's own",
            what: "--replace-links",
        },
        ProblemKind::LinkBroken | ProblemKind::LinkNamedOtherwise => Hint::After {
            words: "replace it with kubectl-mesh's own",
            what: "--replace-links",
        },
        ProblemKind::ModelContradicts => Hint::Pass("--model MODEL matching the mesh"),
        ProblemKind::PeerWithoutContext => Hint::Pass(
            "--kubeconfig with a context for that member (it is found by its API server)",
        ),
        // Rotate's.
        ProblemKind::HandMadeLink => Hint::After {
            words: "join can replace it with kubectl-mesh's own",
            what: "--replace-links to join",
        },
        _ => return None,
    })
}

/// The flag to suggest for an error of mesh-kubeconfig (reading kubeconfigs, making
/// reader credentials, a remote secret), if a flag fixes it.
fn credentials_hint(err: &mesh_kubeconfig::Error) -> Option<&'static str> {
    use mesh_kubeconfig::Error as E;
    Some(match err {
        E::KubeconfigMissing { .. } | E::NoKubeconfig { .. } => "--kubeconfig FILE",
        E::InvalidServer { .. } => "--server URL",
        E::InvalidClusterName { .. } => "--name NAME",
        E::NoLegacyTokenSecret { .. } | E::NoTokenSecret { .. } | E::Timeout { .. } => {
            "--token-ttl DURATION"
        }
        E::AmbiguousTokenSecret { .. } | E::NotATokenSecret { .. } => "--secret-name NAME",
        E::PlainHttp { .. } => "--allow-plain-http if you really mean it",
        E::UnverifiedCa { .. } => "--certificate-authority FILE",
        E::NoCertificateAuthority { .. } => {
            "--certificate-authority FILE, or check --server and --tls-server-name"
        }
        _ => return None,
    })
}

/// The flag to suggest for a command's error: for the first error in its chain that a
/// flag fixes.
fn error_hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|e| {
        if let Some(mesh_core::Error::Credentials(e)) = e.downcast_ref::<mesh_core::Error>() {
            credentials_hint(e)
        } else if let Some(e) = e.downcast_ref::<mesh_kubeconfig::Error>() {
            credentials_hint(e)
        } else if e.is::<mesh_kubeconfig::RequestTimedOut>() {
            Some("a longer --request-timeout")
        } else {
            None
        }
    })
}

/// A command's error as the user reads it: its chain, with the flag that fixes it.
pub fn error(err: &anyhow::Error) -> String {
    let text = chain_text(err);
    match error_hint(err) {
        Some(what) => format!("{text} (pass {what})"),
        None => text,
    }
}

/// `err` and its causes joined by `: `, each cause only when the text so far does not
/// already say it (many errors name their cause in their own message, and would
/// otherwise be read two or three times over).
fn chain_text(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// A warning of `remote-secret`, with the flag that fixes it.
pub fn warning(w: &mesh_kubeconfig::Warning) -> String {
    match w {
        mesh_kubeconfig::Warning::LoopbackServer { .. } => format!("{w} (pass --server URL)"),
        _ => w.to_string(),
    }
}

/// One problem as `kubectl mesh join` shows it: `<cluster>: <message>`, with the flag
/// that fixes it.
pub fn render(problem: &Problem, role: Role) -> String {
    let message = match hint(problem.kind, role) {
        Some(Hint::Names { subject, flag }) => match problem.message.strip_prefix(subject) {
            Some(rest) => format!("{flag}{rest}"),
            None => format!("{} ({flag})", problem.message),
        },
        Some(Hint::Pass(what)) => format!("{} (pass {what})", problem.message),
        Some(Hint::Drop(flag)) => format!("{} (drop {flag})", problem.message),
        Some(Hint::After { words, what }) => {
            problem
                .message
                .replacen(words, &format!("{words} (pass {what})"), 1)
        }
        None => problem.message.clone(),
    };
    format!("{}: {message}", problem.cluster)
}

/// `err`, with preflight's problems rendered by [`preflight`].
pub fn explain(err: mesh_core::Error, primary: &str) -> anyhow::Error {
    match err {
        mesh_core::Error::Preflight { problems } => anyhow::anyhow!(preflight(&problems, primary)),
        other => other.into(),
    }
}

/// Preflight's problems, each with its flag, as the error of `join` or `unjoin`.
pub fn preflight(problems: &[Problem], primary: &str) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let role = match p.cluster.as_str() {
                "-" => Role::Inputs,
                c if c == primary => Role::Primary,
                _ => Role::Remote,
            };
            format!("  ✗ {}", render(p, role))
        })
        .collect();
    format!(
        "preflight found {} problem(s); nothing was changed:\n{}",
        problems.len(),
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_named_by_the_library_is_named_by_its_flag() {
        let p = Problem::new(
            "cluster2",
            ProblemKind::NetworkInvalid,
            "network \"net work\" is not a valid label value; give another network",
        );
        assert_eq!(
            render(&p, Role::Remote),
            "cluster2: --remote-network \"net work\" is not a valid label value; give another network"
        );
        assert!(render(&p, Role::Primary).starts_with("cluster2: --network \"net work\""));
        let set = Problem::new(
            "-",
            ProblemKind::SetInvalid(ValuesFor::Gateway),
            "gateway setting number 1 of 1 is not KEY=VALUE",
        );
        assert_eq!(
            render(&set, Role::Inputs),
            "-: --gateway-set number 1 of 1 is not KEY=VALUE"
        );
    }

    #[test]
    fn a_fix_by_flag_follows_the_message() {
        let p = Problem::new(
            "cluster1",
            ProblemKind::HelmReleasePending,
            "helm release istio-system/istiod is pending-install",
        );
        assert!(
            render(&p, Role::Primary)
                .ends_with("(pass --repair-pending to uninstall and reinstall it)")
        );
        let other = Problem::new(
            "cluster1",
            ProblemKind::LinkedUnderOtherName,
            "cluster2 is linked by remote Secret s; unjoin it under that key as its cluster name",
        );
        assert!(render(&other, Role::Primary).ends_with("(pass --cluster-name KEY)"));
        let not_linked = Problem::new(
            "cluster1",
            ProblemKind::NotLinked,
            "nothing links it. If it was joined under another name, give that name; else remove by hand",
        );
        assert!(
            render(&not_linked, Role::Primary)
                .contains("give that name (pass --cluster-name NAME); else")
        );
        let leftover = Problem::new(
            "cluster1",
            ProblemKind::NotLinked,
            "kubectl delete secret cacerts",
        );
        assert_eq!(
            render(&leftover, Role::Primary),
            "cluster1: kubectl delete secret cacerts"
        );
        let hand_made = Problem::new(
            "cluster2",
            ProblemKind::HandMadeLink,
            "its link was made by hand; only kubectl-mesh's links are rotated: join can replace it with kubectl-mesh's own, then rotate it",
        );
        assert!(
            render(&hand_made, Role::Remote).contains(
                "join can replace it with kubectl-mesh's own (pass --replace-links to join), then"
            ),
            "{}",
            render(&hand_made, Role::Remote)
        );
        let roots = Problem::new("-", ProblemKind::RootsDiffer, "the roots differ");
        assert_eq!(render(&roots, Role::Inputs), "-: the roots differ");
    }

    #[test]
    fn each_credentials_error_suggests_its_flag() {
        use mesh_kubeconfig::Error as E;
        let s = String::from;
        let (cluster, namespace, name) = (s("east"), s("istio-system"), s("reader"));
        let cases = [
            (
                E::KubeconfigMissing { path: "/x".into() },
                "--kubeconfig FILE",
            ),
            (
                E::NoKubeconfig {
                    tried: s("~/.kube/config"),
                },
                "--kubeconfig FILE",
            ),
            (
                E::InvalidServer {
                    context: s("east"),
                    reason: s("no host"),
                },
                "--server URL",
            ),
            (E::InvalidClusterName { name: s("East") }, "--name NAME"),
            (
                E::NoLegacyTokenSecret {
                    cluster: cluster.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                },
                "--token-ttl DURATION",
            ),
            (
                E::NoTokenSecret {
                    cluster: cluster.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                },
                "--token-ttl DURATION",
            ),
            (
                E::Timeout {
                    what: s("a token"),
                    waited: std::time::Duration::from_secs(1),
                    hint: s("wait"),
                },
                "--token-ttl DURATION",
            ),
            (
                E::AmbiguousTokenSecret {
                    cluster: cluster.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    candidates: s("a, b"),
                },
                "--secret-name NAME",
            ),
            (
                E::NotATokenSecret {
                    cluster: cluster.clone(),
                    namespace: namespace.clone(),
                    secret: s("x"),
                    account: name.clone(),
                    reason: s("no"),
                },
                "--secret-name NAME",
            ),
            (
                E::PlainHttp {
                    server: s("http://east"),
                },
                "--allow-plain-http",
            ),
            (
                E::UnverifiedCa {
                    context: s("east"),
                    server: s("https://east"),
                },
                "--certificate-authority FILE",
            ),
            (
                E::NoCertificateAuthority {
                    server: s("https://east"),
                    reason: s("none"),
                },
                "--tls-server-name",
            ),
        ];
        for (err, flag) in cases {
            let text = error(&anyhow::Error::new(mesh_core::Error::Credentials(err)));
            assert!(text.ends_with(")") && text.contains(flag), "{text}");
        }
        let direct = error(&anyhow::Error::new(E::PlainHttp { server: s("x") }));
        assert!(
            direct.ends_with("(pass --allow-plain-http if you really mean it)"),
            "{direct}"
        );
        let timed_out = mesh_kubeconfig::RequestTimedOut {
            cluster: cluster.clone(),
            request: s("GET /version"),
            after: std::time::Duration::from_secs(5),
        };
        assert!(
            error(&anyhow::Error::new(timed_out)).ends_with("(pass a longer --request-timeout)")
        );
        let p = Problem::new(
            "cluster2",
            ProblemKind::PlainHttp,
            "server http://x uses plain http://",
        );
        assert!(render(&p, Role::Remote).contains("(pass --allow-plain-http"));
        let other = anyhow::Error::new(E::Serialize {
            what: s("x"),
            reason: s("y"),
        });
        assert_eq!(error(&other), other.to_string());
    }

    #[test]
    fn a_cause_the_message_already_names_is_not_repeated() {
        let refused = || anyhow::anyhow!("connection refused");
        let names = refused()
            .context("cannot connect to istiod at 127.0.0.1:1: connection refused")
            .context("cluster1");
        assert_eq!(
            error(&names),
            "cluster1: cannot connect to istiod at 127.0.0.1:1: connection refused"
        );
        let silent = refused().context("asking istiod failed");
        assert_eq!(error(&silent), "asking istiod failed: connection refused");
    }
}
