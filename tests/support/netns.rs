//! Several machines on one: each process in its own network namespace,
//! joined by a bridge, with real faults injected by the kernel.
//!
//! A hub namespace holds the bridge; every host namespace is joined to it
//! by a veth pair (its end named `eth0`), on a /24 of its own. The root
//! namespace (where the test or bench runs its clients) joins the bridge
//! too, at `.254`. Faults act on one host:
//!
//! - `cut`: its bridge port goes down (a pulled cable);
//! - `loss`: every packet in and out is dropped (`tc netem loss 100%` where
//!   the kernel has netem, else an iptables `statistic` rule of
//!   probability 1);
//! - `slow`: `tc netem delay` where the kernel has netem, else a token
//!   bucket (`tc tbf`) capping the link at 256 kbit/s;
//! - the process's signals (`SIGSTOP`, `SIGKILL`) are the caller's.
//!
//! Everything is removed when the lab is dropped, panics included.
//! Needs root with `CAP_NET_ADMIN`, `ip` and `tc`, and `iptables` where
//! the kernel lacks netem; [`Lab::unavailable`] says what is missing.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A fault on one host's link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkFault {
    /// The link is down.
    Cut,
    /// Every packet is lost.
    Loss,
    /// The link is slow.
    Slow,
}

/// A set of network namespaces joined by a bridge.
pub struct Lab {
    /// Distinguishes this lab's namespaces and links from another's.
    tag: String,
    /// The third octet of the lab's subnet, `10.77.N.0/24`.
    subnet: u8,
    hub: String,
    hosts: Vec<String>,
    /// Whether the kernel has `sch_netem`.
    pub netem: bool,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

impl Lab {
    /// Why a lab cannot be built here, if it cannot.
    pub fn unavailable() -> Option<String> {
        let euid = Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if euid.as_deref() != Some("0") {
            return Some("needs root with CAP_NET_ADMIN".into());
        }
        let probe = format!("rtprobe{}", std::process::id());
        if let Err(err) = ip(&["netns", "add", &probe]) {
            return Some(format!("cannot create a network namespace ({err})"));
        }
        let tc = run("ip", &["-n", &probe, "link", "set", "lo", "up"]);
        let _ = ip(&["netns", "del", &probe]);
        if let Err(err) = tc {
            return Some(format!("cannot configure a network namespace ({err})"));
        }
        if Command::new("tc").arg("-V").output().is_err() {
            return Some("`tc` (iproute2) is missing".into());
        }
        None
    }

    /// A lab with nothing but its hub, and the root namespace joined to it.
    pub fn new() -> Result<Lab, String> {
        let pid = std::process::id();
        let tag = format!("{}", pid % 100_000);
        let subnet = (pid % 200 + 20) as u8;
        let hub = format!("rt{tag}-hub");
        let mut lab = Lab { tag, subnet, hub: hub.clone(), hosts: Vec::new(), netem: false };
        ip(&["netns", "add", &hub])?;
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "br0", "up"])?;
        // The root namespace's port: its end stays here.
        let (outside, inside) = (lab.link_name("root", 'h'), lab.link_name("root", 'r'));
        ip(&["link", "add", &inside, "type", "veth", "peer", "name", &outside])?;
        ip(&["link", "set", &outside, "netns", &hub])?;
        ip(&["-n", &hub, "link", "set", &outside, "master", "br0", "up"])?;
        ip(&["addr", "add", &format!("{}/24", lab.address(254)), "dev", &inside])?;
        ip(&["link", "set", &inside, "up"])?;
        lab.netem = run("ip", &["netns", "exec", &hub, "tc", "qdisc", "add", "dev", "br0", "root", "netem", "delay", "1ms"]).is_ok();
        if lab.netem {
            run("ip", &["netns", "exec", &hub, "tc", "qdisc", "del", "dev", "br0", "root"])?;
        }
        Ok(lab)
    }

    /// `10.77.N.host`, an address of the lab's subnet.
    pub fn address(&self, host: u8) -> String {
        format!("10.77.{}.{host}", self.subnet)
    }

    /// A link's name: at most 15 bytes, unique to the lab and host.
    fn link_name(&self, host: &str, side: char) -> String {
        let name = format!("{side}{}{host}", self.tag);
        name.chars().take(15).collect()
    }

    fn namespace(&self, host: &str) -> String {
        format!("rt{}-{host}", self.tag)
    }

    /// Adds host `name` at address `.number`, joined to the bridge.
    pub fn add_host(&mut self, name: &str, number: u8) -> Result<(), String> {
        let ns = self.namespace(name);
        let (outside, inside) = (self.link_name(name, 'h'), self.link_name(name, 'p'));
        ip(&["netns", "add", &ns])?;
        self.hosts.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["link", "add", &inside, "type", "veth", "peer", "name", &outside])?;
        ip(&["link", "set", &inside, "netns", &ns])?;
        ip(&["link", "set", &outside, "netns", &self.hub])?;
        ip(&["-n", &ns, "link", "set", &inside, "name", "eth0"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.address(number)), "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &self.hub, "link", "set", &outside, "master", "br0", "up"])?;
        Ok(())
    }

    /// Starts `program args` inside host `name`'s namespace, its output to
    /// `log`. `ip netns exec` execs the program, so the child's pid is the
    /// program's, for signals.
    pub fn spawn(&self, name: &str, program: &Path, args: &[&str], log: &Path) -> Child {
        let out = std::fs::File::create(log).expect("a log file");
        Command::new("ip")
            .args(["netns", "exec", &self.namespace(name)])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a log file"))
            .stderr(out)
            .spawn()
            .expect("ip netns exec starts")
    }

    /// How `fault` is made on this kernel, for the record.
    pub fn describe(&self, fault: LinkFault) -> &'static str {
        match (fault, self.netem) {
            (LinkFault::Cut, _) => "ip link set <port> down",
            (LinkFault::Loss, true) => "tc netem loss 100%",
            (LinkFault::Loss, false) => "iptables -m statistic --probability 1 -j DROP (no netem in this kernel)",
            (LinkFault::Slow, true) => "tc netem delay 200ms",
            (LinkFault::Slow, false) => "tc tbf rate 256kbit (no netem in this kernel)",
        }
    }

    /// Injects `fault` on host `name`'s link.
    pub fn inject(&self, name: &str, fault: LinkFault) -> Result<(), String> {
        let ns = self.namespace(name);
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.as_str()];
            all.extend_from_slice(args);
            ip(&all)
        };
        match (fault, self.netem) {
            (LinkFault::Cut, _) => ip(&["-n", &self.hub, "link", "set", &self.link_name(name, 'h'), "down"]),
            (LinkFault::Loss, true) => in_ns(&["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "loss", "100%"]),
            (LinkFault::Loss, false) => {
                let drop = ["-m", "statistic", "--mode", "random", "--probability", "1", "-j", "DROP"];
                for chain in ["INPUT", "OUTPUT"] {
                    let mut args = vec!["iptables", "-A", chain];
                    args.extend_from_slice(&drop);
                    in_ns(&args)?;
                }
                Ok(())
            }
            (LinkFault::Slow, true) => in_ns(&["tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "200ms"]),
            (LinkFault::Slow, false) => {
                in_ns(&["tc", "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "256kbit", "burst", "16kbit", "latency", "5s"])
            }
        }
    }

    /// Removes `fault` from host `name`'s link.
    pub fn heal(&self, name: &str, fault: LinkFault) -> Result<(), String> {
        let ns = self.namespace(name);
        match (fault, self.netem) {
            (LinkFault::Cut, _) => ip(&["-n", &self.hub, "link", "set", &self.link_name(name, 'h'), "up"]),
            (LinkFault::Loss, false) => ip(&["netns", "exec", &ns, "iptables", "-F"]),
            (LinkFault::Loss, true) | (LinkFault::Slow, _) => ip(&["netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root"]),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its links and their peers.
        for ns in self.hosts.iter().chain(std::iter::once(&self.hub)) {
            if let Err(err) = ip(&["netns", "del", ns]) {
                eprintln!("netns lab: {err}");
            }
        }
    }
}

/// A coordinator and six workers over three zones, each process in a
/// namespace of its own in a [`Lab`]; clients run in the root namespace.
/// Beyond loopback the cluster's ports take mutual TLS: every process holds
/// a certificate of the cluster's CA (`ratchet certs`).
pub struct NetCluster {
    /// Dropped after the processes (fields drop in order).
    children: Vec<(String, Child)>,
    pub dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    /// The coordinator's address.
    pub addr: String,
    pub lab: Lab,
    /// Where each worker's data directory is made.
    data_root: std::path::PathBuf,
}

/// The workers' nodes: `n{i}` in zone `z{(i - 1) % 3 + 1}`.
pub const NODES: [&str; 6] = ["n1", "n2", "n3", "n4", "n5", "n6"];

impl NetCluster {
    /// Builds the lab and starts the processes; `coordinator_extra` are
    /// more arguments of the coordinator.
    pub fn start(bin: &Path, coordinator_extra: &[&str]) -> Result<NetCluster, String> {
        Self::start_on(bin, coordinator_extra, None)
    }

    /// [`NetCluster::start`], with the workers' data directories under
    /// `data_root` (else in the cluster's temporary directory).
    pub fn start_on(bin: &Path, coordinator_extra: &[&str], data_root: Option<&Path>) -> Result<NetCluster, String> {
        let mut lab = Lab::new()?;
        lab.add_host("c", 1)?;
        for (i, node) in NODES.iter().enumerate() {
            lab.add_host(node, 11 + i as u8)?;
        }
        let addr = format!("{}:7400", lab.address(1));
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let data_root = data_root.map_or_else(|| dir.path().to_path_buf(), Path::to_path_buf);
        let mut cluster = NetCluster { children: Vec::new(), dir, bin: bin.to_path_buf(), addr, lab, data_root };
        cluster.make_certs()?;
        let data = cluster.dir.path().join("coordinator");
        let tls = cluster.tls("coordinator");
        let mut args = vec!["--no-cache", "coordinator", "--data", data.to_str().unwrap(), "--listen", &cluster.addr];
        args.extend_from_slice(&["--admin", "127.0.0.1:0"]);
        args.extend(tls.iter().map(String::as_str));
        args.extend_from_slice(coordinator_extra);
        let coordinator = cluster.lab.spawn("c", bin, &args, &cluster.dir.path().join("coordinator.out"));
        cluster.children.push(("c".into(), coordinator));
        for node in NODES {
            let worker = cluster.worker(node);
            cluster.children.push((node.into(), worker));
        }
        Ok(cluster)
    }

    /// The cluster's CA and a certificate for the coordinator, each
    /// worker and the clients, in `DIR/certs`.
    fn make_certs(&self) -> Result<(), String> {
        let certs = self.dir.path().join("certs");
        let certs = certs.to_str().expect("a UTF-8 path");
        let mut runs = vec![vec!["certs", "init", certs], vec!["certs", "issue", "--role", "coordinator", certs]];
        runs.push(vec!["certs", "issue", "--role", "client", certs]);
        for node in NODES {
            runs.push(vec!["certs", "issue", "--role", "worker", "--node", node, certs]);
        }
        for args in runs {
            let out = Command::new(&self.bin).args(&args).output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!("ratchet {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
            }
        }
        Ok(())
    }

    /// The TLS arguments of the holder of `DIR/certs/STEM.pem`.
    pub fn tls(&self, stem: &str) -> Vec<String> {
        let certs = self.dir.path().join("certs");
        let file = |name: String| certs.join(name).display().to_string();
        vec![
            "--tls-ca".into(),
            file("ca.pem".into()),
            "--tls-cert".into(),
            file(format!("{stem}.pem")),
            "--tls-key".into(),
            file(format!("{stem}.key")),
        ]
    }

    fn worker(&self, node: &str) -> Child {
        let i: u8 = node[1..].parse().expect("a node n<i>");
        let zone = format!("z{}", (i - 1) % 3 + 1);
        let listen = format!("{}:7500", self.lab.address(10 + i));
        let data = self.data_root.join(node);
        let mut args = vec![
            "worker",
            "--coordinator",
            &self.addr,
            "--node",
            node,
            "--zone",
            &zone,
            "--listen",
            &listen,
            "--data",
            data.to_str().unwrap(),
        ];
        let tls = self.tls(&format!("worker-{node}"));
        args.extend(tls.iter().map(String::as_str));
        self.lab.spawn(node, &self.bin, &args, &self.dir.path().join(format!("{node}.out")))
    }

    fn child(&mut self, name: &str) -> &mut Child {
        &mut self.children.iter_mut().find(|(n, _)| n == name).expect("a process of the cluster").1
    }

    /// The process id of `name`'s process.
    pub fn pid(&mut self, name: &str) -> u32 {
        self.child(name).id()
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to the process of `name`.
    pub fn signal(&mut self, name: &str, signal: &str) {
        let pid = self.child(name).id().to_string();
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill runs");
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// Starts the worker of `node` again on its data directory, its old
    /// process killed first.
    pub fn restart(&mut self, node: &str) {
        let old = self.child(node);
        let _ = old.kill();
        let _ = old.wait();
        let fresh = self.worker(node);
        *self.child(node) = fresh;
    }

    /// `ratchet status`, if the coordinator answers.
    pub fn status(&self) -> Option<String> {
        let out = Command::new(&self.bin).args(["status", "--coordinator", &self.addr]).args(self.tls("client")).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until the coordinator serves an epoch above `after`; answers
    /// the epoch, the status, and when it was first seen.
    pub fn serving_after(&self, after: u64, within: std::time::Duration) -> Result<(u64, String, std::time::Instant), String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.status() {
                let epoch = field(&status, "epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
                if field(&status, "state").as_deref() == Some("serving") && epoch > after {
                    return Ok((epoch, status, std::time::Instant::now()));
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("no generation above epoch {after} in {within:?}; last status:\n{:?}", self.status()));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// `ratchet load` of `writes` writes in batches of `batch`, acknowledged
    /// ones recorded in `acks`.
    pub fn load(&self, writes: usize, batch: usize, acks: &Path) -> Child {
        let out = std::fs::File::create(acks.with_extension("out")).expect("a log file");
        Command::new(&self.bin)
            .args(["load", "--coordinator", &self.addr, "--writes", &writes.to_string(), "--batch", &batch.to_string()])
            .args(["--acks", acks.to_str().unwrap()])
            .args(self.tls("client"))
            .stdout(out.try_clone().expect("a log file"))
            .stderr(out)
            .spawn()
            .expect("ratchet load starts")
    }

    /// `ratchet verify` of `acks`: its report, or why it failed.
    pub fn verify(&self, acks: &Path) -> Result<String, String> {
        let out = Command::new(&self.bin)
            .args(["verify", "--coordinator", &self.addr, "--acks", acks.to_str().unwrap()])
            .args(self.tls("client"))
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() { Ok(text) } else { Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr))) }
    }
}

impl Drop for NetCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            // SIGKILL ends a stopped process too.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of `name` in a status text.
pub fn field(status: &str, name: &str) -> Option<String> {
    status.lines().find_map(|l| l.strip_prefix(name)).map(|rest| rest.trim().to_string())
}

/// A node that hosts storage replicas and nothing else, as a status shows
/// them, if there is one.
pub fn node_of_storage_alone(status: &str) -> Option<String> {
    status.lines().filter_map(|l| l.strip_prefix("hosted ")).find_map(|rest| {
        let (node, services) = rest.split_once(' ')?;
        let services: Vec<&str> = services.split_whitespace().collect();
        (!services.is_empty() && services.iter().all(|s| s.starts_with("storage-"))).then(|| node.to_string())
    })
}

/// The node of the first log of the generation a status shows: service
/// ids are `<kind>-<node>-e<epoch>-<n>`.
pub fn node_of_a_log(status: &str) -> Option<String> {
    field(status, "log")?.split('-').nth(1).map(str::to_string)
}
