//! Hot-swap through the admin endpoint's logic: `cargo bench -p ratchet --bench admin`.
//!
//! - `dry_run`: the dry run alone (boot, 200 writes, a log and a replica
//!   lost, recovery, read-back) of the default components on a copy of a
//!   9-node, 3-zone cluster;
//! - `swap_to_effect`: from a swap request (component bytes in hand) to the
//!   new version serving: compile (a cache hit after the first), world
//!   check, dry run, activation and the audit record (fsynced).
//!
//! - `shadow`: the same boot-and-recovery as the dry run, on a registry with
//!   and without a placement policy (pack) running in shadow.
//!
//! Each prints its median over `RATCHET_BENCH_RUNS` runs (default 20).

use std::sync::Arc;
use std::time::Instant;

use ratchet::admin::{Admin, AdminHost, AdminOptions, dry_run};
use ratchet::audit::AuditLog;
use ratchet::bindings::types::{Node, RecoveryConfig};
use ratchet::metrics::Metrics;
use ratchet::registry::Registry;
use ratchet::runtime::{Runtime, RuntimeConfig};
use ratchet::status::Status;
use ratchet::topology::NodeSpec;

/// Nine healthy nodes over three zones.
struct NineNodes;

#[async_trait::async_trait]
impl AdminHost for NineNodes {
    async fn status(&self) -> Status {
        Status::default()
    }

    async fn nodes(&self) -> Vec<Node> {
        (0..9)
            .map(|i| Node {
                id: format!("n{}", i + 1),
                zone: format!("z{}", i % 3 + 1),
                capabilities: ratchet::services::ALL_KINDS.to_vec(),
                load: 0,
                capacity: 16,
                healthy: true,
                last_seen_ms: 0,
            })
            .collect()
    }
}

/// Counts shadow calls, as the admin endpoint does.
struct Count(std::sync::atomic::AtomicU64);

impl ratchet::registry::ShadowSink for Count {
    fn shadow_call(&self, _slot: &str, _divergence: Option<ratchet::registry::Divergence>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let runs: usize = std::env::var("RATCHET_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let registry = Arc::new(Registry::with_defaults(runtime).unwrap());
    let config = RecoveryConfig::default();

    if wanted("dry_run") {
        let nodes: Vec<NodeSpec> =
            (0..9).map(|i| NodeSpec { id: format!("n{}", i + 1), zone: format!("z{}", i % 3 + 1), capacity: 16 }).collect();
        let shape = dry_run::Shape { nodes, config };
        let times: Vec<f64> = (0..runs)
            .map(|_| {
                let started = Instant::now();
                tokio.block_on(dry_run::run(Arc::new(registry.fork()), &shape)).expect("the defaults pass");
                started.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        println!("dry_run: median {:.2} ms over {runs} runs (9 nodes, 3 zones, defaults)", median(times));
    }

    if wanted("shadow") {
        let nodes: Vec<NodeSpec> =
            (0..9).map(|i| NodeSpec { id: format!("n{}", i + 1), zone: format!("z{}", i % 3 + 1), capacity: 16 }).collect();
        let shape = dry_run::Shape { nodes, config };
        let shadowed = Arc::new(registry.fork());
        let count = Arc::new(Count(Default::default()));
        shadowed.set_shadow_sink(count.clone());
        let pack = ratchet::components::bundled("pack").unwrap();
        shadowed.start_shadow(shadowed.prepare("placement", pack.bytes, "pack").unwrap(), &ratchet::registry::unrecorded).unwrap();
        let time = |plugins: Arc<Registry>| -> f64 {
            let times: Vec<f64> = (0..runs)
                .map(|_| {
                    let started = Instant::now();
                    tokio.block_on(dry_run::run(plugins.clone(), &shape)).expect("the defaults pass");
                    started.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            median(times)
        };
        let without = time(Arc::new(registry.fork()));
        let with = time(shadowed);
        println!(
            "shadow: boot + recovery median {without:.2} ms without a shadow, {with:.2} ms with placement in shadow ({} shadow calls)",
            count.0.load(std::sync::atomic::Ordering::Relaxed)
        );
    }

    if wanted("swap_to_effect") {
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        let admin = Admin::new(registry.clone(), Arc::new(NineNodes), audit, Arc::new(Metrics::new()), config, AdminOptions::default());
        let policies = [ratchet::components::bundled("pack").unwrap(), ratchet::components::bundled("least-loaded").unwrap()];
        let times: Vec<f64> = (0..runs)
            .map(|i| {
                let policy = policies[i % 2];
                let started = Instant::now();
                let swapped = tokio.block_on(admin.swap("placement", policy.bytes.to_vec(), policy.name.into(), "bench"));
                let elapsed = started.elapsed().as_secs_f64() * 1e3;
                assert!(swapped.is_ok(), "{swapped:?}");
                assert_eq!(registry.active("placement").unwrap().sha256, ratchet::runtime::Digest256::of(policy.bytes));
                elapsed
            })
            .collect();
        println!("swap_to_effect: median {:.2} ms over {runs} swaps (validate, dry run, activate, audit)", median(times));
    }
}
