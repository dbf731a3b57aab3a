//! The WIT contract is language-neutral: `plugins/js-spread/app.js`, a
//! placement policy written in JavaScript, is built into a component with
//! the Bytecode Alliance's componentize-js (through its `componentize()`
//! API, in `plugins/js-spread/build.mjs`) and run through the real host, on
//! a real recovery, with the same checks as the Python policy.
//!
//! The npm packages come from `plugins/js-spread/node_modules`, where
//! `.ci/run` installs them with `npm ci` from the committed lock; when they
//! are not there, this test runs `npm ci` itself.

mod common;
#[path = "support/foreign_policy.rs"]
mod foreign_policy;

use std::path::{Path, PathBuf};
use std::process::Command;

fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("plugins/js-spread")
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what} does not run ({e}): Node.js 20 and npm are needed"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds `plugins/js-spread` into a component in `dir`.
fn build_js_policy(dir: &Path) -> PathBuf {
    let plugin = plugin_dir();
    if !plugin.join("node_modules/@bytecodealliance/componentize-js").exists() {
        eprintln!("componentize-js not installed: npm ci in {}", plugin.display());
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&plugin), "npm ci");
    }
    let out = dir.join("js-spread.wasm");
    run(Command::new("node").arg(plugin.join("build.mjs")).arg(&out), "node build.mjs");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_policy_places_a_real_recovery_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = build_js_policy(dir.path());
    foreign_policy::places_a_real_recovery(common::runtime(), &wasm).await;
}
