//! Dynamic shell completion: the protocol kubectl (1.26 and later) speaks with plugins.
//!
//! When the user presses TAB after `kubectl mesh …`, kubectl runs the executable
//! `kubectl_complete-mesh` from `PATH` with the plugin's words so far, the last one being
//! the word to complete (empty for a new word). The answer is cobra's `__complete` format:
//! one candidate per line (`value<TAB>description`), then `:<directive>`.
//!
//! The same binary answers both ways: run as `kubectl_complete-mesh` (a symlink to
//! `kubectl-mesh`), or as `kubectl-mesh __complete WORD…` (cobra's hidden command name).
//! Candidates come from the clap definition of the commands — so they never drift from
//! what the parser accepts — plus the kubeconfig's context names for REMOTE, `--context`
//! and `--primary`.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, Command, CommandFactory};
use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};

use crate::cli::Cli;

/// cobra's `ShellCompDirective`: what the shell does besides offering the candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Complete file names as well (cobra's default).
    Default = 0,
    /// Offer only the candidates; no file names.
    NoFileComp = 4,
    /// Complete directory names only.
    FilterDirs = 16,
}

/// Candidates (`value`, `description`) and a directive.
#[derive(Debug, PartialEq, Eq)]
pub struct Completions {
    /// The candidates, already filtered by the word being completed.
    pub candidates: Vec<(String, String)>,
    /// What the shell should do besides.
    pub directive: Directive,
}

impl Completions {
    fn none(directive: Directive) -> Self {
        Self {
            candidates: Vec::new(),
            directive,
        }
    }

    /// cobra's wire format: `value\tdescription` lines, then `:<directive>`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (value, help) in &self.candidates {
            out.push_str(value);
            if !help.is_empty() {
                out.push('\t');
                out.push_str(help);
            }
            out.push('\n');
        }
        out.push_str(&format!(":{}\n", self.directive as u8));
        out
    }
}

/// The words to complete when this process was started for completion: as
/// `kubectl_complete-mesh WORD…` or as `kubectl-mesh __complete WORD…`.
pub fn requested() -> Option<Vec<String>> {
    let mut args = std::env::args_os();
    let argv0 = PathBuf::from(args.next()?);
    let words: Vec<OsString> = if argv0
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("kubectl_complete-"))
    {
        args.collect()
    } else {
        let first = args.next()?;
        if first != "__complete" {
            return None;
        }
        args.collect()
    };
    Some(
        words
            .into_iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect(),
    )
}

/// Prints the completions of `words` and returns success (a completion never fails loudly:
/// a broken answer would end up in the user's command line).
pub fn run(words: &[String]) -> ExitCode {
    let rendered = complete(words).render();
    let _ = std::io::stdout().lock().write_all(rendered.as_bytes());
    ExitCode::SUCCESS
}

/// Completes the last of `words` (the plugin's arguments, without `kubectl mesh`).
pub fn complete(words: &[String]) -> Completions {
    let mut root = Cli::command();
    root.build();
    let (current, done) = match words.split_last() {
        Some((current, done)) => (current.as_str(), done),
        None => ("", &[][..]),
    };

    let mut cmd = &root;
    let mut positionals = 0;
    let mut pending: Option<&Arg> = None;
    let mut kubeconfig: Option<PathBuf> = None;
    let mut only_positionals = false;
    for word in done {
        if let Some(arg) = pending.take() {
            if arg.get_id() == "kubeconfig" {
                kubeconfig = Some(PathBuf::from(word));
            }
            continue;
        }
        if only_positionals {
            positionals += 1;
        } else if word == "--" {
            only_positionals = true;
        } else if let Some(flag) = word.strip_prefix("--") {
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (flag, None),
            };
            if let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(name)) {
                match value {
                    None if takes_value(arg) => pending = Some(arg),
                    Some(value) if arg.get_id() == "kubeconfig" => {
                        kubeconfig = Some(PathBuf::from(value));
                    }
                    _ => {}
                }
            }
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            // A cluster like -vv, or -n NAME, or -nNAME: the first flag that takes a value
            // consumes the rest of the word, or else the next word.
            for (i, c) in shorts.char_indices() {
                let Some(arg) = cmd.get_arguments().find(|a| a.get_short() == Some(c)) else {
                    break;
                };
                if takes_value(arg) {
                    if i + c.len_utf8() == shorts.len() {
                        pending = Some(arg);
                    }
                    break;
                }
            }
        } else if let Some(sub) = (positionals == 0)
            .then(|| cmd.find_subcommand(word))
            .flatten()
        {
            cmd = sub;
        } else {
            positionals += 1;
        }
    }

    if let Some(arg) = pending {
        return values(arg, current, "", kubeconfig);
    }
    if !only_positionals {
        if let Some(flag) = current.strip_prefix("--")
            && let Some((name, value)) = flag.split_once('=')
        {
            return match cmd.get_arguments().find(|a| a.get_long() == Some(name)) {
                Some(arg) if takes_value(arg) => {
                    values(arg, value, &format!("--{name}="), kubeconfig)
                }
                _ => Completions::none(Directive::NoFileComp),
            };
        }
        if current.starts_with('-') {
            return flags(cmd, current);
        }
    }
    if positionals == 0 && cmd.has_subcommands() {
        let candidates = cmd
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set() && sub.get_name().starts_with(current))
            .map(|sub| (sub.get_name().to_owned(), about(sub)))
            .collect();
        return Completions {
            candidates,
            directive: Directive::NoFileComp,
        };
    }
    let mut args: Vec<&Arg> = cmd.get_positionals().collect();
    args.sort_by_key(|a| a.get_index());
    let arg = args.get(positionals).copied().or_else(|| {
        args.last()
            .copied()
            .filter(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1))
    });
    match arg {
        Some(arg) => values(arg, current, "", kubeconfig),
        None => Completions::none(Directive::NoFileComp),
    }
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

fn about(cmd: &Command) -> String {
    cmd.get_about().map(|s| s.to_string()).unwrap_or_default()
}

fn help(arg: &Arg) -> String {
    arg.get_help().map(|s| s.to_string()).unwrap_or_default()
}

/// The flags of `cmd` that start with `current`.
fn flags(cmd: &Command, current: &str) -> Completions {
    let mut candidates = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            let flag = format!("--{long}");
            if flag.starts_with(current) {
                candidates.push((flag, help(arg)));
            }
        }
        if !current.starts_with("--")
            && let Some(short) = arg.get_short()
        {
            let flag = format!("-{short}");
            if flag.starts_with(current) {
                candidates.push((flag, help(arg)));
            }
        }
    }
    Completions {
        candidates,
        directive: Directive::NoFileComp,
    }
}

/// The values `arg` takes that start with `current`, each prefixed with `prefix`.
fn values(arg: &Arg, current: &str, prefix: &str, kubeconfig: Option<PathBuf>) -> Completions {
    let value_name = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.as_str())
        .unwrap_or_default();
    let is_context = matches!(arg.get_id().as_str(), "context" | "primary")
        || matches!(value_name, "CONTEXT" | "REMOTE");
    if is_context {
        let Ok(kc) = Kubeconfigs::load(&KubeconfigSource::from_flag(kubeconfig)) else {
            return Completions::none(Directive::NoFileComp);
        };
        let current_context = kc.current_context().map(str::to_owned);
        let candidates = kc
            .contexts()
            .into_iter()
            .filter(|c| c.starts_with(current))
            .map(|c| {
                let help = if current_context.as_deref() == Some(c) {
                    "current context"
                } else {
                    "kubeconfig context"
                };
                (format!("{prefix}{c}"), help.to_owned())
            })
            .collect();
        return Completions {
            candidates,
            directive: Directive::NoFileComp,
        };
    }
    let possible = arg.get_possible_values();
    if !possible.is_empty() {
        let candidates = possible
            .iter()
            .filter(|v| !v.is_hide_set() && v.get_name().starts_with(current))
            .map(|v| {
                (
                    format!("{prefix}{}", v.get_name()),
                    v.get_help().map(|h| h.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        return Completions {
            candidates,
            directive: Directive::NoFileComp,
        };
    }
    match value_name {
        "DIR" => Completions::none(Directive::FilterDirs),
        "FILE" | "PATH" => Completions::none(Directive::Default),
        _ => Completions::none(Directive::NoFileComp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
        if line.is_empty() {
            words = vec![String::new()];
        }
        words
    }

    fn values_of(line: &str) -> Vec<String> {
        complete(&words(line))
            .candidates
            .into_iter()
            .map(|(v, _)| v)
            .collect()
    }

    #[test]
    fn subcommands_at_the_top() {
        let got = values_of("");
        for name in ["join", "certs", "version", "completion", "remote-secret"] {
            assert!(
                got.contains(&name.to_owned()),
                "{name} missing from {got:?}"
            );
        }
        assert_eq!(values_of("ver"), ["version", "verify"]);
        assert_eq!(values_of("veri"), ["verify"]);
        assert_eq!(complete(&words("")).directive, Directive::NoFileComp);
    }

    #[test]
    fn nested_subcommands_and_their_flags() {
        assert!(values_of("certs ").contains(&"check".to_owned()));
        let flags = values_of("certs generate --");
        assert!(flags.contains(&"--out".to_owned()), "{flags:?}");
        assert!(
            flags.contains(&"--kubeconfig".to_owned()),
            "global flags too: {flags:?}"
        );
        assert!(
            !flags.contains(&"--dry-run".to_owned()),
            "join's flags leak: {flags:?}"
        );
    }

    #[test]
    fn flag_values_from_the_definition() {
        assert_eq!(values_of("version -o "), ["text", "json"]);
        assert_eq!(values_of("version --output=j"), ["--output=json"]);
        assert_eq!(values_of("-v version -o j"), ["json"]);
        assert_eq!(values_of("completion z"), ["zsh"]);
    }

    #[test]
    fn directories_and_files_are_left_to_the_shell() {
        assert_eq!(
            complete(&words("certs generate --out ")).directive,
            Directive::FilterDirs
        );
        assert_eq!(
            complete(&words("join --kubeconfig ")).directive,
            Directive::Default
        );
    }

    #[test]
    fn contexts_from_the_kubeconfig_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: east\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: east\n  context: {cluster: c, user: u}\n- name: west\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        let kc = format!("--kubeconfig {}", path.display());
        assert_eq!(values_of(&format!("{kc} join ")), ["east", "west"]);
        assert_eq!(values_of(&format!("join {kc} --primary w")), ["west"]);
        assert_eq!(
            values_of(&format!("join {kc} --context=e")),
            ["--context=east"]
        );
        assert_eq!(values_of(&format!("remote-secret {kc} ")), ["east", "west"]);
    }

    #[test]
    fn wire_format_ends_with_the_directive() {
        let out = complete(&words("version -o ")).render();
        assert!(out.ends_with("\n:4\n"), "{out}");
        assert!(out.starts_with("text\t"), "{out}");
    }
}
