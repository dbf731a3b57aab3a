//! The same placement policy, spread-zones, written in three languages, on
//! the same 10,000-vacancy request over 1,000 nodes:
//!
//! ```text
//! node plugins/js-spread/build.mjs /tmp/js-spread.wasm
//! componentize-py -d wit -w ratchet:recovery/placement-policy@0.1.0 \
//!     componentize -p plugins/python-spread app -o /tmp/python-spread.wasm
//! RATCHET_JS_POLICY=/tmp/js-spread.wasm RATCHET_PYTHON_POLICY=/tmp/python-spread.wasm \
//!     cargo bench -p ratchet --bench languages
//! ```
//!
//! Each call goes through `Registry::call_placement` (instantiation, the
//! request in, the policy, the answer out) and the host's check of the
//! answer. The deadline is raised for the interpreted languages, which
//! take seconds here; the answers must be the same as the Rust policy's.

#[path = "support/placement.rs"]
mod placement;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratchet::registry::Registry;
use ratchet::runtime::{Detached, Limits, Runtime, RuntimeConfig};

/// Calls timed per policy after one untimed call.
const SAMPLES: usize = 5;

fn main() {
    let policies: Vec<(&str, Option<PathBuf>)> = vec![
        ("Rust (default, embedded)", None),
        ("Python (componentize-py)", Some(component("RATCHET_PYTHON_POLICY"))),
        ("JavaScript (componentize-js)", Some(component("RATCHET_JS_POLICY"))),
    ];
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).expect("runtime starts"));
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio starts");
    let request = placement::large_placement_request();
    let mut reference = None;
    println!("| policy | component bytes | median | fastest | slowest |");
    println!("|---|---|---|---|---|");
    for (name, file) in policies {
        let registry = Registry::with_defaults(runtime.clone()).expect("the defaults load");
        if let Some(file) = &file {
            registry.load_file("placement", file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        }
        let slow = Limits { deadline: Duration::from_secs(300), ..Limits::default() };
        registry.set_limits("placement", slow).expect("the slot exists");
        let size = registry.active("placement").map_or(0, |v| v.size);
        let mut times = Vec::new();
        for sample in 0..=SAMPLES {
            let started = Instant::now();
            let answer = tokio
                .block_on(registry.call_placement(&request, Arc::new(Detached::default())))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|e| panic!("{name} refused: {}", e.message));
            ratchet::guard::placement_check::check(&request, &answer).unwrap_or_else(|e| panic!("{name}: the host refuses: {e:?}"));
            let took = started.elapsed();
            match &reference {
                None => reference = Some(answer),
                Some(rust) => assert!(*rust == answer, "{name} placed differently from the Rust policy"),
            }
            if sample > 0 {
                times.push(took);
            }
        }
        times.sort();
        let ms = |d: &Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        println!("| {name} | {size} | {} | {} | {} |", ms(&times[times.len() / 2]), ms(&times[0]), ms(&times[times.len() - 1]));
    }
}

/// The component named by the environment variable `variable`.
fn component(variable: &str) -> PathBuf {
    match std::env::var_os(variable) {
        Some(path) => PathBuf::from(path),
        None => {
            eprintln!("set {variable} to the built component: the commands are at the top of host/benches/languages.rs");
            std::process::exit(2);
        }
    }
}
