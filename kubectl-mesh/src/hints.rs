//! The flags to suggest for preflight problems. mesh-core's messages say what is wrong
//! and what to do in the library's terms ("give another network"); this module maps each
//! [`ProblemKind`], and whether the cluster is the primary or a remote, to the flag of
//! `kubectl mesh join` (or `unjoin`) that does it.

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
        // Unjoin's.
        ProblemKind::LinkedUnderOtherName => Hint::Pass("--cluster-name KEY"),
        ProblemKind::NotLinked => Hint::After {
            words: "give that name",
            what: "--cluster-name NAME",
        },
        _ => return None,
    })
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
        let roots = Problem::new("-", ProblemKind::RootsDiffer, "the roots differ");
        assert_eq!(render(&roots, Role::Inputs), "-: the roots differ");
    }
}
