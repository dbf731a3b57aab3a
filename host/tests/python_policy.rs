//! The WIT contract is language-neutral: `plugins/python-spread/app.py`, a
//! placement policy written in Python, is built into a component with
//! componentize-py and run through the real host, on a real recovery.
//!
//! componentize-py comes from `$COMPONENTIZE_PY`, else `target/tools/python`
//! (where `.ci/run` installs it), else `PATH`; when it is nowhere, this test
//! installs the pinned version into `target/tools/python` with pip.

mod common;
#[path = "support/foreign_policy.rs"]
mod foreign_policy;

use std::path::{Path, PathBuf};
use std::process::Command;

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
    let installed =
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", &format!("componentize-py=={COMPONENTIZE_PY_VERSION}")]).status();
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

#[tokio::test(flavor = "multi_thread")]
async fn a_python_policy_places_a_real_recovery_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = build_python_policy(dir.path());
    foreign_policy::places_a_real_recovery(common::runtime(), &wasm).await;
}
