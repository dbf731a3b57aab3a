//! Replica recovery benchmarks: `cargo bench -p ratchet --bench replica`.
//!
//! Both run the real host path (`replica::recover_replica`: figures, the
//! default policy in wasm, the session, the moves) on the in-process
//! cluster, for one replica of a 9-node cluster locked by a new epoch:
//!
//! - catch-up: the replica missed `CATCH_UP_KEYS` writes (one key per
//!   entry, 100 per version) and replays them from the logs: entries/s;
//! - rebuild: the replica fell out of the logs' retention while its team
//!   grew to `REBUILD_KEYS` keys: the time to copy a teammate's snapshot and
//!   replay the tail.
//!
//! Each figure is the median of `RUNS` runs, printed with the others.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratchet::bindings::types::{Layout, RecoveryConfig};
use ratchet::cluster::{Cluster, InProcessCluster};
use ratchet::store::{CoordinatorStore, MemoryStore};
use ratchet::director::{Director, DirectorOptions};
use ratchet::registry::Registry;
use ratchet::replica::{Budget, LayoutIndex, Sessions, recover_replica};
use ratchet::runtime::{Runtime, RuntimeConfig};

const RUNS: usize = 7;
const CATCH_UP_KEYS: usize = 200_000;
/// Keys in the rebuilt replica's team: one of 4 shards.
const REBUILD_KEYS: usize = 100_000;
const PER_VERSION: usize = 100;

struct Setup {
    cluster: Arc<InProcessCluster>,
    store: Arc<MemoryStore>,
    registry: Arc<Registry>,
    sessions: Mutex<Sessions>,
}

impl Setup {
    async fn boot(cluster: InProcessCluster, registry: Arc<Registry>) -> (Self, Layout) {
        let setup = Setup {
            cluster: Arc::new(cluster),
            store: Arc::new(MemoryStore::default()),
            registry,
            sessions: Mutex::new(Sessions::new(Budget::default())),
        };
        let director = Director::new(
            setup.registry.clone(),
            setup.cluster.clone(),
            setup.store.clone(),
            RecoveryConfig::default(),
            DirectorOptions::default(),
        );
        let layout = director.recover().await.unwrap().layout().cloned().expect("boots");
        (setup, layout)
    }

    /// Commits keys `from..to`, `PER_VERSION` to a version, pumping as it goes.
    fn write(&self, from: usize, to: usize) {
        let keys: Vec<usize> = (from..to).collect();
        for (n, chunk) in keys.chunks(PER_VERSION).enumerate() {
            let writes: Vec<(String, String)> =
                chunk.iter().map(|i| (format!("{:08x}-{i}", (*i as u32).wrapping_mul(2_654_435_761)), format!("value-{i}"))).collect();
            self.cluster.commit(&writes).expect("commits");
            if n % 50 == 0 {
                self.cluster.pump();
            }
        }
        self.cluster.pump();
    }

    /// Locks `replica` by a new epoch, as a recovery does, and brings it up
    /// to date; answers the time that took and the entries it replayed.
    async fn recover(&self, live: &Layout, replica: &str) -> (Duration, u64, String) {
        let epoch = self.store.next_epoch().unwrap();
        for team in &live.storage_teams {
            for id in &team.storage_ids {
                self.cluster.lock(id, epoch).await.unwrap();
            }
        }
        let layout = Layout { epoch, recovery_version: self.cluster.committed_version(), ..live.clone() };
        let started = Instant::now();
        let index = LayoutIndex::new(&layout);
        let session = recover_replica(&*self.registry, &*self.cluster, &self.sessions, &index, epoch, replica).await.unwrap().expect("a session");
        let took = started.elapsed();
        let sessions = self.sessions.lock().unwrap();
        let s = sessions.get(session).unwrap();
        let opened = sessions.events().iter().find(|e| e.session == session && e.event == "opened").unwrap().detail.clone();
        (took, s.entries, opened)
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).unwrap());
    let registry = Arc::new(Registry::with_defaults(runtime).unwrap());

    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let (rate, plan) = rt.block_on(async {
            let (setup, layout) = Setup::boot(InProcessCluster::with_zones(9, 3, 10), registry.clone()).await;
            let replica = layout.storage_teams[1].storage_ids[0].clone();
            setup.cluster.kill(&replica);
            setup.write(0, CATCH_UP_KEYS);
            setup.cluster.revive(&replica);
            let (took, entries, plan) = setup.recover(&layout, &replica).await;
            (entries as f64 / took.as_secs_f64(), format!("{plan} ({entries} entries)"))
        });
        println!("catch-up: {rate:>12.0} entries/s   {plan}");
        rates.push(rate);
    }

    let mut times = Vec::new();
    for _ in 0..RUNS {
        let (took, plan, held) = rt.block_on(async {
            let cluster = InProcessCluster::with_zones(9, 3, 10).with_retention(1_000);
            let (setup, layout) = Setup::boot(cluster, registry.clone()).await;
            let replica = layout.storage_teams[1].storage_ids[0].clone();
            setup.cluster.kill(&replica);
            // The four shards share the keys: team 1 ends up with about a quarter.
            setup.write(0, REBUILD_KEYS * 4);
            setup.cluster.revive(&replica);
            let (took, _, plan) = setup.recover(&layout, &replica).await;
            let held = setup
                .cluster
                .team_contents()
                .into_iter()
                .find(|(tag, _)| *tag == layout.storage_teams[1].tag)
                .and_then(|(_, members)| members.into_iter().find(|(id, _, _)| *id == replica))
                .map_or(0, |(_, _, data)| data.len());
            (took, plan, held)
        });
        println!("rebuild:  {:>9.2} ms for {held} keys   {plan}", took.as_secs_f64() * 1e3);
        assert!(plan.starts_with("rebuild"), "the replica was to be rebuilt: {plan}");
        times.push(took.as_secs_f64() * 1e3);
    }

    println!();
    println!("catch-up throughput, median of {RUNS}: {:.0} entries/s ({CATCH_UP_KEYS} entries)", median(rates));
    println!("rebuild of a replica holding ~{REBUILD_KEYS} keys, median of {RUNS}: {:.2} ms", median(times));
}
