//! Recovery of a real cluster on loopback: `cargo bench -p ratchet --bench cluster`.
//!
//! Starts `ratchet coordinator` and six `ratchet worker` processes over three
//! zones, commits some writes, then, for each run, SIGKILLs the node of a
//! log of the live generation, waits until a new generation serves, and
//! restarts the killed worker. Prints, per run and as medians:
//!
//! - the coordinator's figure: from the detected failure to the persisted
//!   layout (what `ratchet status` shows as the last recovery);
//! - the whole outage seen from outside: from the SIGKILL to a status that
//!   serves the new epoch, which adds detection (the failure detector sees
//!   the dropped connection at once) and this bench's polling.
//!
//! `cluster_history`: the same SIGKILL after 2,000 writes and after
//! 1,000,000 (`RATCHET_HISTORY_WRITES`), on one cluster: the recovery's
//! figure must not grow with the history.
//!
//! `cluster_hang` does the same with SIGSTOP: the process hangs with its
//! sockets open, and is failed after the failure timeout (1 s).
//!
//! `RATCHET_BENCH_RUNS` sets the number of runs (default 12).
//!
//! Replica recovery on the same processes, where every catch-up page and
//! every installed snapshot is journaled and fsynced before it counts
//! (`cargo bench -p ratchet --bench cluster -- replica`), each run on a new
//! cluster, `RATCHET_REPLICA_RUNS` runs (default 3):
//!
//! - `replica_catch_up`: the coordinator is SIGKILLed while a client
//!   commits 100,000 writes through the proxies, so no replica is pumped;
//!   the restarted coordinator's recovery catches its 12 replicas up from
//!   the logs, concurrently. Entries per second over all of them, from the
//!   first session opened to the last completed (the sessions' own clocks).
//! - `replica_rebuild`: one shard of 100,000 keys, logs keeping 20 versions;
//!   a replica's node is SIGKILLed and its replacement is rebuilt from a
//!   teammate's snapshot plus the tail: the session's time, opened to
//!   completed.
//!
//! `etcd_failover` (issue #9): three coordinators sharing one etcd member
//! (`--store etcd://`, `--lease-ttl 2`) and six workers. Each run SIGKILLs
//! the leader and times it to the successor's persisted layout, read from
//! etcd itself; the killed coordinator is restarted as a standby.
//! `RATCHET_FAILOVER_RUNS` runs (default 10).

#[path = "../tests/support/etcd.rs"]
mod etcd_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ratchet::coordinator::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};
use ratchet::status::Status;
use ratchet::transport::{Client, TransportConfig};

/// A child process, SIGKILLed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Bench {
    dir: tempfile::TempDir,
    addr: String,
    client: Client<CoordinatorProtocol>,
    runtime: tokio::runtime::Runtime,
    coordinator: Proc,
    /// Extra arguments of the coordinator.
    extra: Vec<String>,
    /// Set when a run fails, so the temporary directory outlives the bench.
    kept: std::cell::RefCell<bool>,
    workers: Vec<(String, Proc)>,
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("bench log file");
    let child = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .args(args)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("bench log file"))
        .stderr(out)
        .spawn()
        .expect("the ratchet binary starts");
    Proc(child)
}

impl Bench {
    fn start() -> Bench {
        Self::start_with(&[])
    }

    /// Starts the coordinator, with `extra` arguments, and six workers.
    fn start_with(extra: &[&str]) -> Bench {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let coordinator = Self::coordinator(dir.path(), &addr, &extra);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = TransportConfig { call_timeout: Duration::from_secs(5), ..TransportConfig::default() };
        let client = Client::new(addr.as_str(), config);
        let mut bench = Bench { dir, addr, client, runtime, coordinator, extra, workers: Vec::new(), kept: Default::default() };
        for i in 1..=6 {
            let node = format!("n{i}");
            let worker = bench.worker(&node);
            bench.workers.push((node, worker));
        }
        bench
    }

    fn coordinator(dir: &Path, addr: &str, extra: &[String]) -> Proc {
        let data = dir.join("coordinator");
        let mut args = vec!["--no-cache", "coordinator", "--data", data.to_str().unwrap(), "--listen", addr, "--admin", "127.0.0.1:0"];
        args.extend(extra.iter().map(String::as_str));
        spawn(&args, &dir.join("coordinator.out"))
    }

    fn kill_coordinator(&mut self) {
        let _ = self.coordinator.0.kill();
        let _ = self.coordinator.0.wait();
    }

    /// Starts the worker of `slot` again on its data directory (its old
    /// process killed first); answers the seconds until it listens, its
    /// journals reloaded (its "worker listening" line).
    fn restart_worker(&mut self, slot: usize) -> f64 {
        let _ = self.workers[slot].1.0.kill();
        let _ = self.workers[slot].1.0.wait();
        let node = self.workers[slot].0.clone();
        let started = Instant::now();
        self.workers[slot].1 = self.worker(&node);
        let log = self.dir.path().join(format!("{node}.out"));
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("worker listening") {
            assert!(started.elapsed() < Duration::from_secs(300), "{node} did not listen again");
            std::thread::sleep(Duration::from_millis(1));
        }
        started.elapsed().as_secs_f64()
    }

    fn restart_coordinator(&mut self) {
        self.kill_coordinator();
        self.coordinator = Self::coordinator(self.dir.path(), &self.addr, &self.extra);
    }

    fn worker(&self, node: &str) -> Proc {
        let i: usize = node[1..].parse().unwrap();
        let zone = format!("z{}", (i - 1) % 3 + 1);
        let data = self.dir.path().join(node);
        let args = ["worker", "--coordinator", &self.addr, "--node", node, "--zone", &zone, "--data", data.to_str().unwrap()];
        spawn(&args, &self.dir.path().join(format!("{node}.out")))
    }

    fn status(&self) -> Option<Status> {
        match self.runtime.block_on(self.client.call(CoordinatorRequest::Status)) {
            Ok(Ok(CoordinatorReply::Status(status))) => Some(*status),
            _ => None,
        }
    }

    /// Polls until a generation above `after` serves with `healthy` healthy
    /// nodes; returns the status and when it was first seen serving.
    fn serving_after(&self, after: u64, healthy: usize) -> (Status, Instant) {
        let (_, since, now) = self.generation_after(after, healthy);
        (now, since)
    }

    /// Waits as [`Bench::serving_after`] does; answers the first status
    /// that served a generation above `after` (its recovery's figures are
    /// those of the recovery that ended the outage), when it was seen, and
    /// the status once the cluster is whole and clean.
    fn generation_after(&self, after: u64, healthy: usize) -> (Status, Instant, Status) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut serving_since = None;
        let mut first = None;
        loop {
            if let Some(status) = self.status() {
                let serving = status.state == "serving" && status.epoch.is_some_and(|e| e > after);
                if serving && serving_since.is_none() {
                    serving_since = Some(Instant::now());
                    first = Some(status.clone());
                }
                let up = status.nodes.iter().filter(|n| n.healthy).count() == healthy;
                // Each run starts from a clean cluster: nothing hosted but
                // what the layout keeps (a replica that departed in the last
                // run is dropped by the next recovery).
                let named = status.layout.as_ref().map(ratchet::guard::kept_services).unwrap_or_default();
                // ... and every replica serving: none still joining.
                let clean = status.services.iter().all(|s| named.contains(&s.id)) && status.joining.is_empty();
                if let (true, Some(since), Some(first)) = (serving && up && clean, serving_since, first.clone()) {
                    return (first, since, status);
                }
            }
            if Instant::now() > deadline {
                // Keep the processes' logs for a look.
                let dir = self.dir.path().to_path_buf();
                let _ = std::mem::replace(&mut *self.kept.borrow_mut(), true);
                panic!("no generation above {after} with {healthy} healthy nodes; logs in {}\n{:#?}", dir.display(), self.status());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn load(&self, writes: usize) {
        let status = self.load_command(writes, 20).status().expect("ratchet load runs");
        assert!(status.success(), "ratchet load failed");
    }

    fn acks(&self) -> PathBuf {
        self.dir.path().join("acks")
    }

    fn load_command(&self, writes: usize, batch: usize) -> Command {
        let acks = self.acks();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ratchet"));
        command
            .args(["load", "--coordinator", &self.addr, "--writes", &writes.to_string(), "--batch", &batch.to_string()])
            .args(["--acks", acks.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if *self.kept.borrow() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("a temporary directory"));
            let _ = dir.keep();
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench -- FILTER` passes the filter: run a benchmark only when
    // its name contains it.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if wanted("cluster_recovery") {
        cluster_recovery(Fault::Kill);
    }
    if wanted("cluster_hang") {
        cluster_recovery(Fault::Stop);
    }
    if wanted("cluster_history") {
        cluster_history();
    }
    let runs: usize = std::env::var("RATCHET_REPLICA_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    if wanted("replica_catch_up") {
        replica_catch_up(runs);
    }
    if wanted("replica_rebuild") {
        replica_rebuild(runs);
    }
    if wanted("replica_rebuild_large") {
        replica_rebuild_large();
    }
    if wanted("etcd_failover") {
        let runs = std::env::var("RATCHET_FAILOVER_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
        etcd_failover(runs);
    }
}

/// How a run takes the node of a log away.
#[derive(Clone, Copy)]
enum Fault {
    /// SIGKILL: the process dies and the kernel closes its sockets.
    Kill,
    /// SIGSTOP: the process hangs with its sockets open, like a machine
    /// that stops answering.
    Stop,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "SIGKILL",
            Fault::Stop => "SIGSTOP",
        }
    }

    fn bench(self) -> &'static str {
        match self {
            Fault::Kill => "cluster_recovery",
            Fault::Stop => "cluster_hang",
        }
    }
}

/// What one run measured.
struct Struck {
    node: String,
    epoch: u64,
    /// Detected failure to persisted layout, as the coordinator reports it.
    recovery: f64,
    /// The fault to a status serving the new epoch, seen from outside.
    outage: f64,
    trigger: String,
    /// Seconds the struck worker took to reload its journals and listen.
    restart: f64,
    /// Time the completing attempt spent in plugin calls: instantiation,
    /// copying values across and the guest's code.
    plugin: f64,
    /// Of that, the time inside wasm: the guest's code alone.
    guest: f64,
    /// Each phase of the completing attempt, in milliseconds.
    phases: Vec<(String, f64)>,
}

/// Takes the node of a log of the live generation away by `fault`, waits
/// for a newer generation, then brings the node back (a stopped worker is
/// killed first) and waits until the cluster is whole and clean again.
fn strike(bench: &mut Bench, status: &mut Status, run: usize, fault: Fault) -> Struck {
    let layout = status.layout.clone().expect("a serving coordinator has a layout");
    let log = &layout.logs[run % layout.logs.len()].id;
    let node = status.services.iter().find(|s| &s.id == log).map(|s| s.node.clone()).expect("the log is hosted");
    let slot = bench.workers.iter().position(|(n, _)| *n == node).expect("a bench worker");
    let struck_at = Instant::now();
    match fault {
        Fault::Kill => {
            let _ = bench.workers[slot].1.0.kill();
            let _ = bench.workers[slot].1.0.wait();
        }
        Fault::Stop => {
            let pid = bench.workers[slot].1.0.id().to_string();
            let stopped = Command::new("kill").args(["-STOP", &pid]).status().expect("kill runs");
            assert!(stopped.success(), "kill -STOP {pid}");
        }
    }
    let (next, serving_at, _) = bench.generation_after(layout.epoch, 5);
    let restart = bench.restart_worker(slot);
    let last = next.last_recovery().expect("a recovery ran");
    let attempt = last.attempts.last();
    let phases = attempt.map(|a| a.phases.iter().map(|(n, ms, _)| (n.clone(), *ms)).collect()).unwrap_or_default();
    let struck = Struck {
        node,
        epoch: next.epoch.unwrap_or(0),
        recovery: last.millis.expect("the recovery completed"),
        outage: serving_at.duration_since(struck_at).as_secs_f64() * 1e3,
        trigger: last.trigger.clone(),
        restart,
        plugin: attempt.map_or(0.0, |a| a.plugin_millis),
        guest: attempt.map_or(0.0, |a| a.guest_millis),
        phases,
    };
    *status = bench.serving_after(layout.epoch, 6).0;
    struck
}

fn cluster_recovery(fault: Fault) {
    let runs: usize = std::env::var("RATCHET_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(12);
    let bench_name = fault.bench();
    let mut bench = Bench::start();
    let (mut status, _) = bench.serving_after(0, 6);
    bench.load(2_000);
    println!("{bench_name}: 1 coordinator, 6 workers over 3 zones on loopback, 2,000 writes committed; {} a log's node", fault.name());
    println!(
        "{:>4} {:>8} {:>6} {:>12} {:>12} {:>10} {:>9}  trigger",
        "run", "node", "epoch", "recovery ms", "outage ms", "calls ms", "wasm ms"
    );
    let (mut recoveries, mut outages, mut shares, mut call_shares) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut phases: Vec<(String, Vec<f64>)> = Vec::new();
    for run in 1..=runs {
        let struck = strike(&mut bench, &mut status, run, fault);
        let Struck { node, epoch, recovery, outage, trigger, plugin, guest, .. } = &struck;
        println!("{run:>4} {node:>8} {epoch:>6} {recovery:>12.2} {outage:>12.2} {plugin:>10.2} {guest:>9.2}  {trigger}");
        shares.push(guest / recovery * 100.0);
        call_shares.push(plugin / recovery * 100.0);
        for (name, millis) in struck.phases {
            match phases.iter_mut().find(|(n, _)| *n == name) {
                Some((_, all)) => all.push(millis),
                None => phases.push((name, vec![millis])),
            }
        }
        recoveries.push(struck.recovery);
        outages.push(struck.outage);
    }
    let (min, max) = recoveries.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "{bench_name}: detected failure to persisted layout: median {:.2} ms (min {min:.2}, max {max:.2}) over {runs} runs",
        median(&mut recoveries)
    );
    let (min, max) = outages.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "{bench_name}: {} to serving, seen by a client: median {:.2} ms (min {min:.2}, max {max:.2})",
        fault.name(),
        median(&mut outages)
    );
    let (min, max) = shares.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "{bench_name}: plugin share (time inside wasm / failure to persisted layout): median {:.2} % (min {min:.2}, max {max:.2})",
        median(&mut shares)
    );
    let (min, max) = call_shares.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "{bench_name}: plugin calls' share (instantiation, copying and wasm / failure to persisted layout): median {:.2} % (min {min:.2}, max {max:.2})",
        median(&mut call_shares)
    );
    println!("{bench_name}: median per phase of the completing attempt:");
    for (name, mut all) in phases {
        println!("  {name:<28} {:>8.2} ms", median(&mut all));
    }
}

/// Recovery time against the history: the same cluster after 2,000 writes
/// and after `RATCHET_HISTORY_WRITES` (default 1,000,000), SIGKILLing a
/// log's node `RATCHET_HISTORY_RUNS` times (default 5) at each.
fn cluster_history() {
    let runs: usize = std::env::var("RATCHET_HISTORY_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(5);
    let long: usize = std::env::var("RATCHET_HISTORY_WRITES").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    let mut bench = Bench::start();
    let (mut status, _) = bench.serving_after(0, 6);
    println!("cluster_history: 1 coordinator, 6 workers over 3 zones on loopback; SIGKILL a log's node, {runs} runs per history");
    println!(
        "{:>10} {:>4} {:>6} {:>12} {:>14} {:>18} {:>10}  trigger",
        "writes", "run", "epoch", "recovery ms", "replay-logs ms", "assemble-layout ms", "restart s"
    );
    let mut medians = Vec::new();
    let mut committed = 0;
    for writes in [2_000, long] {
        let started = Instant::now();
        let batch = if writes - committed > 100_000 { 100 } else { 20 };
        let load = bench.load_command(writes - committed, batch).status().expect("ratchet load runs");
        assert!(load.success(), "ratchet load failed");
        if writes - committed > 100_000 {
            println!("cluster_history: {} writes committed in {:.1} s", writes - committed, started.elapsed().as_secs_f64());
        }
        committed = writes;
        let (mut recoveries, mut restarts) = (Vec::new(), Vec::new());
        for run in 1..=runs {
            let struck = strike(&mut bench, &mut status, run, Fault::Kill);
            let replay = struck.phases.iter().find(|(n, _)| n == "replay-logs").map_or(0.0, |(_, ms)| *ms);
            let assemble = struck.phases.iter().find(|(n, _)| n == "assemble-layout").map_or(0.0, |(_, ms)| *ms);
            println!(
                "{writes:>10} {run:>4} {:>6} {:>12.2} {replay:>14.2} {assemble:>18.2} {:>10.3}  {}",
                struck.epoch, struck.recovery, struck.restart, struck.trigger
            );
            restarts.push(struck.restart);
            recoveries.push(struck.recovery);
        }
        let median = median(&mut recoveries);
        println!("cluster_history: after {writes} writes: failure to persisted layout, median {median:.2} ms");
        println!(
            "cluster_history: after {writes} writes: a killed worker's restart to listening, median {:.3} s",
            self::median(&mut restarts)
        );
        medians.push(median);
    }
    println!("cluster_history: ratio of the long history to the short: {:.2}", medians[1] / medians[0]);
}

/// A completed replica recovery session, read from a status's event log.
struct Session {
    /// The plan, as its `opened` event describes it.
    plan: String,
    opened_ms: u64,
    completed_ms: u64,
    /// Entries replayed from the logs.
    entries: u64,
}

fn completed_sessions(status: &Status) -> Vec<Session> {
    let events = &status.replica_events;
    let epoch = status.epoch.unwrap_or(0);
    let mut sessions = Vec::new();
    for opened in events.iter().filter(|e| e.epoch == epoch && e.event == "opened") {
        let last = |kind: &str| events.iter().rfind(|e| e.session == opened.session && e.event == kind);
        let Some(completed) = last("completed") else { continue };
        // `through V (N entries)`
        let entries = last("progress").and_then(|p| p.detail.split('(').nth(1)?.split(' ').next()?.parse().ok());
        sessions.push(Session {
            plan: opened.detail.clone(),
            opened_ms: opened.at_ms,
            completed_ms: completed.at_ms,
            entries: entries.unwrap_or(0),
        });
    }
    sessions
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

fn replica_catch_up(runs: usize) {
    const WRITES: usize = 100_000;
    println!("replica_catch_up: 6 workers, 4 shards of 3 replicas, {WRITES} writes committed while the coordinator is down");
    println!("{:>4} {:>9} {:>10} {:>9} {:>12}", "run", "sessions", "entries", "ms", "entries/s");
    let mut rates = Vec::new();
    for run in 1..=runs {
        let mut bench = Bench::start();
        let (status, _) = bench.serving_after(0, 6);
        let first = status.epoch.unwrap_or(0);
        let mut load = bench.load_command(WRITES, 500).spawn().expect("ratchet load runs");
        while lines(&bench.acks()) < 1 {
            assert!(load.try_wait().unwrap().is_none(), "the load ended early");
            std::thread::sleep(Duration::from_millis(1));
        }
        bench.kill_coordinator();
        assert!(load.wait().unwrap().success(), "the load failed");
        bench.restart_coordinator();
        let (status, _) = bench.serving_after(first, 6);
        let sessions: Vec<Session> = completed_sessions(&status).into_iter().filter(|s| s.plan.starts_with("catch-up")).collect();
        assert!(!sessions.is_empty(), "no catch-up completed: {:#?}", status.replica_events);
        let entries: u64 = sessions.iter().map(|s| s.entries).sum();
        let begin = sessions.iter().map(|s| s.opened_ms).min().unwrap_or(0);
        let end = sessions.iter().map(|s| s.completed_ms).max().unwrap_or(0);
        let millis = (end - begin).max(1) as f64;
        let rate = entries as f64 / (millis / 1e3);
        println!("{run:>4} {:>9} {entries:>10} {millis:>9.0} {rate:>12.0}", sessions.len());
        rates.push(rate);
    }
    let (min, max) = rates.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "replica_catch_up: median {:.0} entries/s (min {min:.0}, max {max:.0}) over {runs} runs, every page fsynced",
        median(&mut rates)
    );
}

fn replica_rebuild(runs: usize) {
    const KEYS: usize = 100_000;
    println!("replica_rebuild: 6 workers, 1 shard of {KEYS} keys, logs keeping 20 versions; a replica's node is SIGKILLed");
    println!("{:>4} {:>24} {:>10} {:>10}", "run", "lost replica", "tail", "ms");
    let mut times = Vec::new();
    for run in 1..=runs {
        let mut bench = Bench::start_with(&["--shards", "1", "--log-retention", "20"]);
        bench.serving_after(0, 6);
        let loaded = bench.load_command(KEYS, 1_000).status().expect("ratchet load runs");
        assert!(loaded.success(), "ratchet load failed");
        // Let the pump bring every replica to the last write and pop the logs.
        std::thread::sleep(Duration::from_secs(1));
        let (lost, _, session) = kill_a_replica_and_rebuild(&mut bench);
        let millis = (session.completed_ms - session.opened_ms) as f64;
        println!("{run:>4} {lost:>24} {:>10} {millis:>10.0}", session.entries);
        times.push(millis);
    }
    let (min, max) = times.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "replica_rebuild: median {:.0} ms to rebuild a replica of {KEYS} keys (min {min:.0}, max {max:.0}) over {runs} runs",
        median(&mut times)
    );
}

/// SIGKILLs the node of the first replica of the first team and waits for
/// a generation without it; answers the replica, its worker's slot and the
/// one rebuild session that replaced it.
fn kill_a_replica_and_rebuild(bench: &mut Bench) -> (String, usize, Session) {
    let status = bench.status().expect("the coordinator answers");
    let layout = status.layout.clone().expect("a serving coordinator has a layout");
    let lost = layout.storage_teams[0].storage_ids[0].clone();
    let node = status.services.iter().find(|s| s.id == lost).map(|s| s.node.clone()).expect("the replica is hosted");
    let slot = bench.workers.iter().position(|(n, _)| *n == node).expect("a bench worker");
    let _ = bench.workers[slot].1.0.kill();
    let _ = bench.workers[slot].1.0.wait();
    let (next, _) = bench.serving_after(layout.epoch, 5);
    let mut rebuilt: Vec<Session> = completed_sessions(&next).into_iter().filter(|s| s.plan.starts_with("rebuild")).collect();
    assert_eq!(rebuilt.len(), 1, "not one rebuild completed: {:#?}", next.replica_events);
    (lost, slot, rebuilt.remove(0))
}

/// A replica of a shard of `RATCHET_REBUILD_MIB` MiB (default 1,024),
/// rebuilt from a teammate: its node is SIGKILLed after the data is
/// committed (64 KiB values, 1 MiB a commit) and the logs popped to 20
/// versions, so the replacement is seeded from a snapshot streamed in pages
/// into a staging file and installed at once. Then the killed worker is
/// restarted on its data directory, and its reload of the journals timed.
fn replica_rebuild_large() {
    let mib: usize = std::env::var("RATCHET_REBUILD_MIB").ok().and_then(|r| r.parse().ok()).unwrap_or(1024);
    const VALUE: usize = 64 << 10;
    let mut bench = Bench::start_with(&["--shards", "1", "--log-retention", "20"]);
    bench.serving_after(0, 6);
    let started = Instant::now();
    let mut client = ratchet::client::CommitClient::new(
        &bench.addr,
        TransportConfig { call_timeout: Duration::from_secs(30), ..TransportConfig::default() },
    );
    let value = "v".repeat(VALUE);
    let writes = mib * (1 << 20) / VALUE;
    // A commit refused by a generation that a recovery replaced meanwhile
    // (a member slow on a busy disk is failed after the failure timeout)
    // is sent again to the next one, as a client does: the writes are
    // idempotent. The recoveries are counted and printed.
    let mut retried = 0;
    for batch in 0..writes / 16 {
        let page: Vec<(String, String)> =
            (0..16).map(|i| (format!("{:08x}-{batch}-{i}", (batch as u32).wrapping_mul(2_654_435_761)), value.clone())).collect();
        let mut tries = 0;
        while let Err(err) = bench.runtime.block_on(client.commit(&page)) {
            tries += 1;
            // A recovery on a disk whose fsyncs stall can take seconds.
            if tries >= 240 {
                *bench.kept.borrow_mut() = true;
                panic!("a commit failed {tries} times: {err:?} (logs kept in {})", bench.dir.path().display());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        retried += tries;
    }
    println!(
        "replica_rebuild_large: {mib} MiB committed to one shard in {:.1} s ({retried} commits sent again after a recovery)",
        started.elapsed().as_secs_f64()
    );
    // Let the pump bring every replica to the last write and pop the logs.
    std::thread::sleep(Duration::from_secs(3));
    let (_, slot, session) = kill_a_replica_and_rebuild(&mut bench);
    let seconds = (session.completed_ms - session.opened_ms) as f64 / 1e3;
    println!(
        "replica_rebuild_large: a replica of {mib} MiB rebuilt from a teammate in {seconds:.2} s: {:.1} MB/s",
        (mib << 20) as f64 / 1e6 / seconds
    );
    let restart = bench.restart_worker(slot);
    println!("replica_rebuild_large: the killed worker restarted on its {mib} MiB of journals, listening after {restart:.2} s");
}

fn etcd_failover(runs: usize) {
    use ratchet::store::{CoordinatorStore, EtcdStore};
    const TTL: &str = "2";
    let dir = tempfile::tempdir().expect("a temporary directory");
    let members = etcd_support::etcd(dir.path(), 1);
    let url = etcd_support::url(&members);
    let store = EtcdStore::connect(&url).expect("etcd answers");
    let addrs: Vec<String> =
        (0..3).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()).collect();
    let coordinator = |i: usize| {
        let data = dir.path().join(format!("coordinator{i}"));
        let args = [
            "--no-cache",
            "coordinator",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &addrs[i],
            "--admin",
            "127.0.0.1:0",
            "--store",
            &url,
            "--lease-ttl",
            TTL,
        ];
        spawn(&args, &dir.path().join(format!("coordinator{i}.out")))
    };
    let mut coordinators: Vec<Proc> = (0..3).map(coordinator).collect();
    let all = addrs.join(",");
    let _workers: Vec<Proc> = (1..=6)
        .map(|i| {
            let (node, data) = (format!("n{i}"), dir.path().join(format!("n{i}")));
            let zone = format!("z{}", (i - 1) % 3 + 1);
            spawn(
                &["worker", "--coordinator", &all, "--node", &node, "--zone", &zone, "--data", data.to_str().unwrap()],
                &dir.path().join(format!("{node}.out")),
            )
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let config = TransportConfig { call_timeout: Duration::from_secs(1), ..TransportConfig::default() };
    let clients: Vec<Client<CoordinatorProtocol>> = addrs.iter().map(|a| Client::new(a.as_str(), config.clone())).collect();
    let state = |i: usize| match runtime.block_on(clients[i].call(CoordinatorRequest::Status)) {
        Ok(Ok(CoordinatorReply::Status(status))) => Some((status.state.clone(), status.epoch.unwrap_or(0))),
        _ => None,
    };
    // The coordinator that serves above `after`, once the others stand by.
    let leader_after = |after: u64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let states: Vec<_> = (0..3).map(state).collect();
            let serving: Vec<usize> = (0..3).filter(|&i| states[i].as_ref().is_some_and(|(s, e)| s == "serving" && *e > after)).collect();
            let standing = states.iter().flatten().filter(|(s, _)| s.starts_with("standby")).count();
            if let ([leader], 2) = (serving.as_slice(), standing) {
                return (*leader, states[*leader].as_ref().map_or(0, |(_, e)| *e));
            }
            assert!(Instant::now() < deadline, "no single leader above {after}: {states:?}; logs in {}", dir.path().display());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let (mut leader, mut epoch) = leader_after(0);
    println!("etcd_failover: 3 coordinators on 1 etcd member (lease TTL {TTL} s), 6 workers; SIGKILL the leader");
    println!("{:>4} {:>7} {:>10} {:>6} {:>12}", "run", "killed", "successor", "epoch", "failover ms");
    let mut times = Vec::new();
    for run in 1..=runs {
        let killed = Instant::now();
        let _ = coordinators[leader].0.kill();
        let _ = coordinators[leader].0.wait();
        let persisted = loop {
            if store.state().ok().and_then(|s| s.layout).is_some_and(|l| l.epoch > epoch) {
                break killed.elapsed();
            }
            assert!(killed.elapsed() < Duration::from_secs(60), "no successor persisted a layout");
            std::thread::sleep(Duration::from_millis(2));
        };
        coordinators[leader] = coordinator(leader);
        let (next, next_epoch) = leader_after(epoch);
        let millis = persisted.as_secs_f64() * 1e3;
        println!("{run:>4} {leader:>7} {next:>10} {next_epoch:>6} {millis:>12.1}");
        times.push(millis);
        (leader, epoch) = (next, next_epoch);
    }
    let (min, max) = times.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "etcd_failover: SIGKILL of the leader to the successor's persisted layout: median {:.1} ms (min {min:.1}, max {max:.1}) over {runs} runs",
        median(&mut times)
    );
}
