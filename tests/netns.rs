//! Real faults on real processes, each in its own network namespace: a
//! link cut, every packet lost, a slow link, a slow disk, a hung process
//! (SIGSTOP) and a dead one (SIGKILL), each on the node of a log of the
//! live generation, and a slow disk on a node of storage replicas alone,
//! while `ratchet load` commits, each ended by `ratchet verify`. A fault
//! that leaves the generation able to commit (the slow link, the slow
//! storage disk) must not stop the writes.
//!
//! Needs root with CAP_NET_ADMIN (see `support/netns.rs`); elsewhere it
//! prints why it is skipped and passes. `RATCHET_NETNS=skip` skips it.
//! The slow disk needs loop devices and the blkio cgroup (see
//! `support/disk.rs`); without them that fault is skipped, and says why.

#[path = "support/disk.rs"]
mod disk;
#[path = "support/netns.rs"]
mod netns;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use netns::{Lab, LinkFault, NetCluster, node_of_a_log, node_of_storage_alone};

/// What is done to a node.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Link(LinkFault),
    /// Every write of the node's worker throttled to one a second.
    SlowDisk,
    /// The same on a node that hosts storage replicas alone: commits do
    /// not wait for storage, so the generation goes on serving.
    SlowStorageDisk,
    Stop,
    Kill,
}

impl Fault {
    /// Whether the generation must be replaced: a slow link still serves.
    fn breaks(self) -> bool {
        !matches!(self, Fault::Link(LinkFault::Slow) | Fault::SlowStorageDisk)
    }

    fn slows_a_disk(self) -> bool {
        matches!(self, Fault::SlowDisk | Fault::SlowStorageDisk)
    }
}

fn skipped() -> Option<String> {
    if std::env::var("RATCHET_NETNS").as_deref() == Ok("skip") {
        return Some("RATCHET_NETNS=skip".into());
    }
    Lab::unavailable()
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not finish in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn kernel_faults_between_namespaces_during_the_load_lose_no_acknowledged_write() {
    if let Some(why) = skipped() {
        eprintln!("netns fault test skipped: {why}");
        return;
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_ratchet"));
    // Each worker keeps its data on a disk of its own that can be made
    // slow, where there can be such disks. Declared before the cluster:
    // dropped after it.
    let disk_dir = tempfile::tempdir().unwrap();
    let disks = disk::per_node(disk_dir.path(), &netns::NODES, 1).unwrap_or_else(|why| {
        eprintln!("netns fault test: the slow disk is skipped: {why}");
        BTreeMap::new()
    });
    let data_root = (!disks.is_empty()).then(|| disk_dir.path());
    let mut cluster = NetCluster::start_on(bin, &[], data_root).expect("the lab and its processes");
    let (mut epoch, mut status, _) = cluster.serving_after(0, Duration::from_secs(120)).expect("a first generation");
    // A stranger on the network, without the cluster's certificates, gets
    // nothing from the coordinator, and cannot make a worker listen beyond
    // loopback without TLS.
    let stranger = std::process::Command::new(bin).args(["status", "--coordinator", &cluster.addr]).output().unwrap();
    assert!(!stranger.status.success(), "{}", String::from_utf8_lossy(&stranger.stdout));
    let open = std::process::Command::new(bin)
        .args(["worker", "--coordinator", &cluster.addr, "--node", "n9", "--zone", "z1", "--listen", "0.0.0.0:0"])
        .args(["--data", cluster.dir.path().join("open").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&open.stderr).contains("is not a loopback address"), "{}", String::from_utf8_lossy(&open.stderr));
    const WRITES: usize = 2_000;
    let faults = [
        Fault::Link(LinkFault::Cut),
        Fault::Link(LinkFault::Loss),
        Fault::Link(LinkFault::Slow),
        Fault::SlowDisk,
        Fault::SlowStorageDisk,
        Fault::Stop,
        Fault::Kill,
    ];
    let mut all_acks = Vec::new();
    for fault in faults {
        if fault.slows_a_disk() && disks.is_empty() {
            continue;
        }
        let node = match fault {
            // The node of the slow disk before hosts no role of the
            // generation that went around it: storage alone, as a rule.
            Fault::SlowStorageDisk => match node_of_storage_alone(&status) {
                Some(node) => node,
                None => {
                    eprintln!("netns fault test: no node hosts storage alone, the slow storage disk is skipped:\n{status}");
                    continue;
                }
            },
            _ => node_of_a_log(&status).expect("a log in the status"),
        };
        let acks = cluster.dir.path().join(format!("acks-{fault:?}").replace(['(', ')'], ""));
        let mut load = cluster.load(WRITES, 5, &acks);
        while lines(&acks) < WRITES / 4 {
            assert!(load.try_wait().unwrap().is_none(), "{fault:?}: the load ended before the fault");
            std::thread::sleep(Duration::from_millis(10));
        }
        match fault {
            Fault::Link(link) => cluster.lab.inject(&node, link).expect("the link fault"),
            Fault::SlowDisk | Fault::SlowStorageDisk => disks[node.as_str()].slow(cluster.pid(&node)).expect("the disk slowed"),
            Fault::Stop => cluster.signal(&node, "STOP"),
            Fault::Kill => cluster.signal(&node, "KILL"),
        }
        let struck = Instant::now();
        if fault.breaks() {
            let (next, next_status, at) = cluster
                .serving_after(epoch, Duration::from_secs(60))
                .unwrap_or_else(|err| panic!("{fault:?} on {node}: {err}; logs in {}", cluster.dir.path().display()));
            eprintln!("{fault:?} on {node}: epoch {epoch} -> {next} serving after {:?}", at - struck);
            eprintln!("{next_status}");
            assert!(
                !next_status.contains(&format!("log-{node}-e{next}")),
                "{fault:?}: no log of the new generation on {node}:\n{next_status}"
            );
            if matches!(fault, Fault::SlowDisk) {
                // It still answers: the status says why it is not used.
                assert!(next_status.contains(", degraded)") && next_status.contains(&format!("degraded   {node}: ")), "{next_status}");
            }
            epoch = next;
        } else {
            // Commits go on meanwhile: neither fault is in their way.
            let before = lines(&acks);
            std::thread::sleep(Duration::from_secs(3));
            let during = lines(&acks) - before;
            eprintln!("{fault:?} on {node}: {during} writes acknowledged in 3 s");
            assert!(during >= 50, "{fault:?} on {node}: {during} writes acknowledged in 3 s\n{:?}", cluster.status());
        }
        match fault {
            Fault::Link(link) => cluster.lab.heal(&node, link).expect("the link healed"),
            Fault::SlowDisk | Fault::SlowStorageDisk => disks[node.as_str()].heal(cluster.pid(&node)).expect("the disk healed"),
            Fault::Stop => cluster.signal(&node, "CONT"),
            Fault::Kill => cluster.restart(&node),
        }
        let ended = wait_for_exit(&mut load, Duration::from_secs(180));
        assert!(ended.success(), "{fault:?}: the load failed: {}", std::fs::read_to_string(acks.with_extension("out")).unwrap());
        assert_eq!(lines(&acks), WRITES, "{fault:?}: every write acknowledged in the end");
        all_acks.push(acks);
        for acks in &all_acks {
            let report = cluster.verify(acks).unwrap_or_else(|err| panic!("after {fault:?}, verify {}: {err}", acks.display()));
            assert!(report.contains(&format!("verified {WRITES} acknowledged writes: 0 lost")), "after {fault:?}: {report}");
        }
        // The next fault strikes a serving generation.
        let (now, now_status, _) = cluster.serving_after(epoch - 1, Duration::from_secs(60)).expect("serving");
        (epoch, status) = (now, now_status);
    }
}
