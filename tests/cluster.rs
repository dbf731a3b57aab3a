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
    coordinator: Proc,
    workers: Vec<(String, Proc)>,
}

impl Cluster {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_port();
        let coordinator = Self::coordinator(dir.path(), &addr);
        let workers = (1..=6)
            .map(|i| {
                let node = format!("n{i}");
                let data = dir.path().join(&node);
                let args = [
                    "worker", "--coordinator", &addr, "--node", &node, "--zone", &format!("z{}", (i - 1) % 3 + 1),
                    "--data", data.to_str().unwrap(),
                ];
                let proc = spawn(&args, &dir.path().join(format!("{node}.out")));
                (node, proc)
            })
            .collect();
        Cluster { dir, addr, coordinator, workers }
    }

    fn coordinator(dir: &Path, addr: &str) -> Proc {
        let data = dir.join("coordinator");
        let args = ["--no-cache", "coordinator", "--data", data.to_str().unwrap(), "--listen", addr];
        spawn(&args, &dir.join("coordinator.out"))
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

    cluster.coordinator.kill();
    cluster.coordinator = Cluster::coordinator(cluster.dir.path(), &cluster.addr);
    let (second, _) = cluster.serving_after(first);
    assert!(second > first, "epoch {second} after a restart at {first}");
    let report = cluster.verify(&acks);
    assert!(report.contains("verified 1000 acknowledged writes: 0 lost"), "{report}");

    let more = cluster.acks("more");
    let mut load = cluster.load(200, 20, &more);
    assert!(wait_for_exit(&mut load, Duration::from_secs(120)).success(), "the new generation commits");
}
