//! Istio's published plugged-in CA samples (copied, never modified).

mod common;

use common::{copy_sample, istio_samples};
use mesh_certs::{CaBundle, RootSet, Status, ValidationOptions, common_root};

fn check(name: &str) -> mesh_certs::Report {
    let dir = copy_sample(name);
    let bundle = CaBundle::load_dir(dir.path()).unwrap();
    bundle.validate(&ValidationOptions::default())
}

#[test]
fn seed_sample_passes() {
    // cert-chain.pem holds only the intermediate, which is ca-cert.pem itself.
    let report = check("seed");
    assert!(report.is_valid(), "{report:#?}");
    assert!(
        report.checks.iter().all(|c| c.status == Status::Passed),
        "{report:#?}"
    );
}

#[test]
fn alt_sample_passes() {
    // cert-chain.pem holds intermediate + root; keys are 4096-bit RSA in PKCS#8.
    let report = check("alt");
    assert!(report.is_valid(), "{report:#?}");
    assert!(
        report.checks.iter().all(|c| c.status == Status::Passed),
        "{report:#?}"
    );
}

#[test]
fn seed_and_alt_do_not_share_a_root() {
    let seed_dir = copy_sample("seed");
    let alt_dir = copy_sample("alt");
    let seed = CaBundle::load_dir(seed_dir.path()).unwrap();
    let alt = CaBundle::load_dir(alt_dir.path()).unwrap();
    let agreement = common_root(&[("seed", &seed), ("alt", &alt)]);
    assert!(!agreement.is_agreed());
    assert!(agreement.common.is_empty());
    assert_eq!(agreement.agreeing, vec!["seed".to_owned()]);
    assert_eq!(agreement.disagreeing, vec!["alt".to_owned()]);
}

#[test]
fn combined_roots_bridge_a_rotation() {
    // During a rotation both roots are trusted: seed with both roots is still valid,
    // and it shares a root with alt.
    let seed_dir = copy_sample("seed");
    std::fs::copy(
        istio_samples().join("root-cert-combined.pem"),
        seed_dir.path().join("root-cert.pem"),
    )
    .unwrap();
    let seed = CaBundle::load_dir(seed_dir.path()).unwrap();
    let report = seed.validate(&ValidationOptions::default());
    assert!(report.is_valid(), "{report:#?}");
    assert_eq!(seed.root_fingerprints().len(), 2);

    let alt_dir = copy_sample("alt");
    let alt = CaBundle::load_dir(alt_dir.path()).unwrap();
    let agreement = common_root(&[("seed+combined", &seed), ("alt", &alt)]);
    assert!(agreement.is_agreed(), "{agreement:?}");
    assert_eq!(agreement.common, alt.root_fingerprints());
}

#[test]
fn root_set_from_pem_matches_bundle_fingerprints() {
    let combined = std::fs::read(istio_samples().join("root-cert-combined.pem")).unwrap();
    let set = RootSet::from_pem(&combined).unwrap();
    let alt_dir = copy_sample("alt");
    let alt = CaBundle::load_dir(alt_dir.path()).unwrap();
    assert!(set.shares_root_with(&alt.root_set()));
    let fp = &alt.root_fingerprints()[0];
    assert_eq!(fp.len(), 64);
    assert!(set.contains(fp));
}

#[test]
fn missing_directory_is_an_error_missing_file_is_a_finding() {
    let err = CaBundle::load_dir(std::path::Path::new("/nonexistent/bundle")).unwrap_err();
    assert!(
        matches!(err, mesh_certs::Error::NotADirectory { .. }),
        "{err}"
    );

    let dir = copy_sample("seed");
    std::fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
    let report = CaBundle::load_dir(dir.path())
        .unwrap()
        .validate(&ValidationOptions::default());
    assert!(!report.is_valid());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.message == "ca-key.pem is missing")
    );
}
