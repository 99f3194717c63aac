//! Rules for the names join gives or accepts (beyond the DNS-1123 labels of
//! `mesh_kubeconfig`).

/// Whether `value` may be a Kubernetes label value that names something: 1 to 63
/// letters, digits, `-`, `_` or `.`, beginning and ending with a letter or digit.
pub(crate) fn is_label_value(value: &str) -> bool {
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    value.len() <= 63
        && edge_ok(value.bytes().next())
        && edge_ok(value.bytes().last())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::is_label_value;

    #[test]
    fn network_names_are_label_values() {
        for good in ["network1", "net_2", "a", "eu-west.1", &"n".repeat(63)] {
            assert!(is_label_value(good), "{good:?} was refused");
        }
        for bad in [
            "",
            "-net",
            "net-",
            "net work",
            "net/1",
            "n=1",
            &"n".repeat(64),
        ] {
            assert!(!is_label_value(bad), "{bad:?} was accepted");
        }
    }
}
