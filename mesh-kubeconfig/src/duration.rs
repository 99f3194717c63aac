//! Durations as kubectl writes them (`30s`, `5m`, `1h30m`, `1.5h`).

use std::time::Duration;

use crate::{Error, Result};

/// Parses a duration the way kubectl flags take it: a sequence of numbers with the
/// units `ms`, `s`, `m`, `h` (e.g. `30s`, `10m`, `1h30m`, `1.5h`); a bare number
/// means seconds.
///
/// ```
/// # use std::time::Duration;
/// assert_eq!(mesh_kubeconfig::parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(mesh_kubeconfig::parse_duration("45").unwrap(), Duration::from_secs(45));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration> {
    let invalid = |reason: &str| Error::InvalidDuration {
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let s = text.trim();
    if s.is_empty() {
        return Err(invalid("it is empty"));
    }
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).ok_or_else(|| invalid("it must be a non-negative number"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| invalid("a number needs a unit (ms, s, m, h)"))?;
        if num_len == 0 {
            return Err(invalid("expected a number such as 30s, 5m or 1h30m"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| invalid("expected a number such as 30s, 5m or 1h30m"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid("units are ms, s, m and h")),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total).ok_or_else(|| invalid("it is out of range"))
}

fn secs_to_duration(secs: f64) -> Option<Duration> {
    (0.0..1e12)
        .contains(&secs)
        .then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
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
    fn rejects_garbage_with_the_value_in_the_message() {
        for input in ["", "abc", "5x", "-3s", "h"] {
            let err = parse_duration(input).unwrap_err().to_string();
            assert!(err.contains(&format!("{input:?}")), "{err}");
        }
    }
}
