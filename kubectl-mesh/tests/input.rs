//! Bad input on the command line gets a clear error that names the flag, before
//! anything changes: network names, gateway addresses, helm `--set`s.

mod common;

use common::{
    audit_mark, generate_certs, join, mesh, mesh_lock, offline_join, offline_kubeconfig,
    reset_mesh, text,
};

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn malformed_networks_and_gateway_addresses_are_refused_before_any_change() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let out = join(
        certs.path(),
        &[
            "--remote-network",
            "net work",
            // What helm would read as a second value, and a port that does not exist.
            "--primary-gateway-address",
            "1.2.3.4,x=y",
            "--gateway-address",
            "gw.example.com:0",
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        err.contains("cluster2: --remote-network \"net work\" is not a valid label value"),
        "{err}"
    );
    assert!(
        err.contains("cluster1: --primary-gateway-address \"1.2.3.4,x=y\" has host"),
        "{err}"
    );
    assert!(
        err.contains("cluster2: --gateway-address \"gw.example.com:0\" has port \"0\""),
        "{err}"
    );
    for m in &marks {
        assert_eq!(m.mutations(), Vec::<String>::new(), "a refused join wrote");
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_primary_network_that_is_no_label_value_is_named_with_its_flag() {
    let _lock = mesh_lock();
    reset_mesh();
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let out = mesh(&[
        "join",
        "cluster2",
        "--primary",
        "cluster1",
        "--yes",
        "--network=-east",
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cluster1: --network \"-east\" is not a valid label value"),
        "{err}"
    );
    for m in &marks {
        assert_eq!(m.mutations(), Vec::<String>::new(), "a refused join wrote");
    }
}

#[test]
fn sets_are_read_as_helm_reads_them_and_a_bad_one_is_not_echoed() {
    let kubeconfig = offline_kubeconfig();
    let out = offline_join(
        kubeconfig.path(),
        &[
            "--install",
            "--istio-charts",
            "/no/such/charts",
            // A list and an escaped comma, as helm takes them.
            "--set",
            "pilot.env.A={x,y}",
            "--gateway-set",
            "labels.team=a\\,b",
            // A pair without '=' after a secret.
            "--set",
            "global.password=hunter2,oops",
        ],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(
        err.contains("--set number 2 of 2 is not KEY=VALUE") && err.contains("pair 2 has no '='"),
        "{err}"
    );
    assert!(!err.contains("--set number 1 of 2"), "{err}");
    assert!(!err.contains("--gateway-set number"), "{err}");
    assert!(!err.contains("hunter2"), "a --set value leaked: {err}");
}
