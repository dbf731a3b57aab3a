//! Replica recovery benchmarks: `cargo bench -p ratchet --bench replica`.
//!
//! Both run the real host path (`replica::recover_replica`: figures, the
//! default policy in wasm, the session, the moves) on the in-process
//! cluster (a foreman per node on the in-memory transport), for one replica
//! of a 12-node cluster locked by a new epoch; the replica's node is down
//! while the writes it misses are committed, and hosts no other kind of
//! role, so the writes go on:
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

use ratchet::bindings::types::{Layout, RecoveryConfig, ServiceKind};
use ratchet::cluster::{Cluster, LocalCluster, RemoteCluster};
use ratchet::director::{Director, DirectorOptions};
use ratchet::registry::Registry;
use ratchet::replica::{Budget, LayoutIndex, Sessions, recover_replica};
use ratchet::runtime::{Runtime, RuntimeConfig};
use ratchet::store::{CoordinatorStore, MemoryStore};
use ratchet::topology::NodeSpec;

const RUNS: usize = 7;
/// Enough nodes that some host storage replicas only.
const NODES: usize = 12;
const CATCH_UP_KEYS: usize = 200_000;
/// Keys in the rebuilt replica's team: one of 4 shards.
const REBUILD_KEYS: usize = 100_000;
const PER_VERSION: usize = 100;

struct Setup {
    local: LocalCluster,
    cluster: Arc<RemoteCluster>,
    store: Arc<MemoryStore>,
    registry: Arc<Registry>,
    sessions: Mutex<Sessions>,
}

impl Setup {
    async fn boot(local: LocalCluster, registry: Arc<Registry>) -> (Self, Layout) {
        let setup = Setup {
            cluster: local.client(),
            local,
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

    /// A replica, and its team's index, on a node that hosts no log,
    /// sequencer, proxy or resolver of `layout`: its node can be down while
    /// writes go on.
    fn lone_replica(&self, layout: &Layout) -> (usize, String) {
        let others: Vec<&str> = layout.services.iter().filter(|s| s.kind != ServiceKind::Storage).map(|s| s.id.as_str()).collect();
        let busy: Vec<String> = others.iter().filter_map(|id| self.local.node_of(id)).collect();
        let lone = |id: &String| self.local.node_of(id).is_some_and(|node| !busy.contains(&node));
        layout
            .storage_teams
            .iter()
            .enumerate()
            .find_map(|(team, t)| t.storage_ids.iter().find(|id| lone(id)).map(|id| (team, id.clone())))
            .expect("a node hosts storage only")
    }

    /// Takes the node of `replica` down; answers it, to bring back up.
    fn crash_node_of(&self, replica: &str) -> String {
        let node = self.local.node_of(replica).expect("the replica is hosted");
        self.local.crash(&node);
        node
    }

    /// Commits keys `from..to`, `PER_VERSION` to a version, pumping as it goes.
    async fn write(&self, from: usize, to: usize) {
        let keys: Vec<usize> = (from..to).collect();
        for (n, chunk) in keys.chunks(PER_VERSION).enumerate() {
            let writes: Vec<(String, String)> =
                chunk.iter().map(|i| (format!("{:08x}-{i}", (*i as u32).wrapping_mul(2_654_435_761)), format!("value-{i}"))).collect();
            self.cluster.commit(&writes).await.expect("commits");
            if n % 50 == 0 {
                self.cluster.pump().await;
            }
        }
        self.cluster.pump().await;
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
        let session =
            recover_replica(&*self.registry, &*self.cluster, &self.sessions, &index, epoch, replica).await.unwrap().expect("a session");
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
            let (setup, layout) = Setup::boot(LocalCluster::with_zones(NODES, 3, 10).unwrap(), registry.clone()).await;
            let (_, replica) = setup.lone_replica(&layout);
            let node = setup.crash_node_of(&replica);
            setup.write(0, CATCH_UP_KEYS).await;
            setup.local.start(&node).unwrap();
            let (took, entries, plan) = setup.recover(&layout, &replica).await;
            (entries as f64 / took.as_secs_f64(), format!("{plan} ({entries} entries)"))
        });
        println!("catch-up: {rate:>12.0} entries/s   {plan}");
        rates.push(rate);
    }

    let mut times = Vec::new();
    for _ in 0..RUNS {
        let (took, plan, held) = rt.block_on(async {
            let cluster = LocalCluster::with_retention(NodeSpec::spread(NODES, 3, 10), Some(1_000)).unwrap();
            let (setup, layout) = Setup::boot(cluster, registry.clone()).await;
            let (team, replica) = setup.lone_replica(&layout);
            let node = setup.crash_node_of(&replica);
            // The four shards share the keys: a team ends up with about a quarter.
            setup.write(0, REBUILD_KEYS * 4).await;
            setup.local.start(&node).unwrap();
            let (took, _, plan) = setup.recover(&layout, &replica).await;
            let held = setup
                .local
                .team_contents(&layout)
                .into_iter()
                .find(|(tag, _)| *tag == layout.storage_teams[team].tag)
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
