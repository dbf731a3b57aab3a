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
//!   serves the new epoch, which adds detection (the coordinator checks its
//!   generation every 200 ms) and this bench's polling.
//!
//! `RATCHET_BENCH_RUNS` sets the number of runs (default 12).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ratchet::process::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest, Status};
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
    _coordinator: Proc,
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
        let dir = tempfile::tempdir().expect("a temporary directory");
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
        let data = dir.path().join("coordinator");
        let coordinator = spawn(
            &["--no-cache", "coordinator", "--data", data.to_str().unwrap(), "--listen", &addr, "--admin", "127.0.0.1:0"],
            &dir.path().join("coordinator.out"),
        );
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let config = TransportConfig { call_timeout: Duration::from_secs(5), ..TransportConfig::default() };
        let client = Client::new(addr.as_str(), config);
        let mut bench = Bench { dir, addr, client, runtime, _coordinator: coordinator, workers: Vec::new(), kept: Default::default() };
        for i in 1..=6 {
            let node = format!("n{i}");
            let worker = bench.worker(&node);
            bench.workers.push((node, worker));
        }
        bench
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
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut serving_since = None;
        loop {
            if let Some(status) = self.status() {
                let serving = status.state == "serving" && status.epoch.is_some_and(|e| e > after);
                if serving && serving_since.is_none() {
                    serving_since = Some(Instant::now());
                }
                let up = status.nodes.iter().filter(|n| n.healthy).count() == healthy;
                // Each run starts from a clean cluster: nothing hosted but the layout.
                let named = status.layout.as_ref().map(ratchet::guard::named_services).unwrap_or_default();
                let clean = status.services.iter().all(|s| named.contains(&s.id));
                if let (true, Some(since)) = (serving && up && clean, serving_since) {
                    return (status, since);
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
        let acks: PathBuf = self.dir.path().join("acks");
        let status = Command::new(env!("CARGO_BIN_EXE_ratchet"))
            .args(["load", "--coordinator", &self.addr, "--writes", &writes.to_string(), "--acks", acks.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("ratchet load runs");
        assert!(status.success(), "ratchet load failed");
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
    // `cargo bench -- FILTER` passes the filter: run only when it matches.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !filter.is_empty() && !filter.iter().any(|f| "cluster_recovery".contains(f.as_str())) {
        return;
    }
    let runs: usize = std::env::var("RATCHET_BENCH_RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(12);
    let mut bench = Bench::start();
    let (mut status, _) = bench.serving_after(0, 6);
    bench.load(2_000);
    println!("cluster_recovery: 1 coordinator, 6 workers over 3 zones on loopback, 2,000 writes committed");
    println!("{:>4} {:>8} {:>6} {:>12} {:>12}  trigger", "run", "killed", "epoch", "recovery ms", "outage ms");
    let (mut recoveries, mut outages) = (Vec::new(), Vec::new());
    let mut phases: Vec<(String, Vec<f64>)> = Vec::new();
    for run in 1..=runs {
        let layout = status.layout.clone().expect("a serving coordinator has a layout");
        let log = &layout.logs[run % layout.logs.len()].id;
        let node = status.services.iter().find(|s| &s.id == log).map(|s| s.node.clone()).expect("the log is hosted");
        let slot = bench.workers.iter().position(|(n, _)| *n == node).expect("a bench worker");
        let killed_at = Instant::now();
        let _ = bench.workers[slot].1.0.kill();
        let _ = bench.workers[slot].1.0.wait();
        let (next, serving_at) = bench.serving_after(layout.epoch, 5);
        // Back for the next run; the coordinator releases its stale journals.
        let restarted = bench.worker(&node);
        bench.workers[slot].1 = restarted;
        let recovery = next.recovery_millis.expect("the recovery completed");
        let outage = serving_at.duration_since(killed_at).as_secs_f64() * 1e3;
        println!("{run:>4} {node:>8} {:>6} {recovery:>12.2} {outage:>12.2}  {}", next.epoch.unwrap_or(0), next.trigger);
        if let Some(attempt) = next.last_recovery.last() {
            for (name, millis, _) in &attempt.phases {
                match phases.iter_mut().find(|(n, _)| n == name) {
                    Some((_, all)) => all.push(*millis),
                    None => phases.push((name.clone(), vec![*millis])),
                }
            }
        }
        recoveries.push(recovery);
        outages.push(outage);
        status = bench.serving_after(layout.epoch, 6).0;
    }
    let (min, max) = recoveries.iter().fold((f64::MAX, 0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    println!(
        "cluster_recovery: detected failure to persisted layout: median {:.2} ms (min {min:.2}, max {max:.2}) over {runs} runs",
        median(&mut recoveries)
    );
    println!("cluster_recovery: SIGKILL to serving, seen by a client: median {:.2} ms", median(&mut outages));
    println!("cluster_recovery: median per phase of the completing attempt:");
    for (name, mut all) in phases {
        println!("  {name:<28} {:>8.2} ms", median(&mut all));
    }
}
