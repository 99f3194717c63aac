//! Certificates and keys of one test-bed cluster: its own CA, the API server's serving
//! certificate, an admin client certificate in `system:masters`, and the service-account
//! signing key (so TokenRequest and the legacy token controller both work).

use std::net::IpAddr;
use std::path::Path;

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// PEM files written for one cluster.
pub struct ClusterPki {
    pub ca_cert: String,
    pub admin_cert: String,
    pub admin_key: String,
    pub simulator_cert: String,
    pub simulator_key: String,
}

/// Generates and writes the PKI of a cluster into `dir` (keys 0600).
pub fn write_cluster_pki(dir: &Path, cluster: &str, ip: IpAddr) -> Result<ClusterPki> {
    std::fs::create_dir_all(dir)?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name(&format!("{cluster}-ca"), None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "localhost".to_owned(),
        "kubernetes".to_owned(),
        "kubernetes.default".to_owned(),
        "kubernetes.default.svc".to_owned(),
        "kubernetes.default.svc.cluster.local".to_owned(),
    ])?;
    serving.subject_alt_names.push(SanType::IpAddress(ip));
    serving
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    serving.distinguished_name = name("kube-apiserver", None);
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let client = |cn: &str| -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(cn, Some("system:masters"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (admin_cert, admin_key) = client("testbed-admin")?;
    let (simulator_cert, simulator_key) = client("testbed-simulator")?;

    let sa_key = KeyPair::generate()?;

    write(dir, "ca.crt", &ca_cert.pem(), false)?;
    write(dir, "apiserver.crt", &serving_cert.pem(), false)?;
    write(dir, "apiserver.key", &serving_key.serialize_pem(), true)?;
    write(dir, "sa.key", &sa_key.serialize_pem(), true)?;
    write(dir, "sa.pub", &sa_key.public_key_pem(), false)?;
    Ok(ClusterPki {
        ca_cert: ca_cert.pem(),
        admin_cert,
        admin_key,
        simulator_cert,
        simulator_key,
    })
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    dn
}

/// Writes a file; private ones are created 0600.
pub fn write(dir: &Path, file: &str, contents: &str, private: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    let mut f = options.open(dir.join(file))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}
