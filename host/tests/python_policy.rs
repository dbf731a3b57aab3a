//! The WIT contract is language-neutral: `plugins/python-spread/app.py`, a
//! placement policy written in Python, is built into a component with
//! componentize-py and run through the real host, on a real recovery.
//!
//! componentize-py comes from `$COMPONENTIZE_PY`, else `target/tools/python`
//! (where `.ci/run` installs it), else `PATH`; when it is nowhere, this test
//! installs the pinned version into `target/tools/python` with pip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ratchet::bindings::types::{
    Node, PlacementConstraints, PlacementRequest, PlacementVacancy, RecoveryConfig, ServiceKind,
};
use ratchet::cluster::{Cluster, LocalCluster};
use ratchet::store::MemoryStore;
use ratchet::director::{Director, DirectorOptions};
use ratchet::quality::PlacementQuality;
use ratchet::registry::Registry;
use ratchet::runtime::Detached;

/// The version `.ci/run` installs; keep the two in step.
const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn componentize_py() -> PathBuf {
    if let Some(path) = std::env::var_os("COMPONENTIZE_PY") {
        return PathBuf::from(path);
    }
    let venv = workspace().join("target/tools/python");
    let local = venv.join("bin/componentize-py");
    if local.exists() {
        return local;
    }
    if Command::new("componentize-py").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return PathBuf::from("componentize-py");
    }
    eprintln!("componentize-py not found: installing {COMPONENTIZE_PY_VERSION} into {}", venv.display());
    let venv_made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
    assert!(venv_made.is_ok_and(|s| s.success()), "cannot create a Python venv: python3 -m venv {}", venv.display());
    let installed = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", &format!("componentize-py=={COMPONENTIZE_PY_VERSION}")])
        .status();
    assert!(installed.is_ok_and(|s| s.success()), "pip could not install componentize-py");
    local
}

/// Builds `plugins/python-spread` into a component in `dir`.
fn build_python_policy(dir: &Path) -> PathBuf {
    let root = workspace();
    let out = dir.join("python-spread.wasm");
    let output = Command::new(componentize_py())
        .arg("-d")
        .arg(root.join("wit"))
        .args(["-w", "ratchet:recovery/placement-policy@0.1.0", "componentize", "-p"])
        .arg(root.join("plugins/python-spread"))
        .arg("app")
        .arg("-o")
        .arg(&out)
        .output()
        .expect("componentize-py runs");
    assert!(
        output.status.success(),
        "componentize-py failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn node(id: &str, zone: &str, healthy: bool) -> Node {
    Node {
        id: id.into(),
        zone: zone.into(),
        capabilities: vec![ServiceKind::Storage],
        load: 0,
        capacity: 4,
        healthy,
        last_seen_ms: 0,
    }
}

fn storage_team(count: u32, zones: u32) -> PlacementVacancy {
    PlacementVacancy {
        kind: ServiceKind::Storage,
        count,
        team: Some(1),
        constraints: PlacementConstraints {
            min_distinct_zones: zones,
            exclude_nodes: vec![],
            required_capabilities: vec![],
            distinct_nodes: true,
        },
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_policy_places_a_real_recovery_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = build_python_policy(dir.path());
    let registry = Arc::new(Registry::with_defaults(common::runtime()).unwrap());
    let version = registry.load_file("placement", &wasm).expect("the Python component satisfies placement-policy");
    assert_eq!(version.number, 2, "loaded over the default");

    // Its answers and its errors cross the boundary as the WIT says.
    let request = PlacementRequest {
        vacancies: vec![storage_team(3, 3)],
        nodes: vec![node("a1", "a", true), node("a2", "a", true), node("b1", "b", true), node("c1", "c", false)],
        teams: vec![],
    };
    let err = registry.call_placement(&request, Arc::new(Detached::default())).await.unwrap().unwrap_err();
    assert_eq!((err.vacancy, err.constraint.as_str()), (0, "min-distinct-zones"), "{}", err.message);
    let mut healthy = request.clone();
    healthy.nodes[3].healthy = true;
    let answer = registry.call_placement(&healthy, Arc::new(Detached::default())).await.unwrap().unwrap();
    assert_eq!(answer[0].nodes, ["a1", "b1", "c1"], "one node per zone, the down node skipped once it is up");

    // A whole recovery, every placement decided in Python and checked by the host.
    let local = LocalCluster::with_zones(9, 3, 10).unwrap();
    let cluster = local.client();
    let director = Director::new(
        registry,
        cluster.clone(),
        Arc::new(MemoryStore::default()),
        RecoveryConfig::default(),
        DirectorOptions::default(),
    );
    let first = director.recover().await.unwrap();
    let first = first.layout().cloned().expect("boot completes with the Python policy");
    let node = first.services.iter().find(|s| s.id == first.logs[0].id).unwrap().node.clone();
    local.crash(&node);
    let report = director.recover().await.unwrap();
    let second = report.layout().expect("recovery completes with the Python policy");
    assert!(report.attempts.iter().all(|a| a.refusals.is_empty()), "the host refused nothing");
    let quality = PlacementQuality::of(second, &cluster.nodes().await);
    assert_eq!(quality.under_spread().count(), 0, "{quality}");
}
