//! A slow disk for real processes: an ext4 filesystem on a loop device,
//! whose writes a cgroup (v1 `blkio`) throttles to a few a second for the
//! processes moved into it. Every `fsync` of such a process then waits in
//! the kernel, as on a failing disk, while the process itself runs and
//! answers on the network.
//!
//! Everything is removed when it is dropped (after the processes using
//! it). Needs root, `losetup`, `mkfs.ext4` and the `blkio` controller;
//! [`SlowDisk::unavailable`] says what is missing.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the cgroup v1 `blkio` controller is mounted.
const BLKIO: &str = "/sys/fs/cgroup/blkio";

/// A filesystem whose writes can be slowed for chosen processes.
pub struct SlowDisk {
    image: PathBuf,
    device: String,
    mount: PathBuf,
    cgroup: PathBuf,
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl SlowDisk {
    /// Why a slow disk cannot be made here, if it cannot.
    pub fn unavailable() -> Option<String> {
        let euid = run("id", &["-u"]).ok();
        if euid.as_deref() != Some("0") {
            return Some("needs root".into());
        }
        if !Path::new(BLKIO).join("blkio.throttle.write_iops_device").exists() {
            return Some(format!("needs the cgroup v1 blkio controller at {BLKIO}"));
        }
        for tool in ["losetup", "mkfs.ext4", "mount"] {
            if Command::new(tool).arg("--help").output().is_err() {
                return Some(format!("`{tool}` is missing"));
            }
        }
        if !Path::new("/dev/loop-control").exists() {
            return Some("no loop devices (/dev/loop-control)".into());
        }
        None
    }

    /// A fresh 1 GiB filesystem backed by the sparse file `image`, mounted
    /// at `mount`, whose writes are throttled to `writes_per_second` for the
    /// processes [`SlowDisk::slow`] moves into its cgroup. A filesystem
    /// shares its journal between the processes writing to it, so each
    /// machine of a test needs its own.
    pub fn new(image: &Path, mount: &Path, writes_per_second: u32) -> Result<SlowDisk, String> {
        std::fs::File::create(image).and_then(|f| f.set_len(1 << 30)).map_err(|e| format!("{}: {e}", image.display()))?;
        let device = run("losetup", &["--find", "--show", image.to_str().expect("a UTF-8 path")])?;
        let (image, mount) = (image.to_path_buf(), mount.to_path_buf());
        let name = device.trim_start_matches("/dev/");
        let cgroup = Path::new(BLKIO).join(format!("ratchet-slow-{}-{name}", std::process::id()));
        // From here on, dropping it undoes what was done.
        let disk = SlowDisk { image, device, mount, cgroup };
        run("mkfs.ext4", &["-q", &disk.device])?;
        std::fs::create_dir_all(&disk.mount).map_err(|e| e.to_string())?;
        run("mount", &[&disk.device, disk.mount.to_str().expect("a UTF-8 path")])?;
        let numbers = run("lsblk", &["--nodeps", "--noheadings", "--output", "MAJ:MIN", &disk.device])?;
        std::fs::create_dir_all(&disk.cgroup).map_err(|e| format!("{}: {e}", disk.cgroup.display()))?;
        let limit = format!("{} {writes_per_second}", numbers.trim());
        std::fs::write(disk.cgroup.join("blkio.throttle.write_iops_device"), &limit).map_err(|e| format!("blkio limit {limit}: {e}"))?;
        Ok(disk)
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Slows the writes of process `pid` (every thread of it).
    pub fn slow(&self, pid: u32) -> Result<(), String> {
        std::fs::write(self.cgroup.join("cgroup.procs"), pid.to_string()).map_err(|e| format!("slowing {pid}: {e}"))
    }

    /// Lets process `pid` write at the disk's speed again.
    pub fn heal(&self, pid: u32) -> Result<(), String> {
        std::fs::write(Path::new(BLKIO).join("cgroup.procs"), pid.to_string()).map_err(|e| format!("healing {pid}: {e}"))
    }
}

/// A slow disk for each of `nodes`, mounted at `dir/<node>` and backed by
/// `dir/<node>.img`; or why there can be none here. Panics if one that can
/// be made is not.
pub fn per_node<'n>(dir: &Path, nodes: &[&'n str], writes_per_second: u32) -> Result<BTreeMap<&'n str, SlowDisk>, String> {
    if let Some(why) = SlowDisk::unavailable() {
        return Err(why);
    }
    let disk = |node: &&'n str| {
        let (image, mount) = (dir.join(format!("{node}.img")), dir.join(node));
        let disk = SlowDisk::new(&image, &mount, writes_per_second).unwrap_or_else(|err| panic!("the slow disk of {node}: {err}"));
        (*node, disk)
    };
    Ok(nodes.iter().map(disk).collect())
}

impl Drop for SlowDisk {
    fn drop(&mut self) {
        // A process still in the cgroup is dead by now (the cluster drops
        // first); the cgroup goes once it is empty.
        let steps = [
            std::fs::remove_dir(&self.cgroup).map_err(|e| format!("{}: {e}", self.cgroup.display())),
            run("umount", &[self.mount.to_str().unwrap_or_default()]).map(drop),
            run("losetup", &["--detach", &self.device]).map(drop),
            std::fs::remove_file(&self.image).map_err(|e| format!("{}: {e}", self.image.display())),
        ];
        for failed in steps.into_iter().filter_map(Result::err) {
            eprintln!("removing the slow disk: {failed}");
        }
    }
}
