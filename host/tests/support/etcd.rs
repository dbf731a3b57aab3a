//! Real etcd members on loopback for tests (Debian's `etcd-server`, which
//! `.ci/run` installs): one member, or a cluster of three.

// Shared by several test and bench targets, each using part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ratchet::store::{CoordinatorStore, EtcdStore};

/// An etcd member, SIGKILLed when dropped.
pub struct Member {
    pub child: Child,
    /// `127.0.0.1:PORT` of its client endpoint.
    pub client: String,
    /// How it was started, to start it again on its data.
    command: Vec<String>,
    log: std::path::PathBuf,
}

impl Member {
    /// SIGKILLs it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on its data directory and ports.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_etcd(&self.command, std::fs::OpenOptions::new().append(true).open(&self.log).unwrap());
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How many times the members are started on other ports when one of them
/// could not bind its own.
const PORT_ATTEMPTS: usize = 5;

/// Starts `count` members of one etcd cluster in `dir`. A port picked free
/// can be taken by another process before etcd binds it (the other tests
/// run alongside); a member that exits before the cluster serves is taken
/// for that, and the cluster is started again on other ports.
pub fn etcd(dir: &Path, count: usize) -> Vec<Member> {
    for _ in 0..PORT_ATTEMPTS {
        match start(dir, count) {
            Ok(members) => return members,
            Err(()) => {
                for i in 0..count {
                    let _ = std::fs::remove_dir_all(dir.join(format!("m{i}")));
                }
            }
        }
    }
    panic!("etcd did not start in {PORT_ATTEMPTS} attempts; logs in {}", dir.display());
}

/// Starts the members and waits until a quorum serves; `Err` if a member
/// exited first (its ports were taken, most likely). The members started
/// are killed then, as they are dropped.
fn start(dir: &Path, count: usize) -> Result<Vec<Member>, ()> {
    let ports: Vec<(u16, u16)> = (0..count).map(|_| (free_port(), free_port())).collect();
    let cluster: Vec<String> = ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
    let mut members: Vec<Member> = ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log_path = dir.join(format!("etcd-m{i}.log"));
            let log = std::fs::File::create(&log_path).unwrap();
            let data = dir.join(format!("m{i}"));
            let command: Vec<String> = [
                "--name",
                &format!("m{i}"),
                "--data-dir",
                data.to_str().unwrap(),
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &cluster.join(","),
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "ratchet-test",
            ]
            .iter()
            .map(|a| a.to_string())
            .collect();
            let child = spawn_etcd(&command, log);
            Member { child, client: format!("127.0.0.1:{client}"), command, log: log_path }
        })
        .collect();
    // Ready once a quorum serves: an epoch can be read.
    let url = url(&members);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(store) = EtcdStore::connect(&url)
            && store.state().is_ok()
        {
            return Ok(members);
        }
        if members.iter_mut().any(|m| matches!(m.child.try_wait(), Ok(Some(_)))) {
            return Err(());
        }
        assert!(Instant::now() < deadline, "etcd did not start; logs in {}", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn url(members: &[Member]) -> String {
    format!("etcd://{}", members.iter().map(|m| m.client.as_str()).collect::<Vec<_>>().join(","))
}

/// One etcd member serving clients over https only, to holders of a
/// certificate of the CA in `certs` (`ratchet certs`), with `certs/etcd.pem`
/// as its own. Answers it and its `etcds://` URL.
pub fn etcd_tls(dir: &Path, certs: &Path) -> (Member, String) {
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let file = |name: &str| certs.join(name).display().to_string();
    let command: Vec<String> = [
        "--name",
        "m0",
        "--data-dir",
        dir.join("tls-m0").to_str().unwrap(),
        "--listen-client-urls",
        &client_url,
        "--advertise-client-urls",
        &client_url,
        "--listen-peer-urls",
        &peer_url,
        "--initial-advertise-peer-urls",
        &peer_url,
        "--initial-cluster",
        &format!("m0={peer_url}"),
        "--initial-cluster-state",
        "new",
        "--cert-file",
        &file("etcd.pem"),
        "--key-file",
        &file("etcd.key"),
        "--client-cert-auth",
        "--trusted-ca-file",
        &file("ca.pem"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let log_path = dir.join("etcd-tls.log");
    let child = spawn_etcd(&command, std::fs::File::create(&log_path).unwrap());
    (Member { child, client: format!("127.0.0.1:{client}"), command, log: log_path }, format!("etcds://127.0.0.1:{client}"))
}

/// Starts `etcd` with `command`, its output to `log`.
fn spawn_etcd(command: &[String], log: std::fs::File) -> Child {
    Command::new("etcd")
        .args(command)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("etcd runs: install Debian's etcd-server (.ci/run does)")
}
