//! End-to-end tests of the `ratchet` binary: what a user sees when checking
//! and listing plugins, bad files included.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ratchet::components::{self, fixtures};

fn ratchet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ratchet")).args(["--no-cache"]).args(args).output().expect("the ratchet binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `plugin check` on `bytes` written to a file, expecting exit 2 and a
/// one-line reason containing `expected`.
fn check_fails(bytes: &[u8], extra: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plugin.wasm");
    std::fs::write(&file, bytes).unwrap();
    let mut args = vec!["plugin", "check", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = ratchet(&args);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: ") && err.contains(expected), "expected `{expected}` in: {err}");
    assert!(stdout(&out).is_empty());
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn check_reports_world_digest_imports_and_exports() {
    let out = ratchet(&["plugin", "check", fixtures::ADVERSARIAL]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("satisfies the world `recovery-phase`"), "{text}");
    let digest = sha256_hex(&fixture(fixtures::ADVERSARIAL));
    assert!(text.contains(&format!("sha256   {digest}")), "{text}");
    assert!(text.contains("exports  ratchet:recovery/phase@0.1.0"), "{text}");
    assert!(text.contains("ratchet:recovery/clock@0.1.0"), "the sleep import is listed: {text}");
}

#[test]
fn check_detects_a_placement_policy_and_honours_slot() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "policy.wasm", components::default_for("placement").unwrap().bytes);
    let out = ratchet(&["plugin", "check", file.to_str().unwrap(), "--slot", "placement"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("satisfies the world `placement-policy`"));
    check_fails(
        components::default_for("placement").unwrap().bytes,
        &["--slot", "lock-services"],
        "does not satisfy the world `recovery-phase`: missing export `ratchet:recovery/phase@0.1.0`",
    );
}

#[test]
fn check_refuses_every_kind_of_bad_file() {
    let good = fixture(fixtures::ADVERSARIAL);
    check_fails(b"", &[], "empty file");
    check_fails(b"this is not wasm at all", &[], "not a WebAssembly file");
    check_fails(&good[..good.len() / 2], &[], "truncated");
    check_fails(b"\0asm\x01\0\0\0", &[], "a core WebAssembly module, not a component");
    check_fails(&fixture(fixtures::WRONG_WORLD), &[], "missing export");
    check_fails(&fixture(fixtures::WRONG_WORLD), &["--slot", "placement"], "missing export `ratchet:recovery/placement@0.1.0`");
    check_fails(&good, &["--slot", "replay"], "unknown slot `replay`");
}

#[test]
fn check_names_a_missing_file() {
    let out = ratchet(&["plugin", "check", "/nonexistent/plugin.wasm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/plugin.wasm: cannot read"), "{}", stderr(&out));
}

#[test]
fn list_shows_the_embedded_defaults() {
    let out = ratchet(&["plugin", "list"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for component in components::DEFAULTS {
        let line = text.lines().find(|l| l.starts_with(component.slot)).expect(component.slot);
        assert!(line.contains(&sha256_hex(component.bytes)), "{line}");
        assert!(line.contains(&component.bytes.len().to_string()), "{line}");
    }
    // The alternatives shipped in the binary, with how to use them.
    assert!(!components::BUNDLED.is_empty());
    for component in components::BUNDLED {
        let usage = format!("--plugin {}=builtin:{}", component.slot, component.name);
        let line = text.lines().find(|l| l.ends_with(&usage)).unwrap_or_else(|| panic!("{usage} in:\n{text}"));
        assert!(line.contains(&sha256_hex(component.bytes)), "{line}");
    }
}

#[test]
fn every_command_has_help_and_bad_flags_exit_2() {
    for args in [
        &["--help"][..],
        &["plugin", "--help"],
        &["plugin", "check", "--help"],
        &["plugin", "list", "--help"],
        &["demo", "--help"],
        &["coordinator", "--help"],
        &["worker", "--help"],
        &["load", "--help"],
        &["verify", "--help"],
        &["status", "--help"],
        &["plugin", "swap", "--help"],
        &["plugin", "rollback", "--help"],
        &["plugin", "history", "--help"],
        &["plugin", "shadow", "--help"],
        &["plugin", "promote", "--help"],
        &["plugin", "discard", "--help"],
    ] {
        let out = ratchet(args);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage:"), "{args:?}");
    }
    let out = ratchet(&["plugin", "list", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn sha256_hex(bytes: &[u8]) -> String {
    ratchet::runtime::Digest256::of(bytes).hex()
}

#[test]
fn the_demo_recovers_without_losing_a_write() {
    let out = ratchet(&["demo", "--writes", "400"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().last(), Some("demo ok: epochs=2 committed=400 lost=0"), "{text}");
    for phase in ratchet::registry::PHASES {
        assert!(text.contains(phase), "the timeline shows {phase}");
    }
    assert!(text.contains("OLD LAYOUT") && text.contains("NEW LAYOUT"));
}

#[test]
fn the_demo_runs_a_swapped_phase_and_refuses_a_bad_one() {
    let out = ratchet(&["demo", "--writes", "100", "--plugin", &format!("lock-services={}", fixtures::GREEDY_LOCK)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("plugin: lock-services <- "), "{text}");
    assert!(text.lines().last().unwrap().starts_with("demo ok:"));

    let out = ratchet(&["demo", "--plugin", &format!("placement={}", fixtures::ADVERSARIAL)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not satisfy the world `placement-policy`"), "{}", stderr(&out));
    let out = ratchet(&["demo", "--plugin", "no-equals-sign"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("expected SLOT=FILE"));
}

/// The per-team lines of a placement-quality table after `heading`.
fn quality_after<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let start = text.find(heading).unwrap_or_else(|| panic!("no `{heading}` in:\n{text}"));
    text[start..].lines().skip(1).take_while(|l| l.starts_with("  ")).collect()
}

#[test]
fn the_demo_reports_placement_quality_and_a_policy_changes_it() {
    let out = ratchet(&["demo", "--writes", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spread = stdout(&out);
    let table = quality_after(&spread, "recovery: placement quality of epoch 2");
    assert!(table.iter().any(|l| l.contains("ZONES/BEST")), "{table:?}");
    assert!(table.iter().any(|l| l.trim() == "teams held whole by one zone: none"), "{table:?}");
    let up = 9 - spread.lines().filter(|l| l.starts_with("crashed node")).count();
    assert!(table.iter().any(|l| l.contains(&format!("nodes used: {up}"))), "spread-zones uses every node still up: {table:?}");
    assert!(spread.contains("@n"), "the layouts show each service's node");

    let out = ratchet(&["demo", "--writes", "100", "--plugin", "placement=builtin:pack"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let packed = stdout(&out);
    let table = quality_after(&packed, "recovery: placement quality of epoch 2");
    assert!(table.iter().any(|l| l.contains("nodes used: 3")), "pack fills three nodes, one per zone: {table:?}");
    assert!(packed.lines().last().unwrap().starts_with("demo ok:"));

    let out = ratchet(&["demo", "--plugin", "placement=builtin:no-such-policy"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("placement=builtin:least-loaded"), "the error lists the built-ins: {}", stderr(&out));
}

#[test]
fn the_custom_placement_example_checks_and_runs_in_the_demo() {
    let out = ratchet(&["plugin", "check", fixtures::CUSTOM_PLACEMENT, "--slot", "placement"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let spec = format!("placement={}", fixtures::CUSTOM_PLACEMENT);
    let out = ratchet(&["demo", "--writes", "100", "--plugin", &spec]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("plugin: placement <- "), "{text}");
    assert_eq!(text.lines().last(), Some("demo ok: epochs=2 committed=100 lost=0"), "{text}");
}

#[test]
fn cluster_commands_name_what_is_wrong() {
    // No coordinator listening: one line naming the address.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let out = ratchet(&["status", "--coordinator", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("cannot connect to {port}")), "{}", stderr(&out));
    // A missing acks file is bad input.
    let out = ratchet(&["verify", "--coordinator", &port, "--acks", "/nonexistent/acks"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--acks /nonexistent/acks"), "{}", stderr(&out));
    // An address that cannot be bound.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = ratchet(&["worker", "--coordinator", &port, "--node", "n1", "--zone", "z1", "--data", data, "--listen", "256.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--listen 256.0.0.1:1"), "{}", stderr(&out));
}

#[test]
fn replica_plan_shows_the_policys_decision_and_the_hosts_verdict() {
    let out = ratchet(&["replica", "plan", "--durable", "9", "--oldest", "10", "--committed", "50", "--checkpoint", "20"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("outcome  rebuild: snapshot at 20, then the tail"), "{text}");
    assert!(text.contains("figures  durable 9, oldest retained 10 (exclusive), head 50, committed 50, checkpoint 20"), "{text}");
    assert!(text.contains("host     accepts the plan"), "{text}");

    let out = ratchet(&["replica", "plan", "--durable", "10", "--oldest", "10", "--committed", "50"]);
    assert!(stdout(&out).contains("outcome  catch-up: replay (10, 50]"), "{}", stdout(&out));

    // A policy that always answers zero-gap: the host refuses its plan.
    let out = ratchet(&["replica", "plan", "--durable", "3", "--oldest", "10", "--committed", "50", "--plugin", fixtures::ALWAYS_ZERO_GAP]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("host     refuses the plan: zero-gap, but durable 3 is not committed 50"), "{}", stdout(&out));

    // A placement policy is not a replica policy.
    let out = ratchet(&["replica", "plan", "--durable", "3", "--oldest", "10", "--committed", "50", "--plugin", fixtures::SAME_NODE]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("does not satisfy the world `replica-recovery`"), "{}", stderr(&out));
}

#[test]
fn a_coordinator_on_an_unreachable_or_malformed_etcd_store_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("c");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = format!("etcd://127.0.0.1:{port}");
    let args = ["coordinator", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--store", &store];
    let out = ratchet(&args);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("127.0.0.1:{port}")) && err.contains("no member answered"), "{err}");

    let args = ["coordinator", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--store", "etcd://nohost"];
    let out = ratchet(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--store") && stderr(&out).contains("HOST:PORT"), "{}", stderr(&out));
}

#[test]
fn a_second_process_on_a_data_directory_exits_2_naming_the_directory_and_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("c");
    let data = data.to_str().unwrap();
    let log = dir.path().join("first.log");
    let mut first = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .args(["--no-cache", "coordinator", "--data", data, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("admin endpoint on") {
        assert!(std::time::Instant::now() < deadline, "the first coordinator did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let holder = format!("pid {}", first.id());
    let second = ratchet(&["coordinator", "--data", data, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    let worker =
        ratchet(&["worker", "--coordinator", "127.0.0.1:1", "--node", "n1", "--zone", "z1", "--data", data, "--listen", "127.0.0.1:0"]);
    first.kill().unwrap();
    first.wait().unwrap();
    for out in [second, worker] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(data) && err.contains("in use") && err.contains(&holder), "{err}");
    }
    // The kernel released the lock with the process: the directory is free.
    let out =
        ratchet(&["worker", "--coordinator", "127.0.0.1:1", "--node", "n1", "--zone", "z1", "--data", data, "--listen", "256.0.0.1:1"]);
    assert!(stderr(&out).contains("--listen 256.0.0.1:1"), "{}", stderr(&out));
}

#[test]
fn certs_make_a_cluster_ca_and_role_certificates_and_refuse_what_they_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    let ca = ca.to_str().unwrap();
    let out = ratchet(&["certs", "init", ca]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ca.key (mode 600)"), "{}", stdout(&out));
    let out = ratchet(&["certs", "issue", "--role", "worker", "--node", "n1", ca]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("--tls-cert") && stdout(&out).contains("worker-n1.pem"), "{}", stdout(&out));
    for (args, expected) in [
        (vec!["certs", "init", ca], "exists already"),
        (vec!["certs", "issue", "--role", "worker", ca], "give --node"),
        (vec!["certs", "issue", "--role", "worker", "--node", "a.b", ca], "one DNS label"),
        (vec!["certs", "issue", "--role", "client", "--node", "n1", ca], "--node is for a worker"),
        (vec!["certs", "issue", "--role", "etcd", ca], "give --host"),
        (vec!["certs", "issue", "--role", "worker", "--node", "n1", ca], "exists already"),
    ] {
        let out = ratchet(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{args:?}: {}", stderr(&out));
    }
    // Beyond loopback, the cluster's ports take TLS; half the TLS flags is
    // bad input, and so is a file that holds no certificate.
    let data = dir.path().join("w");
    let worker = |extra: &[&str]| {
        let mut args = vec!["worker", "--coordinator", "127.0.0.1:1", "--node", "n1", "--zone", "z1", "--data", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        ratchet(&args)
    };
    let out = worker(&["--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--listen 0.0.0.0:0 is not a loopback address"), "{}", stderr(&out));
    let ca_pem = format!("{ca}/ca.pem");
    let out = worker(&["--tls-ca", &ca_pem]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let key = format!("{ca}/worker-n1.key");
    let out = worker(&["--tls-ca", &ca_pem, "--tls-cert", &key, "--tls-key", &key]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("worker-n1.key") && stderr(&out).contains("no certificate"), "{}", stderr(&out));
}

#[test]
fn a_demo_whose_recovery_does_not_complete_says_its_writes_are_unreadable_not_lost() {
    // A determine-path that always initializes: the new cluster boots, and
    // every recovery after the crash is refused (I5), so none completes.
    let out = ratchet(&["demo", "--writes", "50", "--plugin", &format!("determine-path={}", fixtures::ALWAYS_INITIALIZE)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("verified none of 50 acknowledged writes: unreadable: recovery did not complete"), "{text}");
    assert!(
        text.lines().last().is_some_and(|l| l.starts_with("demo FAILED:") && l.ends_with("unreadable=50 (recovery did not complete)")),
        "{text}"
    );
    assert!(!text.contains("lost="), "{text}");
}
