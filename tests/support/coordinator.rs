//! Waiting for a `ratchet coordinator` child to come up, shared by the
//! end-to-end tests that start one.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// The line a coordinator prints once it has bound both its ports.
const ADMIN_LINE: &str = "admin endpoint on http://";

/// Waits until the coordinator `child`, whose output goes to `log`, has
/// bound its ports, and answers its admin endpoint as `HOST:PORT` (so a test
/// can pass `--admin 127.0.0.1:0`). If it exits first, answers its exit
/// status and output instead.
pub fn admin_when_bound(child: &mut Child, log: &Path, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let output = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(admin) = output.lines().find_map(|l| l.strip_prefix(ADMIN_LINE)) {
            return Ok(admin.trim().to_string());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Read again: it may have written its last lines as it exited.
            let output = std::fs::read_to_string(log).unwrap_or(output);
            return Err(format!("{status}\n{output}"));
        }
        assert!(Instant::now() < deadline, "the coordinator did not bind its ports in time:\n{output}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
