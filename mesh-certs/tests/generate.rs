//! Bundles from `generate` pass our checks and OpenSSL's, and reuse works.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use mesh_certs::generate::{
    IntermediateOptions, KeyType, RootCa, RootOptions, WriteOptions, write_layout,
};
use mesh_certs::{CaBundle, Status, ValidationOptions, common_root};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

fn openssl_verify(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "root-cert.pem",
            "-untrusted",
            "cert-chain.pem",
            "ca-cert.pem",
        ])
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl verify failed in {}: {}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn generate_and_check(key_type: KeyType) {
    let out = tempfile::tempdir().unwrap();
    let root = RootCa::generate(&RootOptions {
        key_type,
        ..RootOptions::default()
    })
    .unwrap();
    let options = IntermediateOptions {
        key_type,
        ..IntermediateOptions::default()
    };
    let c1 = root.issue_intermediate("cluster1", &options).unwrap();
    let c2 = root.issue_intermediate("cluster2", &options).unwrap();
    write_layout(out.path(), &root, &[c1, c2], WriteOptions::default()).unwrap();

    assert_eq!(mode(&out.path().join("root-key.pem")), 0o600);
    let mut bundles = Vec::new();
    for name in ["cluster1", "cluster2"] {
        let dir = out.path().join(name);
        assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
        let bundle = CaBundle::load_dir(&dir).unwrap();
        let report = bundle.validate(&ValidationOptions::default());
        assert!(
            report.checks.iter().all(|c| c.status == Status::Passed),
            "{name}: {report:#?}"
        );
        openssl_verify(&dir);
        bundles.push(bundle);
    }
    assert!(common_root(&[("cluster1", &bundles[0]), ("cluster2", &bundles[1])]).is_agreed());
}

#[test]
fn ecdsa_bundles_pass_our_check_and_openssl() {
    generate_and_check(KeyType::EcdsaP256);
}

#[test]
fn rsa_bundles_pass_our_check_and_openssl() {
    generate_and_check(KeyType::Rsa2048);
}

#[test]
fn intermediate_looks_like_istio_tools_certs() {
    let root = RootCa::generate(&RootOptions::default()).unwrap();
    let ica = root
        .issue_intermediate("cluster7", &IntermediateOptions::default())
        .unwrap();
    let blocks = ica.cert_pem();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(blocks.as_bytes()).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        "O=Istio, CN=Intermediate CA, L=cluster7"
    );
    assert_eq!(cert.issuer().to_string(), "O=Istio, CN=Root CA");
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(
        san.general_names,
        vec![GeneralName::DNSName("istiod.istio-system.svc")]
    );
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 730);
    // cert-chain.pem = intermediate, then root.
    assert_eq!(
        ica.cert_chain_pem(),
        format!("{}{}", ica.cert_pem(), root.cert_pem())
    );
}

use rustls_pki_types::pem::PemObject;

#[test]
fn reusing_a_root_adds_a_cluster_and_refuses_to_overwrite_another_root() {
    let out = tempfile::tempdir().unwrap();
    let root = RootCa::generate(&RootOptions::default()).unwrap();
    let c1 = root
        .issue_intermediate("cluster1", &IntermediateOptions::default())
        .unwrap();
    write_layout(out.path(), &root, &[c1], WriteOptions::default()).unwrap();

    // A third cluster joins later: load the root from disk and add an intermediate.
    let loaded = RootCa::load(out.path()).unwrap();
    assert_eq!(loaded.fingerprint(), root.fingerprint());
    let c3 = loaded
        .issue_intermediate("cluster3", &IntermediateOptions::default())
        .unwrap();
    write_layout(out.path(), &loaded, &[c3], WriteOptions::default()).unwrap();
    let b1 = CaBundle::load_dir(&out.path().join("cluster1")).unwrap();
    let b3 = CaBundle::load_dir(&out.path().join("cluster3")).unwrap();
    assert!(b3.validate(&ValidationOptions::default()).is_valid());
    assert!(common_root(&[("cluster1", &b1), ("cluster3", &b3)]).is_agreed());
    openssl_verify(&out.path().join("cluster3"));

    // A different root must not replace the existing one silently...
    let other = RootCa::generate(&RootOptions::default()).unwrap();
    let err = write_layout(out.path(), &other, &[], WriteOptions::default()).unwrap_err();
    assert!(
        matches!(err, mesh_certs::Error::AlreadyExists { .. }),
        "{err}"
    );
    assert_eq!(
        RootCa::load(out.path()).unwrap().fingerprint(),
        root.fingerprint()
    );
    // ...nor may an existing cluster be reissued...
    let again = loaded
        .issue_intermediate("cluster1", &IntermediateOptions::default())
        .unwrap();
    assert!(write_layout(out.path(), &loaded, &[again], WriteOptions::default()).is_err());
    // ...unless asked to.
    write_layout(out.path(), &other, &[], WriteOptions { overwrite: true }).unwrap();
    assert_eq!(
        RootCa::load(out.path()).unwrap().fingerprint(),
        other.fingerprint()
    );
    assert_eq!(mode(&out.path().join("root-key.pem")), 0o600);
}

#[test]
fn loads_openssl_style_keys_as_a_root() {
    // Istio's samples: seed has a PKCS#1 RSA key, alt a PKCS#8 RSA 4096 key.
    for name in ["seed", "alt"] {
        let dir = common::copy_sample(name);
        let cert = std::fs::read(dir.path().join("ca-cert.pem")).unwrap();
        let key =
            mesh_certs::SecretSlice::from(std::fs::read(dir.path().join("ca-key.pem")).unwrap());
        let ca = RootCa::from_pem(&cert, &key).unwrap();
        let issued = ca
            .issue_intermediate("x", &IntermediateOptions::default())
            .unwrap();
        let der =
            rustls_pki_types::CertificateDer::from_pem_slice(issued.cert_pem().as_bytes()).unwrap();
        let (_, child) = X509Certificate::from_der(&der).unwrap();
        let parent_der = rustls_pki_types::CertificateDer::from_pem_slice(&cert).unwrap();
        let (_, parent) = X509Certificate::from_der(&parent_der).unwrap();
        child.verify_signature(Some(parent.public_key())).unwrap();
        assert_eq!(child.issuer().as_raw(), parent.subject().as_raw(), "{name}");
    }
}

#[test]
fn rejects_a_root_key_that_does_not_match() {
    let seed = common::copy_sample("seed");
    let alt = common::copy_sample("alt");
    let cert = std::fs::read(seed.path().join("ca-cert.pem")).unwrap();
    let key = mesh_certs::SecretSlice::from(std::fs::read(alt.path().join("ca-key.pem")).unwrap());
    let err = RootCa::from_pem(&cert, &key).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    assert!(
        !err.to_string().contains("BEGIN"),
        "key material in error: {err}"
    );
}
