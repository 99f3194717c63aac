//! The data-driven corpus: for every check, bundles that pass and bundles that
//! fail, built with rcgen in memory (no private keys are checked in).

mod common;

use std::time::Duration;

use common::*;
use mesh_certs::{BundleFile, BundleFiles, CaBundle, Check, Severity, Status, ValidationOptions};
use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};

/// What a case must produce.
enum Expect {
    /// No finding at all; every check passed.
    Clean,
    /// Valid, with a warning of this check on this file.
    Warning(Check, BundleFile, &'static str),
    /// Invalid, with an error of this check on this file whose message contains the text.
    Error(Check, BundleFile, &'static str),
}

struct Case {
    name: &'static str,
    build: fn() -> (BundleFiles, ValidationOptions),
    expect: Expect,
}

fn default_opts(files: BundleFiles) -> (BundleFiles, ValidationOptions) {
    (files, ValidationOptions::default())
}

/// root -> intermediate (pathlen 0), the layout `certs generate` writes.
fn simple() -> (Ca, Ca) {
    let root = root("Root CA");
    let ica = issued("Intermediate CA", &root, |_| {});
    (root, ica)
}

fn good_bundle() -> BundleFiles {
    let (root, ica) = simple();
    bundle(&ica, &[&root], &[&root])
}

fn with(mut files: BundleFiles, file: BundleFile, bytes: Vec<u8>) -> BundleFiles {
    match file {
        BundleFile::CaCert => files.ca_cert = Some(bytes),
        BundleFile::CaKey => files.ca_key = Some(secret(bytes)),
        BundleFile::RootCert => files.root_cert = Some(bytes),
        BundleFile::CertChain => files.cert_chain = Some(bytes),
    }
    files
}

fn cases() -> Vec<Case> {
    use BundleFile::*;
    use Check::*;
    vec![
        // --- everything right ---------------------------------------------------
        Case {
            name: "good: root + intermediate, chain = intermediate + root",
            build: || default_opts(good_bundle()),
            expect: Expect::Clean,
        },
        Case {
            name: "good: chain holds only the intermediate (like Istio's seed sample)",
            build: || {
                let (root, ica) = simple();
                default_opts(bundle(&ica, &[], &[&root]))
            },
            expect: Expect::Clean,
        },
        Case {
            name: "good: two-level hierarchy root -> mid -> ca",
            build: || {
                let root = root("Root CA");
                let mid = issued("Mid CA", &root, |p| {
                    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1))
                });
                let ica = issued("Intermediate CA", &mid, |_| {});
                default_opts(bundle(&ica, &[&mid, &root], &[&root]))
            },
            expect: Expect::Clean,
        },
        // --- pem-format ---------------------------------------------------------
        Case {
            name: "bad pem: empty ca-cert.pem",
            build: || default_opts(with(good_bundle(), CaCert, Vec::new())),
            expect: Expect::Error(PemFormat, CaCert, "ca-cert.pem is empty"),
        },
        Case {
            name: "bad pem: missing cert-chain.pem",
            build: || {
                let mut files = good_bundle();
                files.cert_chain = None;
                default_opts(files)
            },
            expect: Expect::Error(PemFormat, CertChain, "cert-chain.pem is missing"),
        },
        Case {
            name: "bad pem: DER root-cert.pem",
            build: || {
                let (root, ica) = simple();
                default_opts(with(bundle(&ica, &[], &[&root]), RootCert, root.der()))
            },
            expect: Expect::Error(PemFormat, RootCert, "DER"),
        },
        Case {
            name: "bad pem: corrupted base64 in cert-chain.pem",
            build: || {
                let files = good_bundle();
                let chain = String::from_utf8(files.cert_chain.clone().unwrap()).unwrap();
                let mut lines: Vec<String> = chain.lines().map(str::to_owned).collect();
                lines[3] = lines[3].replace(|c: char| c.is_ascii_alphabetic(), "!");
                default_opts(with(files, CertChain, lines.join("\n").into_bytes()))
            },
            expect: Expect::Error(PemFormat, CertChain, "corrupted base64"),
        },
        Case {
            name: "bad pem: truncated ca-cert.pem",
            build: || {
                let files = good_bundle();
                let cert = files.ca_cert.clone().unwrap();
                let cut = cert.len() / 2;
                default_opts(with(files, CaCert, cert[..cut].to_vec()))
            },
            expect: Expect::Error(PemFormat, CaCert, "truncated"),
        },
        Case {
            name: "bad pem: base64 of garbage inside a CERTIFICATE block",
            build: || {
                let files = good_bundle();
                default_opts(with(
                    files,
                    CaCert,
                    pem("CERTIFICATE", b"garbage").into_bytes(),
                ))
            },
            expect: Expect::Error(PemFormat, CaCert, "not a valid X.509 certificate"),
        },
        Case {
            name: "bad pem: a certificate where the key should be",
            build: || {
                let (root, ica) = simple();
                default_opts(with(
                    bundle(&ica, &[], &[&root]),
                    CaKey,
                    ica.pem().into_bytes(),
                ))
            },
            expect: Expect::Error(PemFormat, CaKey, "holds a certificate, not a private key"),
        },
        Case {
            name: "bad pem: a private key inside root-cert.pem",
            build: || {
                let (root, ica) = simple();
                let roots = format!("{}{}", root.pem(), root.key_pem());
                default_opts(with(
                    bundle(&ica, &[], &[&root]),
                    RootCert,
                    roots.into_bytes(),
                ))
            },
            expect: Expect::Error(PemFormat, RootCert, "is a private key"),
        },
        Case {
            name: "bad pem: two certificates in ca-cert.pem",
            build: || {
                let (root, ica) = simple();
                let two = format!("{}{}", ica.pem(), root.pem());
                default_opts(with(bundle(&ica, &[], &[&root]), CaCert, two.into_bytes()))
            },
            expect: Expect::Error(PemFormat, CaCert, "exactly one"),
        },
        // --- key-format ---------------------------------------------------------
        Case {
            name: "good key: SEC1 EC PRIVATE KEY",
            build: || {
                let (root, ica) = simple();
                let sec1 = ec_key_as_sec1(&ica.key);
                default_opts(with(bundle(&ica, &[], &[&root]), CaKey, sec1.into_bytes()))
            },
            expect: Expect::Clean,
        },
        Case {
            name: "good key: PKCS#1 RSA PRIVATE KEY (2048 bits)",
            build: || {
                let root = root("Root CA");
                let private = rsa_private(2048);
                let ica = issued_with_key("Intermediate CA", &root, rsa_key(&private), |_| {});
                let files = bundle(&ica, &[], &[&root]);
                default_opts(with(files, CaKey, rsa_key_as_pkcs1(&private).into_bytes()))
            },
            expect: Expect::Clean,
        },
        Case {
            name: "bad key: encrypted PKCS#8",
            build: || {
                let files = good_bundle();
                let enc = pem("ENCRYPTED PRIVATE KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]);
                default_opts(with(files, CaKey, enc.into_bytes()))
            },
            expect: Expect::Error(KeyFormat, CaKey, "istiod cannot use an encrypted key"),
        },
        Case {
            name: "bad key: OpenSSL legacy encrypted PEM (Proc-Type header)",
            build: || {
                let files = good_bundle();
                let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
                default_opts(with(files, CaKey, enc.as_bytes().to_vec()))
            },
            expect: Expect::Error(KeyFormat, CaKey, "encrypted"),
        },
        Case {
            name: "bad key: Ed25519",
            build: || {
                let files = good_bundle();
                let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
                default_opts(with(files, CaKey, ed.serialize_pem().into_bytes()))
            },
            expect: Expect::Error(KeyFormat, CaKey, "Ed25519"),
        },
        Case {
            name: "bad key: PRIVATE KEY block that is not a key",
            build: || {
                let files = good_bundle();
                default_opts(with(
                    files,
                    CaKey,
                    pem("PRIVATE KEY", b"\x30\x00").into_bytes(),
                ))
            },
            expect: Expect::Error(KeyFormat, CaKey, "not a valid PKCS#8"),
        },
        // --- key-strength -------------------------------------------------------
        Case {
            name: "bad key: RSA 1024 bits",
            build: || {
                let files = good_bundle();
                let weak = rsa_key_as_pkcs1(&rsa_private(1024));
                default_opts(with(files, CaKey, weak.into_bytes()))
            },
            expect: Expect::Error(KeyStrength, CaKey, "1024-bit"),
        },
        // --- key-matches-cert ---------------------------------------------------
        Case {
            name: "bad key: the key of another intermediate",
            build: || {
                let (root, ica) = simple();
                let other = issued("Intermediate CA", &root, |_| {});
                let files = bundle(&ica, &[], &[&root]);
                default_opts(with(files, CaKey, other.key_pem().into_bytes()))
            },
            expect: Expect::Error(KeyMatchesCert, CaKey, "does not match ca-cert.pem"),
        },
        Case {
            name: "bad key: RSA key for an ECDSA certificate",
            build: || {
                let files = good_bundle();
                let rsa = rsa_key_as_pkcs1(&rsa_private(2048));
                default_opts(with(files, CaKey, rsa.into_bytes()))
            },
            expect: Expect::Error(KeyMatchesCert, CaKey, "different kind of public key"),
        },
        // --- ca-cert-is-ca ------------------------------------------------------
        Case {
            name: "bad ca: ca-cert.pem is not a CA",
            build: || {
                let root = root("Root CA");
                let leaf = issued("istiod", &root, |p| p.is_ca = IsCa::ExplicitNoCa);
                default_opts(bundle(&leaf, &[], &[&root]))
            },
            expect: Expect::Error(CaCertIsCa, CaCert, "basicConstraints CA:TRUE"),
        },
        Case {
            name: "bad ca: keyUsage without keyCertSign",
            build: || {
                let root = root("Root CA");
                let ica = issued("Intermediate CA", &root, |p| {
                    p.key_usages = vec![KeyUsagePurpose::DigitalSignature]
                });
                default_opts(bundle(&ica, &[], &[&root]))
            },
            expect: Expect::Error(CaCertIsCa, CaCert, "keyCertSign"),
        },
        Case {
            name: "good ca: no keyUsage extension at all",
            build: || {
                let root = root("Root CA");
                let ica = issued("Intermediate CA", &root, |p| p.key_usages = Vec::new());
                default_opts(bundle(&ica, &[], &[&root]))
            },
            expect: Expect::Clean,
        },
        // --- ca-cert-validity ---------------------------------------------------
        Case {
            name: "bad validity: ca-cert.pem expired",
            build: || {
                let root = root("Root CA");
                let ica = issued("Intermediate CA", &root, |p| {
                    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
                    p.not_after = rcgen::date_time_ymd(2021, 1, 1);
                });
                default_opts(bundle(&ica, &[], &[&root]))
            },
            expect: Expect::Error(CaCertValidity, CaCert, "expired on 2021-01-01"),
        },
        Case {
            name: "bad validity: ca-cert.pem not valid yet",
            build: || {
                let root = root("Root CA");
                let ica = issued("Intermediate CA", &root, |p| {
                    p.not_before = time::OffsetDateTime::now_utc() + time::Duration::days(2);
                });
                default_opts(bundle(&ica, &[], &[&root]))
            },
            expect: Expect::Error(CaCertValidity, CaCert, "not valid yet"),
        },
        Case {
            name: "warning: ca-cert.pem expires within 30 days",
            build: || {
                let root = root("Root CA");
                let ica = issued("Intermediate CA", &root, |p| {
                    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
                });
                default_opts(bundle(&ica, &[], &[&root]))
            },
            expect: Expect::Warning(CaCertValidity, CaCert, "expires on"),
        },
        Case {
            name: "good validity: expires in 10 days, window 5 days",
            build: || {
                let root = root("Root CA");
                let ica = issued("Intermediate CA", &root, |p| {
                    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
                });
                let options = ValidationOptions {
                    expiry_warning: Duration::from_secs(5 * 86_400),
                    ..ValidationOptions::default()
                };
                (bundle(&ica, &[], &[&root]), options)
            },
            expect: Expect::Clean,
        },
        // --- root-certs ---------------------------------------------------------
        Case {
            name: "good roots: two roots during a rotation",
            build: || {
                let (root, ica) = simple();
                let new_root = common::root("New Root CA");
                default_opts(bundle(&ica, &[], &[&new_root, &root]))
            },
            expect: Expect::Clean,
        },
        Case {
            name: "bad roots: an intermediate in root-cert.pem",
            build: || {
                let (root, ica) = simple();
                default_opts(bundle(&ica, &[], &[&root, &ica]))
            },
            expect: Expect::Error(RootCerts, RootCert, "is not self-signed"),
        },
        Case {
            name: "bad roots: a self-signed certificate that is not a CA",
            build: || {
                let (root, ica) = simple();
                let not_ca = root_with("Not A CA", ec_key(), |p| p.is_ca = IsCa::ExplicitNoCa);
                default_opts(bundle(&ica, &[], &[&root, &not_ca]))
            },
            expect: Expect::Error(RootCerts, RootCert, "is not a CA"),
        },
        // --- cert-chain-order ---------------------------------------------------
        Case {
            name: "bad chain: cert-chain.pem starts with the root",
            build: || {
                let (root, ica) = simple();
                let mut files = bundle(&ica, &[], &[&root]);
                files.cert_chain = Some(format!("{}{}", root.pem(), ica.pem()).into_bytes());
                default_opts(files)
            },
            expect: Expect::Error(CertChainOrder, CertChain, "must start with ca-cert.pem"),
        },
        Case {
            name: "bad chain: intermediates out of order",
            build: || {
                let root = root("Root CA");
                let mid = issued("Mid CA", &root, |p| {
                    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1))
                });
                let ica = issued("Intermediate CA", &mid, |_| {});
                default_opts(bundle(&ica, &[&root, &mid], &[&root]))
            },
            expect: Expect::Error(CertChainOrder, CertChain, "not last"),
        },
        Case {
            name: "bad chain: next certificate did not issue the previous one",
            build: || {
                let (root, ica) = simple();
                let stranger = common::root("Stranger CA");
                default_opts(bundle(&ica, &[&stranger], &[&root]))
            },
            expect: Expect::Error(CertChainOrder, CertChain, "did not issue"),
        },
        // --- chain-to-root ------------------------------------------------------
        Case {
            name: "bad path: root-cert.pem holds a different root",
            build: || {
                let (_root, ica) = simple();
                let other = common::root("Other Root");
                default_opts(bundle(&ica, &[], &[&other]))
            },
            expect: Expect::Error(ChainToRoot, RootCert, "neither in root-cert.pem"),
        },
        Case {
            name: "bad path: chain ends in a root missing from root-cert.pem",
            build: || {
                let (root, ica) = simple();
                let other = common::root("Other Root");
                default_opts(bundle(&ica, &[&root], &[&other]))
            },
            expect: Expect::Error(ChainToRoot, RootCert, "not in root-cert.pem"),
        },
        Case {
            name: "bad path: a root with the same name but another key",
            build: || {
                let (_root, ica) = simple();
                let impostor = common::root("Root CA");
                default_opts(bundle(&ica, &[], &[&impostor]))
            },
            expect: Expect::Error(ChainToRoot, CaCert, "does not verify"),
        },
        Case {
            name: "bad path: pathlen 0 on the mid CA, with ca-cert.pem below it",
            build: || {
                let root = root("Root CA");
                let mid = issued("Mid CA", &root, |_| {});
                let ica = issued("Intermediate CA", &mid, |_| {});
                default_opts(bundle(&ica, &[&mid, &root], &[&root]))
            },
            expect: Expect::Error(ChainToRoot, CertChain, "pathlen 0"),
        },
        Case {
            name: "bad path: an issuer that is not a CA",
            build: || {
                let root = root("Root CA");
                let mid = issued("Mid CA", &root, |p| p.is_ca = IsCa::ExplicitNoCa);
                let ica = issued("Intermediate CA", &mid, |_| {});
                default_opts(bundle(&ica, &[&mid, &root], &[&root]))
            },
            expect: Expect::Error(ChainToRoot, CertChain, "not a CA allowed to sign"),
        },
        Case {
            name: "bad path: the root expired",
            build: || {
                let root = root_with("Root CA", ec_key(), |p| {
                    p.not_before = rcgen::date_time_ymd(2019, 1, 1);
                    p.not_after = rcgen::date_time_ymd(2020, 1, 1);
                });
                let ica = issued("Intermediate CA", &root, |_| {});
                default_opts(bundle(&ica, &[], &[&root]))
            },
            expect: Expect::Error(ChainToRoot, RootCert, "expired on 2020-01-01"),
        },
        Case {
            name: "bad path: the mid CA expired",
            build: || {
                let root = root("Root CA");
                let mid = issued("Mid CA", &root, |p| {
                    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
                    p.not_before = rcgen::date_time_ymd(2019, 1, 1);
                    p.not_after = rcgen::date_time_ymd(2020, 1, 1);
                });
                let ica = issued("Intermediate CA", &mid, |_| {});
                default_opts(bundle(&ica, &[&mid, &root], &[&root]))
            },
            expect: Expect::Error(ChainToRoot, CertChain, "expired"),
        },
        // --- signature-algorithm ------------------------------------------------
        Case {
            name: "good sig: RSA root signing with SHA-256",
            build: || {
                let private = rsa_private(2048);
                let root = root_with("Root CA", rsa_key(&private), |_| {});
                let ica = issued("Intermediate CA", &root, |_| {});
                default_opts(bundle(&ica, &[], &[&root]))
            },
            expect: Expect::Clean,
        },
        Case {
            name: "warning: intermediate signed with SHA-1",
            build: || {
                let private = rsa_private(2048);
                let root = root_with("Root CA", rsa_key(&private), |_| {});
                let ica = issued("Intermediate CA", &root, |_| {});
                let sha1 = pem("CERTIFICATE", &resign_with_sha1(&ica.der(), &private));
                let mut files = bundle(&ica, &[], &[&root]);
                files.ca_cert = Some(sha1.clone().into_bytes());
                files.cert_chain = Some(sha1.into_bytes());
                default_opts(files)
            },
            expect: Expect::Warning(SignatureAlgorithm, CaCert, "SHA-1"),
        },
    ]
}

#[test]
fn corpus() {
    let mut failures = Vec::new();
    for case in cases() {
        let (files, options) = (case.build)();
        let report = CaBundle::from_pem(files).validate(&options);
        let problem = match &case.expect {
            Expect::Clean => (!report.findings.is_empty()
                || report.checks.iter().any(|c| c.status != Status::Passed))
            .then(|| format!("expected clean, got {:#?}", report)),
            Expect::Warning(check, file, text) => {
                let found = report.findings.iter().any(|f| {
                    f.severity == Severity::Warning
                        && f.check == *check
                        && f.file == *file
                        && f.message.contains(text)
                });
                (!found || !report.is_valid()).then(|| {
                    format!("expected only a {check} warning on {file} containing {text:?}, got {report:#?}")
                })
            }
            Expect::Error(check, file, text) => {
                let found = report.findings.iter().any(|f| {
                    f.severity == Severity::Error
                        && f.check == *check
                        && f.file == *file
                        && f.message.contains(text)
                });
                (!found || report.is_valid() || report.status(*check) != Status::Failed).then(|| {
                    format!("expected a {check} error on {file} containing {text:?}, got {report:#?}")
                })
            }
        };
        match problem {
            Some(p) => failures.push(format!("{}: {p}", case.name)),
            None => {
                // Every finding names its file and carries a fix.
                for f in &report.findings {
                    assert!(
                        !f.fix.is_empty(),
                        "{}: finding without fix: {f:?}",
                        case.name
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_bundle_check_has_a_failing_case() {
    let covered: Vec<Check> = cases()
        .iter()
        .filter_map(|c| match c.expect {
            Expect::Error(check, ..) | Expect::Warning(check, ..) => Some(check),
            Expect::Clean => None,
        })
        .collect();
    for check in Check::BUNDLE_CHECKS {
        assert!(covered.contains(&check), "no bad case for {check}");
    }
}

#[test]
fn key_bytes_never_appear_in_debug_output() {
    let (root, ica) = simple();
    let key_pem = ica.key_pem();
    let body: String = key_pem.lines().nth(1).unwrap().to_owned();
    let files = bundle(&ica, &[], &[&root]);
    let files_debug = format!("{files:?}");
    let debug = format!("{files_debug} {:?}", CaBundle::from_pem(files));
    assert!(!debug.contains(&body), "key material in Debug output");
    assert!(debug.contains("REDACTED"));
}

#[test]
fn report_serialises_with_stable_ids() {
    let mut files = good_bundle();
    files.cert_chain = None;
    let report = CaBundle::from_pem(files).validate(&ValidationOptions::default());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["findings"][0]["check"], "pem-format");
    assert_eq!(json["findings"][0]["file"], "cert-chain.pem");
    assert_eq!(json["findings"][0]["severity"], "error");
    assert_eq!(json["checks"][0]["check"], "pem-format");
    assert_eq!(json["checks"][0]["status"], "failed");
}
