//! A real cluster of `ratchet` processes on 127.0.0.1: one coordinator and
//! six workers over three zones, each with its own data directory, killed
//! with SIGKILL as a machine dies. `ratchet load` records every acknowledged
//! write and `ratchet verify` reads each one back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn ratchet() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ratchet"))
}

fn spawn(args: &[&str], log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let child = ratchet()
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("the ratchet binary starts");
    Proc { child }
}

fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

struct Cluster {
    dir: tempfile::TempDir,
    addr: String,
    /// The coordinator's admin endpoint.
    admin: String,
    /// Extra arguments of the coordinator, such as `--plugin`.
    extra: Vec<String>,
    coordinator: Proc,
    workers: Vec<(String, Proc)>,
}

/// Node `n{i}` is in zone `z{(i - 1) % 3 + 1}`: n1 and n4 in z1, and so on.
fn zone_of(node: &str) -> String {
    let i: usize = node.trim_start_matches('n').parse().unwrap();
    format!("z{}", (i - 1) % 3 + 1)
}

impl Cluster {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_port();
        let admin = free_port();
        let mut extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        extra.extend(["--admin".to_string(), admin.clone()]);
        let coordinator = Self::coordinator(dir.path(), &addr, &extra);
        let mut cluster = Cluster { dir, addr, admin, extra, coordinator, workers: Vec::new() };
        for i in 1..=6 {
            let node = format!("n{i}");
            let proc = cluster.worker(&node);
            cluster.workers.push((node, proc));
        }
        cluster
    }

    fn worker(&self, node: &str) -> Proc {
        let data = self.data_of(node);
        let zone = zone_of(node);
        let args = ["worker", "--coordinator", &self.addr, "--node", node, "--zone", &zone, "--data", data.to_str().unwrap()];
        spawn(&args, &self.dir.path().join(format!("{node}.out")))
    }

    fn data_of(&self, node: &str) -> PathBuf {
        self.dir.path().join(node)
    }

    fn coordinator(dir: &Path, addr: &str, extra: &[String]) -> Proc {
        let data = dir.join("coordinator");
        let mut args = vec!["--no-cache", "coordinator", "--data", data.to_str().unwrap(), "--listen", addr];
        args.extend(extra.iter().map(String::as_str));
        spawn(&args, &dir.join("coordinator.out"))
    }

    fn restart_coordinator(&mut self) {
        self.coordinator.kill();
        self.coordinator = Self::coordinator(self.dir.path(), &self.addr, &self.extra);
    }

    fn restart_worker(&mut self, node: &str) {
        let proc = self.worker(node);
        let (_, slot) = self.workers.iter_mut().find(|(n, _)| n == node).unwrap();
        *slot = proc;
    }

    fn run(&self, args: &[&str]) -> Output {
        ratchet().args(args).output().unwrap()
    }

    fn status(&self) -> Option<String> {
        let out = self.run(&["status", "--coordinator", &self.addr]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until the coordinator serves a generation of an epoch above
    /// `after`; returns that epoch and the status text.
    fn serving_after(&self, after: u64) -> (u64, String) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.status() {
                let epoch = field(&status, "epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
                if field(&status, "state").as_deref() == Some("serving") && epoch > after {
                    return (epoch, status);
                }
            }
            assert!(Instant::now() < deadline, "no generation above epoch {after} in time; logs in {}", self.dir.path().display());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn acks(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn load(&self, writes: usize, batch: usize, acks: &Path) -> Proc {
        let args = [
            "load", "--coordinator", &self.addr, "--writes", &writes.to_string(), "--batch", &batch.to_string(),
            "--acks", acks.to_str().unwrap(),
        ];
        spawn(&args, &acks.with_extension("out"))
    }

    fn verify(&self, acks: &Path) -> String {
        let out = self.run(&["verify", "--coordinator", &self.addr, "--acks", acks.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "verify failed:\n{text}{}", String::from_utf8_lossy(&out.stderr));
        text
    }

    fn kill_worker(&mut self, node: &str) {
        let (_, proc) = self.workers.iter_mut().find(|(n, _)| n == node).unwrap();
        proc.kill();
    }
}

fn field(status: &str, name: &str) -> Option<String> {
    status.lines().find_map(|l| l.strip_prefix(name)).map(|rest| rest.trim().to_string())
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

fn wait_for_exit(proc: &mut Proc, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not finish in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_a_log_worker_during_the_load_and_lose_no_acknowledged_write() {
    let mut cluster = Cluster::start();
    let (first, status) = cluster.serving_after(0);
    // The node of the first log: service ids are `<kind>-<node>-e<epoch>-<n>`.
    let log = field(&status, "log").unwrap();
    let node = log.split('-').nth(1).unwrap().to_string();

    let acks = cluster.acks("acks");
    let mut load = cluster.load(10_000, 5, &acks);
    while lines(&acks) < 2_000 {
        assert!(load.child.try_wait().unwrap().is_none(), "the load ended before the kill");
        std::thread::sleep(Duration::from_millis(10));
    }
    cluster.kill_worker(&node);
    let ended = wait_for_exit(&mut load, Duration::from_secs(180));
    assert!(ended.success(), "the load failed: {}", std::fs::read_to_string(acks.with_extension("out")).unwrap());
    assert_eq!(lines(&acks), 10_000, "every write was acknowledged in the end");

    let (second, status) = cluster.serving_after(first);
    assert!(second > first);
    assert!(!status.contains(&format!("log        log-{node}-")), "no log of the new generation on the dead node:\n{status}");
    let report = cluster.verify(&acks);
    assert!(report.contains("verified 10000 acknowledged writes: 0 lost"), "{report}");
}

#[test]
fn a_restarted_coordinator_takes_a_higher_epoch_and_recovers() {
    let mut cluster = Cluster::start();
    let (first, _) = cluster.serving_after(0);
    let acks = cluster.acks("acks");
    let mut load = cluster.load(1_000, 20, &acks);
    assert!(wait_for_exit(&mut load, Duration::from_secs(120)).success());

    // Clients commit through the proxies, not the coordinator: with the
    // coordinator dead, a client that knows the generation carries on.
    let during = cluster.acks("during");
    let mut load = cluster.load(3_000, 5, &during);
    while lines(&during) < 100 {
        assert!(load.child.try_wait().unwrap().is_none(), "the load ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.coordinator.kill();
    let down = lines(&during);
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&during) < down + 200 {
        assert!(Instant::now() < deadline, "no commit acknowledged while the coordinator was down");
        std::thread::sleep(Duration::from_millis(10));
    }

    cluster.restart_coordinator();
    assert!(wait_for_exit(&mut load, Duration::from_secs(120)).success());
    let (second, _) = cluster.serving_after(first);
    assert!(second > first, "epoch {second} after a restart at {first}");
    let report = cluster.verify(&acks);
    assert!(report.contains("verified 1000 acknowledged writes: 0 lost"), "{report}");
    let report = cluster.verify(&during);
    assert!(report.contains("verified 3000 acknowledged writes: 0 lost"), "{report}");

    let more = cluster.acks("more");
    let mut load = cluster.load(200, 20, &more);
    assert!(wait_for_exit(&mut load, Duration::from_secs(120)).success(), "the new generation commits");
}

/// The epoch in a service id `<kind>-<node>-e<epoch>-<n>`.
fn epoch_of(id: &str) -> Option<u64> {
    id.rsplit('-').nth(1)?.strip_prefix('e')?.parse().ok()
}

/// Every service id the persisted layout names, from `ratchet status`.
fn layout_ids(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| ["sequencer ", "proxies ", "resolvers ", "log ", "team "].iter().any(|p| l.starts_with(p)))
        .flat_map(|l| l.split_whitespace().skip(1).map(str::to_string).collect::<Vec<_>>())
        .filter(|word| epoch_of(word).is_some())
        .collect()
}

/// Every service the live workers host, from `ratchet status`.
fn hosted_ids(status: &str) -> Vec<String> {
    status
        .lines()
        .filter_map(|l| l.strip_prefix("hosted "))
        .flat_map(|l| l.split_whitespace().skip(1).map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[test]
fn sigkill_a_freshly_recruited_worker_during_recovery_leaves_no_stray_worker() {
    // start-sequencer waits 1.2 s before its work, so the attempt is still
    // running when the workers recruit-logs and recruit-storage created exist.
    let slow = format!("start-sequencer={}", ratchet::components::fixtures::SLOW_SEQUENCER);
    let mut cluster = Cluster::start_with(&["--plugin", &slow]);
    let (first, status) = cluster.serving_after(0);
    let acks = cluster.acks("acks");
    let mut load = cluster.load(500, 10, &acks);
    assert!(wait_for_exit(&mut load, Duration::from_secs(120)).success());

    // Kill a log's node; the recovery it starts recruits new logs elsewhere.
    let log = field(&status, "log").unwrap();
    let dead = log.split('-').nth(1).unwrap().to_string();
    cluster.kill_worker(&dead);

    // The first worker the recovery creates on a node of another zone (so
    // that three zones remain) has a journal named for an epoch above the
    // first: kill its node as soon as it appears.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (victim, recruited) = loop {
        let found = cluster.workers.iter().map(|(n, _)| n.clone()).filter(|n| zone_of(n) != zone_of(&dead)).find_map(|node| {
            let entries = std::fs::read_dir(cluster.data_of(&node)).ok()?;
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .find(|name| name.split('.').next().and_then(epoch_of).is_some_and(|e| e > first))
                .map(|name| (node.clone(), name))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "the recovery recruited no worker in time");
        std::thread::sleep(Duration::from_millis(2));
    };
    cluster.kill_worker(&victim);

    let (second, status) = cluster.serving_after(first);
    // The attempt that recruited on the victim did not complete; a later one did.
    let recruited_epoch = epoch_of(recruited.split('.').next().unwrap()).unwrap();
    assert!(second > recruited_epoch, "epoch {second} completed, but {recruited} was recruited at {recruited_epoch}:\n{status}");
    let ended = |how: &str| status.contains(&format!("at epoch {recruited_epoch}: {how}"));
    assert!(ended("stalled") || ended("failed"), "the attempt at epoch {recruited_epoch} did not complete:\n{status}");
    assert!(status.contains(&format!("completed at epoch {second}")), "{status}");
    let named = layout_ids(&status);
    assert!(!named.iter().any(|id| id.contains(&format!("-{victim}-")) || id.contains(&format!("-{dead}-"))), "{status}");

    // The victim comes back with the journals of the failed attempt; the
    // coordinator releases them, and every service left is in the layout.
    cluster.restart_worker(&victim);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = cluster.status().unwrap_or_default();
        let named = layout_ids(&status);
        let strays: Vec<String> = hosted_ids(&status).into_iter().filter(|id| !named.contains(id)).collect();
        let back = status.contains(&format!("{victim}({})", zone_of(&victim)));
        let leftover: Vec<String> = std::fs::read_dir(cluster.data_of(&victim))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|name| name.split('.').next().and_then(epoch_of).is_some_and(|e| e > first && e < second))
            .collect();
        let epoch = field(&status, "epoch").and_then(|e| e.parse().ok());
        if back && strays.is_empty() && leftover.is_empty() && epoch == Some(second) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "strays left {strays:?}, journals of the failed attempt on {victim}: {leftover:?}\n{status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = cluster.verify(&acks);
    assert!(report.contains("verified 500 acknowledged writes: 0 lost"), "{report}");
}

#[test]
fn a_swap_during_a_running_recovery_lets_it_complete_without_loss() {
    let slow = format!("start-sequencer={}", ratchet::components::fixtures::SLOW_SEQUENCER);
    let mut cluster = Cluster::start_with(&["--plugin", &slow]);
    let (first, status) = cluster.serving_after(0);
    let acks = cluster.acks("acks");
    let mut load = cluster.load(2_000, 10, &acks);
    while lines(&acks) < 500 {
        assert!(load.child.try_wait().unwrap().is_none(), "the load ended before the kill");
        std::thread::sleep(Duration::from_millis(5));
    }
    let log = field(&status, "log").unwrap();
    cluster.kill_worker(log.split('-').nth(1).unwrap());
    // The recovery is under way when start-sequencer is swapped back to the
    // default: the call in flight (waiting its 1.2 s) finishes on the old
    // version, and the recovery goes on.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.status().and_then(|s| field(&s, "state")).as_deref() != Some("recovering") {
        assert!(Instant::now() < deadline, "no recovery started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let default = ratchet::components::DEFAULTS.iter().find(|c| c.slot == "start-sequencer").unwrap();
    let file = cluster.dir.path().join("start-sequencer.wasm");
    std::fs::write(&file, default.bytes).unwrap();
    let out = cluster.run(&["plugin", "swap", "start-sequencer", file.to_str().unwrap(), "--admin", &cluster.admin]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let during = cluster.status().and_then(|s| field(&s, "state"));
    eprintln!("state right after the swap: {during:?}");

    assert!(wait_for_exit(&mut load, Duration::from_secs(180)).success(), "the load failed");
    let (second, status) = cluster.serving_after(first);
    assert!(second > first);
    assert!(status.contains(&format!("completed at epoch {second}")), "{status}");
    let report = cluster.verify(&acks);
    assert!(report.contains("verified 2000 acknowledged writes: 0 lost"), "{report}");

    // The metrics saw both recoveries, the swap and the plugin calls.
    let metrics = ureq::get(format!("http://{}/metrics", cluster.admin)).call().unwrap().body_mut().read_to_string().unwrap();
    let completed = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"ratchet_recovery_attempts_total{outcome="completed"} "#))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(completed >= Some(2), "{metrics}");
    assert!(metrics.contains(&format!("ratchet_epoch {second}")), "{metrics}");
    assert!(metrics.contains(r#"ratchet_plugin_swaps_total{result="activated",slot="start-sequencer"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"ratchet_phase_duration_seconds_count{phase="persist-layout"}"#), "{metrics}");
    assert!(metrics.contains(r#"ratchet_plugin_calls_total{outcome="ok",slot="start-sequencer",version="2"}"#), "{metrics}");
}
