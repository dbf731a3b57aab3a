//! Real etcd members on loopback for tests (Debian's `etcd-server`, which
//! `.ci/run` installs): one member, or a cluster of three.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ratchet::coordinator::{CoordinatorStore, EtcdStore};

/// An etcd member, SIGKILLed when dropped.
pub struct Member {
    pub child: Child,
    /// `127.0.0.1:PORT` of its client endpoint.
    pub client: String,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `count` members of one etcd cluster in `dir`.
pub fn etcd(dir: &Path, count: usize) -> Vec<Member> {
    let ports: Vec<(u16, u16)> = (0..count).map(|_| (free_port(), free_port())).collect();
    let cluster: Vec<String> = ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}")).collect();
    let members: Vec<Member> = ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.join(format!("etcd-m{i}.log"))).unwrap();
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}"), "--data-dir", dir.join(format!("m{i}")).to_str().unwrap()])
                .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "ratchet-test"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("etcd runs: install Debian's etcd-server (.ci/run does)");
            Member { child, client: format!("127.0.0.1:{client}") }
        })
        .collect();
    // Ready once a quorum serves: an epoch can be read.
    let url = url(&members);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(store) = EtcdStore::connect(&url)
            && store.state().is_ok()
        {
            return members;
        }
        assert!(Instant::now() < deadline, "etcd did not start; logs in {}", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn url(members: &[Member]) -> String {
    format!("etcd://{}", members.iter().map(|m| m.client.as_str()).collect::<Vec<_>>().join(","))
}

