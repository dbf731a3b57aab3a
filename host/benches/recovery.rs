//! Full recovery of the in-process cluster: `cargo bench -p ratchet --bench recovery`.
//!
//! For each cluster size: boot a new cluster, commit writes, kill a log and a
//! storage worker, and time the recovery (the director's `recover`, from the
//! first epoch it takes to the persisted layout). Prints the median wall time
//! and the median share of it spent in wasm (phase time minus host calls).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ratchet::bindings::types::RecoveryConfig;
use ratchet::cluster::InProcessCluster;
use ratchet::coordinator::MemoryStore;
use ratchet::director::{Director, DirectorOptions};
use ratchet::registry::Registry;
use ratchet::runtime::{Runtime, RuntimeConfig};

struct Shape {
    label: &'static str,
    nodes: usize,
    zones: usize,
    config: RecoveryConfig,
    writes: usize,
    runs: usize,
}

fn registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
            Arc::new(Registry::with_defaults(runtime).unwrap())
        })
        .clone()
}

fn main() {
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let shapes = [
        Shape { label: "9 nodes", nodes: 9, zones: 3, config: RecoveryConfig::default(), writes: 3_000, runs: 20 },
        Shape {
            label: "1,000 nodes",
            nodes: 1_000,
            zones: 10,
            config: RecoveryConfig { desired_logs: 30, shards: 3_300, ..RecoveryConfig::default() },
            writes: 3_000,
            runs: 5,
        },
    ];
    println!("{:<14} {:>9} {:>6} {:>14} {:>14} {:>12}", "cluster", "services", "runs", "median wall", "median wasm", "wasm share");
    for shape in shapes {
        let mut walls = Vec::new();
        let mut wasm = Vec::new();
        let mut services = 0;
        for _ in 0..shape.runs {
            let (wall, in_wasm, count) = tokio.block_on(one_recovery(&shape));
            walls.push(wall);
            wasm.push(in_wasm);
            services = count;
        }
        let wall = median(&mut walls);
        let in_wasm = median(&mut wasm);
        println!(
            "{:<14} {:>9} {:>6} {:>11.2} ms {:>11.2} ms {:>11.1}%",
            shape.label,
            services,
            shape.runs,
            wall.as_secs_f64() * 1e3,
            in_wasm.as_secs_f64() * 1e3,
            100.0 * in_wasm.as_secs_f64() / wall.as_secs_f64()
        );
    }
}

/// One boot, load, failure and recovery; returns the recovery's wall time,
/// its time in wasm, and the number of services in the recovered layout.
async fn one_recovery(shape: &Shape) -> (Duration, Duration, usize) {
    let cluster = Arc::new(InProcessCluster::with_zones(shape.nodes, shape.zones, 64));
    let director = Director::new(
        registry(),
        cluster.clone(),
        Arc::new(MemoryStore::default()),
        shape.config.clone(),
        DirectorOptions::default(),
    );
    let boot = director.recover().await.unwrap();
    let layout = boot.layout().unwrap_or_else(|| panic!("boot did not complete: {}", boot.last().unwrap().outcome)).clone();
    for i in 0..shape.writes {
        let key = format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761));
        cluster.commit(&[(key, format!("value-{i}"))]).unwrap();
        if i % 500 == 499 {
            cluster.pump();
        }
    }
    cluster.kill(&layout.logs[0].id);
    cluster.kill(&layout.storage_teams[0].storage_ids[0]);
    let started = Instant::now();
    let report = director.recover().await.unwrap();
    let wall = started.elapsed();
    let recovered = report.layout().unwrap_or_else(|| panic!("recovery did not complete: {:?}", report.last().map(|a| &a.outcome)));
    let in_wasm = report.attempts.iter().map(|a| a.wasm_time()).sum();
    (wall, in_wasm, recovered.services.len())
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}
