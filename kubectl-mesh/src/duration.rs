//! Durations on the command line, as kubectl writes them (`30s`, `5m`, `1h30m`, `1.5h`):
//! clap value parsers, so that a bad value is a usage error naming its flag.

use std::time::Duration;

/// Why a duration flag's value was refused; clap puts the flag and the value in front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDuration {
    reason: &'static str,
    /// The form accepted, with examples.
    accepted: &'static str,
}

impl std::fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {}", self.reason, self.accepted)
    }
}

impl std::error::Error for InvalidDuration {}

const KUBECTL_FORM: &str =
    "a duration is numbers with the units ms, s, m or h, such as 30s, 5m or 1h30m";
const DAYS_FORM: &str = "a duration like 7d, 48h or 30m";

/// Parses a duration the way kubectl flags take it: a sequence of numbers with the units
/// `ms`, `s`, `m`, `h` (e.g. `30s`, `10m`, `1h30m`, `1.5h`); a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidDuration> {
    parse(
        text,
        &[("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)],
    )
    .map_err(|reason| InvalidDuration {
        reason,
        accepted: KUBECTL_FORM,
    })
}

/// Like [`parse_duration`], and also a whole number of days (`7d`), for periods
/// such as how long before an expiry to warn.
pub fn parse_duration_or_days(text: &str) -> Result<Duration, InvalidDuration> {
    let invalid = |reason| InvalidDuration {
        reason,
        accepted: DAYS_FORM,
    };
    if let Some(days) = text.strip_suffix('d') {
        let days: u64 = days.parse().map_err(|_| invalid("not a number of days"))?;
        return days
            .checked_mul(24 * 3600)
            .map(Duration::from_secs)
            .ok_or_else(|| invalid("it is out of range"));
    }
    parse_duration(text).map_err(|e| invalid(e.reason))
}

/// Sums `<number><unit>` pairs; the reason it cannot when it cannot.
fn parse(text: &str, units: &[(&str, f64)]) -> Result<Duration, &'static str> {
    let s = text.trim();
    if s.is_empty() {
        return Err("it is empty");
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).ok_or("it must be a non-negative number");
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or("a number needs a unit")?;
        if num_len == 0 {
            return Err("expected a number before each unit");
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| "expected a number before each unit")?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = units
            .iter()
            .find(|(unit, _)| *unit == &rest[..unit_len])
            .map(|(_, factor)| factor)
            .ok_or("unknown unit")?;
        total += value * factor;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total).ok_or("it is out of range")
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (0.0..1e12)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn parses_kubectl_durations() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1.5h", 5_400_000),
            ("250ms", 250),
            ("2", 2_000),
            ("0", 0),
        ];
        for (input, ms) in cases {
            assert_eq!(
                parse_duration(input).unwrap(),
                Duration::from_millis(ms),
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_garbage_saying_the_accepted_form() {
        for input in ["", "abc", "5x", "-3s", "h", "7d"] {
            let err = parse_duration(input).unwrap_err().to_string();
            assert!(err.contains("30s, 5m or 1h30m"), "{input}: {err}");
        }
    }

    #[test]
    fn days_are_taken_where_asked_for() {
        assert_eq!(parse_duration_or_days("7d").unwrap().as_secs(), 7 * 86400);
        assert_eq!(parse_duration_or_days("48h").unwrap().as_secs(), 48 * 3600);
        for input in ["xd", "5x", "d"] {
            let err = parse_duration_or_days(input).unwrap_err().to_string();
            assert!(err.contains("like 7d, 48h or 30m"), "{input}: {err}");
        }
    }

    /// What a user sees: the flag, the value and the accepted form, as a usage error.
    #[test]
    fn a_bad_duration_flag_is_a_usage_error_naming_the_flag() {
        for (args, flag, value) in [
            (&["join", "west", "--timeout", "5x"][..], "--timeout", "5x"),
            (
                &["remote-secret", "west", "--token-ttl", "1 day"],
                "--token-ttl",
                "1 day",
            ),
            (
                &["remote-secret", "west", "--token-wait", "soon"],
                "--token-wait",
                "soon",
            ),
            (
                &["status", "--request-timeout=-1s"],
                "--request-timeout",
                "-1s",
            ),
            (
                &["status", "--expiry-warning", "xd"],
                "--expiry-warning",
                "xd",
            ),
        ] {
            let err = crate::cli::Cli::try_parse_from(
                std::iter::once("kubectl-mesh").chain(args.iter().copied()),
            )
            .unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
            let text = err.to_string();
            assert!(
                text.contains(flag) && text.contains(value) && text.contains("30m"),
                "{args:?}: {text}"
            );
        }
    }
}
