//! Hot-swapping a recovery phase with the library API.
//!
//! ```text
//! cargo run -p ratchet --example hot-swap -- [SLOT FILE]
//! ```
//!
//! Loads the embedded defaults, runs the `validate-layout` phase once, then
//! swaps a new component into a slot (by default the embedded
//! validate-layout again, or FILE into SLOT), runs the slot, and rolls back.
//! A bad FILE is refused with the reason, and the slot keeps its version.

use std::sync::Arc;

use ratchet::bindings::types::{AttemptState, RecoveryConfig};
use ratchet::registry::Registry;
use ratchet::runtime::{Detached, Runtime, RuntimeConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runtime = Arc::new(Runtime::new(RuntimeConfig::with_user_cache())?);
    let registry = Registry::with_defaults(runtime)?;
    let host = Arc::new(Detached::default());

    let args: Vec<String> = std::env::args().skip(1).collect();
    let (slot, bytes, source) = match args.as_slice() {
        [slot, file] => (slot.clone(), std::fs::read(file)?, file.clone()),
        [] => {
            let default = ratchet::components::default_for("validate-layout").expect("embedded");
            ("validate-layout".to_string(), default.bytes.to_vec(), "embedded again".to_string())
        }
        _ => anyhow::bail!("usage: hot-swap [SLOT FILE]"),
    };

    let before = registry.active(&slot);
    println!("active in `{slot}`: {}", describe(before.as_ref()));

    // Validation is the slow part and happens before the slot is touched.
    let candidate = match registry.prepare(&slot, &bytes, source) {
        Ok(candidate) => candidate,
        Err(err) => {
            println!("refused: {err}");
            println!("still active: {}", describe(registry.active(&slot).as_ref()));
            return Ok(());
        }
    };
    let swapped = registry.activate(candidate);
    println!("swapped in: {}", describe(Some(&swapped)));

    let outcome = registry.call_phase(&slot, &new_cluster(), host.clone()).await;
    println!("next call: {outcome:?}", outcome = outcome.map(|o| o.step));

    if before.is_some() {
        let back = registry.rollback(&slot, None, &ratchet::registry::unrecorded)?;
        println!("rolled back to: {}", describe(Some(&back)));
    }
    for version in registry.history(&slot) {
        println!("  history v{} {} {} bytes from {}", version.number, version.sha256.short(), version.size, version.source);
    }
    Ok(())
}

fn describe(version: Option<&ratchet::registry::VersionInfo>) -> String {
    match version {
        Some(v) => format!("v{} sha256 {} ({})", v.number, v.sha256.short(), v.source),
        None => "nothing".into(),
    }
}

fn new_cluster() -> AttemptState {
    AttemptState::new(1, 1, RecoveryConfig::default(), None)
}
