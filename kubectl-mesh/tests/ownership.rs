//! Deleting only what is ours, on the test bed: unjoin purges nothing it cannot prove is
//! the remote's, keeps reader credentials another primary uses and the other clusters'
//! keys of a shared remote secret; join never takes over an Istio object or a `cacerts`
//! somebody else made. Each test asserts with kubectl what a user would check.
//! Run with `cargo xtask test`; plain `cargo test` skips these.

mod common;

use common::{
    audit_mark, generate_certs, get, istio_namespace, join, joined, kubectl, kubectl_ok, mesh_lock,
    reader_binding, reset_mesh, text, token_secrets, unjoin,
};

const NAME: &str = "owner-test";
const NS: &str = "istio-system";

fn exists(ctx: &str, args: &[&str]) -> bool {
    !get(ctx, &[args, &["--ignore-not-found", "-o", "name"]].concat()).is_empty()
}

/// What a user looks at in `ctx`: every object join makes or marks, with its content.
fn state(ctx: &str) -> String {
    let mut s = String::new();
    for args in [
        &[
            "secret",
            "-l",
            "istio/multiCluster=true",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{.metadata.annotations}{.data}{\"\\n\"}{end}",
        ][..],
        &[
            "secret",
            "cacerts",
            "--ignore-not-found",
            "-o",
            "jsonpath={.data}",
        ],
        &[
            "gateways.networking.istio.io",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{.spec}{\"\\n\"}{end}",
        ],
        &[
            "secret",
            "-l",
            "app.kubernetes.io/managed-by=kubectl-mesh",
            "-o",
            "name",
        ],
        &[
            "serviceaccount",
            "istio-reader-service-account",
            "--ignore-not-found",
            "-o",
            "name",
        ],
        &[
            "configmap",
            "istio",
            "--ignore-not-found",
            "-o",
            "jsonpath={.data.meshNetworks}",
        ],
    ] {
        s += &get(ctx, args);
        s += "\n";
    }
    s += &istio_namespace(
        ctx,
        "jsonpath={.metadata.labels.topology\\.istio\\.io/network} {.metadata.annotations.topology\\.istio\\.io/controlPlaneClusters}",
    );
    s += "\n";
    s += &reader_binding(ctx);
    s
}

/// `kubectl apply -f` of a JSON document in `ctx`.
fn apply(ctx: &str, doc: &serde_json::Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), doc.to_string()).unwrap();
    kubectl(&[
        "--context",
        ctx,
        "apply",
        "-f",
        file.path().to_str().unwrap(),
    ]);
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn purge_without_a_link_for_the_name_removes_nothing() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", NAME]);
    joined(certs.path(), &["--cluster-name", NAME]);
    let before = [state("cluster1"), state("cluster2")];

    // A typo: cluster2 is joined as owner-test, not as cluster2. Nothing is purged, and
    // the error names the cluster name that links it.
    let out = unjoin("cluster2", &["--purge"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("istio-remote-secret-{NAME}"))
            && stderr.contains("--cluster-name"),
        "{stderr}"
    );
    assert_eq!([state("cluster1"), state("cluster2")], before);

    // The primary lost its remote secrets (a join that stopped early, or by hand), and
    // the user names a cluster that was never joined: the primary's own cacerts, Gateway
    // and meshNetworks stay, and the refusal lists what may be removed by hand.
    kubectl(&[
        "--context",
        "cluster1",
        "-n",
        NS,
        "delete",
        "secret",
        "-l",
        "istio/multiCluster=true",
    ]);
    let before = [state("cluster1"), state("cluster3")];
    let marks = [audit_mark("cluster1"), audit_mark("cluster3")];
    let out = unjoin("cluster3", &["--purge"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for expected in [
        "nothing links cluster name cluster3",
        "kubectl --context cluster1 -n istio-system delete secret cacerts",
        "kubectl --context cluster1 -n istio-system delete gateways.networking.istio.io cross-network-gateway",
    ] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }
    assert_eq!([state("cluster1"), state("cluster3")], before);
    for m in &marks {
        assert!(m.mutations().is_empty(), "{:?}", m.mutations());
    }

    // With the right name, the remote's marks prove it was joined: the purge goes ahead.
    let out = unjoin("cluster2", &["--cluster-name", NAME, "--purge"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!exists("cluster2", &["secret", "cacerts"]));
    reset_mesh();
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn reader_credentials_another_primary_uses_are_kept() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", NAME]);
    joined(certs.path(), &["--cluster-name", NAME]);

    // cluster3 stands in for a second primary: cluster2 names it as a control plane, and
    // it holds a remote secret with cluster2's reader token.
    let link: serde_json::Value = serde_json::from_str(&get(
        "cluster1",
        &[
            "secret",
            &format!("istio-remote-secret-{NAME}"),
            "-o",
            "json",
        ],
    ))
    .unwrap();
    let copy = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": link["metadata"]["name"],
            "namespace": NS,
            "labels": link["metadata"]["labels"],
            "annotations": link["metadata"]["annotations"],
        },
        "data": link["data"],
    });
    apply("cluster3", &copy);
    let primaries = common::control_plane_clusters("cluster2");
    assert!(
        !primaries.trim().is_empty(),
        "join annotated cluster2's namespace"
    );
    let annotate = |value: &str| {
        kubectl(&[
            "--context",
            "cluster2",
            "annotate",
            "--overwrite",
            "namespace",
            NS,
            &format!("topology.istio.io/controlPlaneClusters={value}"),
        ]);
    };
    annotate(&format!("{},cluster3", primaries.trim()));
    let shared = |ctx: &str| {
        [
            token_secrets(ctx),
            get(
                ctx,
                &[
                    "serviceaccount",
                    "istio-reader-service-account",
                    "--ignore-not-found",
                    "-o",
                    "name",
                ],
            ),
            reader_binding(ctx),
            get(
                ctx,
                &["secret", "cacerts", "--ignore-not-found", "-o", "name"],
            ),
            get(
                ctx,
                &[
                    "gateways.networking.istio.io",
                    "cross-network-gateway",
                    "--ignore-not-found",
                    "-o",
                    "name",
                ],
            ),
        ]
    };
    let before = shared("cluster2");
    assert!(before.iter().all(|s| !s.is_empty()), "{before:?}");

    let out = unjoin("cluster2", &["--cluster-name", NAME, "--purge"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        shared("cluster2"),
        before,
        "cluster2's shared objects changed"
    );
    assert!(
        stderr.contains("in cluster3") && stderr.contains("still uses"),
        "{stderr}"
    );
    assert!(!exists(
        "cluster1",
        &["secret", &format!("istio-remote-secret-{NAME}")]
    ));

    // A second primary that cannot be reached or found: unjoin cannot tell, so it keeps them.
    joined(certs.path(), &["--cluster-name", NAME]);
    kubectl(&[
        "--context",
        "cluster3",
        "-n",
        NS,
        "delete",
        "secret",
        "-l",
        "istio/multiCluster=true",
    ]);
    annotate(&format!("{},cluster9", primaries.trim()));
    let out = unjoin("cluster2", &["--cluster-name", NAME, "--purge"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cluster9") && stderr.contains("cannot be told"),
        "{stderr}"
    );
    assert_eq!(
        shared("cluster2"),
        before,
        "cluster2's shared objects changed"
    );

    // Named by no other primary: they go.
    joined(certs.path(), &["--cluster-name", NAME]);
    annotate(primaries.trim());
    let out = unjoin("cluster2", &["--cluster-name", NAME, "--purge"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        shared("cluster2").iter().all(String::is_empty),
        "{:?}",
        shared("cluster2")
    );
    reset_mesh();
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn unjoin_removes_only_its_own_keys_from_shared_remote_secrets() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", NAME]);
    joined(certs.path(), &["--cluster-name", NAME]);
    let link = get(
        "cluster1",
        &[
            "secret",
            &format!("istio-remote-secret-{NAME}"),
            "-o",
            &format!("jsonpath={{.data.{NAME}}}"),
        ],
    );
    let other = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode("apiVersion: v1\nkind: Config\nclusters: []\nusers: []\ncontexts: []\n")
    };
    let secret = |name: &str, data: serde_json::Value| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": name, "namespace": NS,
                "labels": {"istio/multiCluster": "true"},
                "annotations": {"networking.istio.io/cluster": NAME},
            },
            "data": data,
        })
    };
    // Annotated for owner-test, holding its key and another cluster's.
    apply(
        "cluster1",
        &secret(
            "remotes-shared",
            serde_json::json!({NAME: link, "other-cluster": other}),
        ),
    );
    // Annotated for owner-test, holding only other clusters' keys.
    apply(
        "cluster1",
        &secret(
            "remotes-others",
            serde_json::json!({"third-cluster": other, "fourth-cluster": other}),
        ),
    );

    let out = unjoin("cluster2", &["--cluster-name", NAME]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys = |name: &str| {
        get(
            "cluster1",
            &[
                "secret",
                name,
                "-o",
                "go-template={{range $k, $v := .data}}{{$k}} {{end}}",
            ],
        )
    };
    assert!(!exists(
        "cluster1",
        &["secret", &format!("istio-remote-secret-{NAME}")]
    ));
    // A Secret marked for owner-test but holding only other clusters' keys stays whole.
    assert_eq!(keys("remotes-others"), "fourth-cluster third-cluster");
    assert_eq!(keys("remotes-shared"), "other-cluster");
    assert_eq!(
        get(
            "cluster1",
            &[
                "secret",
                "remotes-shared",
                "-o",
                "jsonpath={.metadata.annotations.networking\\.istio\\.io/cluster}"
            ]
        ),
        "",
        "the annotation for the removed cluster stays"
    );
    assert!(
        text(&out.stderr).contains("kept Secret istio-system/remotes-others"),
        "{}",
        text(&out.stderr)
    );
    reset_mesh();
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_gateway_somebody_else_made_is_used_or_refused_never_taken_over() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", NAME]);
    // Istio's sample cross-network-gateway (samples/multicluster/expose-services.yaml),
    // on the east-west gateway's TLS port.
    let port: u16 = get(
        "cluster2",
        &[
            "svc",
            "-l",
            "istio=eastwestgateway",
            "-o",
            "jsonpath={.items[0].spec.ports[?(@.name==\"tls\")].port}",
        ],
    )
    .parse()
    .unwrap_or(15443);
    let sample = |mode: &str| {
        serde_json::json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "cross-network-gateway", "namespace": NS},
            "spec": {
                "selector": {"istio": "eastwestgateway"},
                "servers": [{
                    "port": {"number": port, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": mode},
                    "hosts": ["*.local"],
                }],
            },
        })
    };
    apply("cluster2", &sample("AUTO_PASSTHROUGH"));
    let version = |ctx: &str| {
        get(
            ctx,
            &[
                "gateways.networking.istio.io",
                "cross-network-gateway",
                "-o",
                "jsonpath={.metadata.resourceVersion} {.metadata.labels}",
            ],
        )
    };
    let users = version("cluster2");

    // It does the job: join uses it as it is, and makes its own in cluster1, labelled.
    joined(certs.path(), &["--cluster-name", NAME]);
    assert_eq!(
        version("cluster2"),
        users,
        "join changed the user's Gateway"
    );
    assert_eq!(
        get(
            "cluster1",
            &[
                "gateways.networking.istio.io",
                "cross-network-gateway",
                "-o",
                "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}"
            ]
        ),
        "kubectl-mesh"
    );
    // --purge keeps it, and says so.
    let out = unjoin("cluster2", &["--cluster-name", NAME, "--purge"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("kept Gateway istio-system/cross-network-gateway"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        version("cluster2"),
        users,
        "unjoin changed the user's Gateway"
    );

    // One that does not do the job: a preflight problem naming it, and nothing changes.
    apply("cluster2", &sample("PASSTHROUGH"));
    let users = version("cluster2");
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let out = join(certs.path(), &["--cluster-name", NAME]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Gateway istio-system/cross-network-gateway exists but kubectl-mesh did not create it"
        ),
        "{stderr}"
    );
    for m in &marks {
        assert!(m.mutations().is_empty(), "{:?}", m.mutations());
    }
    assert_eq!(version("cluster2"), users);
    reset_mesh();
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_cacerts_without_a_readable_root_is_replaced_only_when_asked() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", NAME]);
    kubectl(&[
        "--context",
        "cluster2",
        "-n",
        NS,
        "create",
        "secret",
        "generic",
        "cacerts",
        "--from-literal=ca-cert.pem=not a certificate",
    ]);
    let stored = || get("cluster2", &["secret", "cacerts", "-o", "jsonpath={.data}"]);
    let before = stored();

    let out = join(certs.path(), &["--cluster-name", NAME]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no readable root-cert.pem") && stderr.contains("--replace-cacerts"),
        "{stderr}"
    );
    assert_eq!(stored(), before, "join overwrote cacerts");
    assert!(!kubectl_ok(&[
        "--context",
        "cluster1",
        "-n",
        NS,
        "get",
        "secret",
        &format!("istio-remote-secret-{NAME}")
    ]));

    let out = join(certs.path(), &["--cluster-name", NAME, "--replace-cacerts"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let root = get(
        "cluster2",
        &[
            "secret",
            "cacerts",
            "-o",
            "jsonpath={.data.root-cert\\.pem}",
        ],
    );
    let given = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(certs.path().join(NAME).join("root-cert.pem")).unwrap())
    };
    assert_eq!(root, given);
    reset_mesh();
}
