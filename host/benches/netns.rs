//! A log's host cut off, or its disk slowed, on processes in separate
//! network namespaces: `cargo bench -p ratchet --bench netns` (as root with
//! CAP_NET_ADMIN).
//!
//! One coordinator and six workers, each in a namespace of its own joined
//! by a bridge (see `tests/support/netns.rs`), each worker's data on a disk
//! of its own (see `tests/support/disk.rs`); 2,000 writes committed. Each
//! run takes the node of a log of the live generation off the network, by
//! the fault named, or throttles its disk to one write a second, and times
//! it to the first status that serves a newer epoch, then heals the fault
//! and lets the cluster settle. `RATCHET_NETNS_RUNS` runs per fault
//! (default 10); the coordinator's failure timeout is its default, 1 s.
//! Where slow disks cannot be made, that fault is skipped, and says why.

#[path = "../../tests/support/disk.rs"]
mod disk;
#[path = "../../tests/support/netns.rs"]
mod netns;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use netns::{Lab, LinkFault, NetCluster, node_of_a_log};

/// How a run takes a log's node away.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Link(LinkFault),
    SlowDisk,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if let Some(why) = Lab::unavailable() {
        println!("netns: skipped: {why}");
        return;
    }
    let runs: usize = std::env::var("RATCHET_NETNS_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
    let bin = Path::new(env!("CARGO_BIN_EXE_ratchet"));
    // Declared before the cluster: dropped after its processes.
    let disk_dir = tempfile::tempdir().expect("a temporary directory");
    let disks = disk::per_node(disk_dir.path(), &netns::NODES, 1).unwrap_or_else(|why| {
        println!("netns: the slow disk is skipped: {why}");
        BTreeMap::new()
    });
    let data_root = (!disks.is_empty()).then(|| disk_dir.path());
    let mut cluster = NetCluster::start_on(bin, &[], data_root).expect("the lab and its processes");
    let (mut epoch, mut status, _) = cluster.serving_after(0, Duration::from_secs(120)).expect("a first generation");
    let acks = cluster.dir.path().join("acks");
    let load = cluster.load(2_000, 20, &acks).wait().expect("ratchet load runs");
    assert!(load.success(), "ratchet load failed");
    println!("netns: 1 coordinator, 6 workers, each in its own network namespace; 2,000 writes committed");
    let faults = [Fault::Link(LinkFault::Cut), Fault::Link(LinkFault::Loss), Fault::SlowDisk];
    for fault in faults.into_iter().filter(|f| !matches!(f, Fault::SlowDisk) || !disks.is_empty()) {
        match fault {
            Fault::Link(link) => println!("netns: {link:?}: {}", cluster.lab.describe(link)),
            Fault::SlowDisk => println!("netns: SlowDisk: the worker's writes throttled to 1 a second (blkio cgroup, loop device)"),
        }
        println!("{:>4} {:>6} {:>6} {:>12}", "run", "node", "epoch", "outage ms");
        let mut outages = Vec::new();
        for run in 1..=runs {
            let node = node_of_a_log(&status).expect("a log in the status");
            match fault {
                Fault::Link(link) => cluster.lab.inject(&node, link).expect("the fault"),
                Fault::SlowDisk => disks[node.as_str()].slow(cluster.pid(&node)).expect("the disk slowed"),
            }
            let struck = Instant::now();
            let (next, _, at) = cluster.serving_after(epoch, Duration::from_secs(60)).expect("a new generation");
            let outage = (at - struck).as_secs_f64() * 1e3;
            println!("{run:>4} {node:>6} {next:>6} {outage:>12.2}");
            outages.push(outage);
            match fault {
                Fault::Link(link) => cluster.lab.heal(&node, link).expect("the link healed"),
                Fault::SlowDisk => disks[node.as_str()].heal(cluster.pid(&node)).expect("the disk healed"),
            }
            // The healed worker's stale services are released before the next run.
            std::thread::sleep(Duration::from_secs(2));
            (epoch, status, _) = cluster.serving_after(next - 1, Duration::from_secs(60)).expect("serving");
        }
        let (min, max) = outages.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        println!(
            "netns: {fault:?} of a log's host to serving: median {:.2} ms (min {min:.2}, max {max:.2}) over {runs} runs",
            median(&mut outages)
        );
    }
    let report = cluster.verify(&acks).expect("verify");
    println!("netns: {}", report.trim());
}
