//! DNS-1123 labels: the shape of a cluster name (it becomes a Secret name suffix and a data key).

/// Whether `s` is a DNS-1123 label: 1–63 characters of `a-z`, `0-9` and `-`,
/// starting and ending with an alphanumeric character.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Turns any string (typically a kubeconfig context name such as
/// `arn:aws:eks:eu-west-1:123:cluster/prod` or `gke_project_zone_name`) into a
/// DNS-1123 label.
///
/// Letters are lowercased, every run of other characters becomes one `-`, and leading
/// or trailing dashes are dropped. A result longer than 63 characters is cut and ends
/// in a short hash of the input, so two long names stay distinct. An input with no
/// letter or digit yields `cluster`.
///
/// ```
/// use mesh_kubeconfig::dns1123_label;
/// assert_eq!(dns1123_label("kind-cluster2"), "kind-cluster2");
/// assert_eq!(dns1123_label("gke_my-proj_europe-west1_prod"), "gke-my-proj-europe-west1-prod");
/// assert_eq!(dns1123_label("Admin@Cluster.Local"), "admin-cluster-local");
/// ```
pub fn dns1123_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        return "cluster".to_owned();
    }
    if out.len() > 63 {
        let hash = format!("{:08x}", fnv1a(s.as_bytes()) as u32);
        out.truncate(63 - 1 - hash.len());
        while out.ends_with('-') {
            out.pop();
        }
        out.push('-');
        out.push_str(&hash);
    }
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitises_common_context_names() {
        let cases = [
            ("cluster1", "cluster1"),
            ("kind-cluster2", "kind-cluster2"),
            (
                "arn:aws:eks:eu-west-1:123456789012:cluster/prod",
                "arn-aws-eks-eu-west-1-123456789012-cluster-prod",
            ),
            (
                "gke_proj_europe-west1-b_prod",
                "gke-proj-europe-west1-b-prod",
            ),
            ("admin@k3s.Local", "admin-k3s-local"),
            ("--x--", "x"),
            ("a__b", "a-b"),
            ("Ünïcode", "n-code"),
            ("", "cluster"),
            ("@@@", "cluster"),
        ];
        for (input, want) in cases {
            let got = dns1123_label(input);
            assert_eq!(got, want, "input {input:?}");
            assert!(is_dns1123_label(&got), "{got:?} is not a label");
        }
    }

    #[test]
    fn long_names_are_cut_and_stay_distinct() {
        let a = dns1123_label(&format!("{}-a", "x".repeat(80)));
        let b = dns1123_label(&format!("{}-b", "x".repeat(80)));
        assert!(is_dns1123_label(&a) && is_dns1123_label(&b));
        assert_eq!(a.len(), 63);
        assert_ne!(a, b);
    }

    #[test]
    fn label_validation() {
        assert!(is_dns1123_label("a"));
        assert!(is_dns1123_label("n2-k8s-config"));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }
}
