//! The coordinator's admin endpoint, end to end through the `ratchet`
//! binary: who may use it, swaps validated by a dry run (bad candidates
//! refused while the active version keeps serving), rollback, history and
//! the audit trail across a restart, and the metrics.

#[path = "support/chromium.rs"]
mod chromium;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ratchet::components::{self, fixtures};

#[path = "support/coordinator.rs"]
mod coordinator_support;

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ratchet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ratchet")).args(args).output().expect("the ratchet binary runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A coordinator with no workers; answers it and its admin endpoint. Both
/// its ports are `127.0.0.1:0`: a port picked free beforehand can be taken
/// by another process before the coordinator binds it, and a probe of it
/// could then reach that process instead.
fn coordinator(data: &Path, extra: &[&str]) -> (Proc, String) {
    let log_path = data.with_extension("out");
    let mut args = vec!["--no-cache", "coordinator", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ratchet"))
        .args(&args)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut proc = Proc(child);
    match coordinator_support::admin_when_bound(&mut proc.0, &log_path, Duration::from_secs(60)) {
        Ok(admin) => (proc, admin),
        Err(output) => panic!("the coordinator exited: {output}"),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn active_version(admin: &str, slot: &str) -> String {
    let out = ratchet(&["plugin", "list", "--admin", admin]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    let line = listing.lines().find(|l| l.split_whitespace().next() == Some(slot)).unwrap_or_else(|| panic!("{listing}"));
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn admin_beyond_loopback_needs_a_token_and_a_wrong_token_gets_401() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coordinator");
    let out = ratchet(&["--no-cache", "coordinator", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--admin 0.0.0.0:0 is not a loopback address"), "{}", text(&out));

    let token = write(dir.path(), "token", b"s3cret\n");
    let wrong = write(dir.path(), "wrong", b"guess\n");
    let (_coordinator, admin) = coordinator(&data, &["--admin-token", token.to_str().unwrap()]);
    for args in
        [vec!["plugin", "list", "--admin", &admin], vec!["plugin", "list", "--admin", &admin, "--token-file", wrong.to_str().unwrap()]]
    {
        let out = ratchet(&args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("auth (401): missing or wrong bearer token"), "{}", text(&out));
    }
    let out = ratchet(&["plugin", "list", "--admin", &admin, "--token-file", token.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("placement"), "{}", text(&out));
    let out = ratchet(&["status", "--admin", &admin, "--token-file", token.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("epoch      -\nstate      "), "no generation yet: {}", text(&out));
    let out = ratchet(&["status", "--admin", &admin]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // The dashboard page holds nothing secret and is served without the
    // token, framed by no one; rendered, it asks for the token, since every
    // route it reads needs it.
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
    let (status, body) = raw(&admin, get("/status").as_bytes());
    assert!(status.contains(" 401 "), "{status} {body}");
    let (status, page) = raw_with_headers(&admin, get("/").as_bytes());
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        page.contains("content-type: text/html") && page.contains("frame-ancestors 'none'") && page.contains("<title>ratchet</title>"),
        "{page}"
    );
    let profile = dir.path().join("chromium");
    let dom = chromium::rendered(&profile, &format!("http://{admin}/"), 3000);
    assert_eq!(chromium::attribute(&dom, "data-state"), Some("token"), "{dom}");
}

#[test]
fn bad_candidates_are_refused_and_the_active_version_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coordinator");
    let (_coordinator, admin) = coordinator(&data, &[]);
    assert_eq!(active_version(&admin, "placement"), "v1");

    // Wrong world, a policy that breaks an invariant, a phase that traps.
    let cases = [
        ("placement", fixtures::WRONG_WORLD, "validate (422): "),
        ("placement", fixtures::SAME_NODE, "dry-run (422): "),
        ("start-proxies", fixtures::FLAKY_PROXIES, "dry-run (422): "),
    ];
    for (slot, file, expected) in cases {
        let out = ratchet(&["plugin", "swap", slot, file, "--admin", &admin]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(expected), "{slot} {file}: {}", text(&out));
        assert_eq!(active_version(&admin, slot), "v1", "{slot} still serves its first version");
    }
    let out = ratchet(&["plugin", "swap", "start-proxies", fixtures::FLAKY_PROXIES, "--admin", &admin]);
    assert!(text(&out).contains("trapped"), "the reason names the trap: {}", text(&out));

    // The history names each refusal and why.
    let out = ratchet(&["plugin", "history", "placement", "--admin", &admin]);
    let history = text(&out);
    assert_eq!(history.lines().filter(|l| l.contains(" refuse ")).count(), 2, "{history}");
    assert!(history.contains("the invariant guard refused"), "{history}");
    assert!(history.contains("missing export"), "{history}");

    // An unknown slot is named.
    let out = ratchet(&["plugin", "swap", "no-such-slot", fixtures::SAME_NODE, "--admin", &admin]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unknown slot `no-such-slot`"), "{}", text(&out));
}

#[test]
fn a_swap_serves_then_rolls_back_and_the_audit_trail_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coordinator");
    let pack = write(dir.path(), "pack.wasm", components::bundled("pack").unwrap().bytes);
    let (mut coordinator_proc, mut admin) = coordinator(&data, &[]);

    let out = ratchet(&["plugin", "swap", "placement", pack.to_str().unwrap(), "--admin", &admin]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("swapped: placement v2"), "{}", text(&out));
    assert!(text(&out).contains("dry run passed"), "{}", text(&out));
    assert_eq!(active_version(&admin, "placement"), "v2");

    let out = ratchet(&["plugin", "rollback", "placement", "--admin", &admin]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("rolled back: placement v1"), "{}", text(&out));
    assert_eq!(active_version(&admin, "placement"), "v1");
    let out = ratchet(&["plugin", "rollback", "placement", "--to", "7", "--admin", &admin]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("rollback (409): slot `placement` has no version 7"), "{}", text(&out));

    let metrics = ureq::get(format!("http://{admin}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(metrics.contains(r#"ratchet_plugin_swaps_total{result="activated",slot="placement"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"ratchet_plugin_rollbacks_total{slot="placement",trigger="admin"} 1"#), "{metrics}");

    // Restarted, the coordinator still has the trail (and starts from its
    // embedded defaults, which it records as loaded).
    drop(coordinator_proc);
    (coordinator_proc, admin) = coordinator(&data, &[]);
    let out = ratchet(&["plugin", "history", "placement", "--admin", &admin]);
    let history = text(&out);
    let actions: Vec<&str> =
        history.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|a| ["load", "swap", "rollback"].contains(a)).collect();
    assert_eq!(actions, ["load", "swap", "rollback", "rollback", "load"], "{history}");
    drop(coordinator_proc);
}

#[test]
fn a_watched_plugin_directory_swaps_good_files_in_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coordinator");
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let out = ratchet(&[
        "--no-cache",
        "coordinator",
        "--data",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--plugin-dir",
        "/nonexistent/plugins",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--plugin-dir /nonexistent/plugins: not a directory"), "{}", text(&out));

    let (_coordinator, admin) = coordinator(&data, &["--plugin-dir", plugins.to_str().unwrap()]);
    // Written elsewhere and renamed in, as a deployment tool would.
    let put = |name: &str, bytes: &[u8]| {
        let staging = dir.path().join(name);
        std::fs::write(&staging, bytes).unwrap();
        std::fs::rename(&staging, plugins.join(name)).unwrap();
    };
    put("placement.wasm", components::bundled("pack").unwrap().bytes);
    put("start-proxies.wasm", &std::fs::read(fixtures::ALWAYS_TRAP).unwrap());
    put("no-such-slot.wasm", components::bundled("pack").unwrap().bytes);

    let deadline = Instant::now() + Duration::from_secs(60);
    while active_version(&admin, "placement") != "v2" {
        assert!(Instant::now() < deadline, "placement.wasm was not swapped in");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = ratchet(&["plugin", "list", "--admin", &admin]);
    assert!(text(&out).contains(&plugins.join("placement.wasm").display().to_string()), "{}", text(&out));

    // The trapping phase is refused by its dry run, the unknown slot by
    // validation; both are in the audit trail, and nothing else changed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = ureq::get(format!("http://{admin}/audit")).call().unwrap().body_mut().read_to_string().unwrap();
        let audit: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let refusals: Vec<&serde_json::Value> = audit.iter().filter(|e| e["action"] == "refuse" && e["trigger"] == "plugin-dir").collect();
        if refusals.len() == 2 {
            let refused = |slot: &str, stage: &str| {
                refusals.iter().any(|e| e["slot"] == slot && e["result"].as_str().is_some_and(|r| r.starts_with(stage)))
            };
            assert!(refused("start-proxies", "dry-run"), "{body}");
            assert!(refused("no-such-slot", "validate"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the bad files were not refused: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(active_version(&admin, "start-proxies"), "v1");
}

#[test]
fn a_shadow_is_started_shown_and_discarded_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coordinator");
    let pack = write(dir.path(), "pack.wasm", components::bundled("pack").unwrap().bytes);
    let (_coordinator, admin) = coordinator(&data, &[]);

    let out = ratchet(&["plugin", "swap", "placement", pack.to_str().unwrap(), "--shadow", "--admin", &admin]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("shadowing: placement v2"), "{}", text(&out));
    assert_eq!(active_version(&admin, "placement"), "v1", "a shadow does not serve");
    let out = ratchet(&["plugin", "shadow", "placement", "--admin", &admin]);
    assert!(text(&out).contains("shadow: placement v2"), "{}", text(&out));
    // The director may already be retrying its first attempt on this empty
    // cluster, so the shadow can have seen calls; with no service to place,
    // both policies decide alike.
    let shown = text(&out);
    let counts = shown.lines().find(|l| l.starts_with("calls ")).unwrap_or_else(|| panic!("no call counts: {shown}"));
    assert!(counts.ends_with(", decided differently 0"), "{shown}");
    let out = ratchet(&["plugin", "discard", "placement", "--admin", &admin]);
    assert!(text(&out).contains("placement v2 (sha256"), "{}", text(&out));
    assert!(text(&out).contains("discarded: never served"), "{}", text(&out));
    let out = ratchet(&["plugin", "promote", "placement", "--admin", &admin]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("shadow (409): slot `placement` has no shadow running"), "{}", text(&out));
    assert_eq!(active_version(&admin, "placement"), "v1");
}

/// Sends `request` raw to `admin` and answers the status line and body.
fn raw(admin: &str, request: &[u8]) -> (String, String) {
    let (status, answer) = raw_with_headers(admin, request);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

/// The status line, and the rest of the answer: headers (lower-cased
/// names) and body.
fn raw_with_headers(admin: &str, request: &[u8]) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    // The answer is read until the server closes or the timeout; either way
    // what came is what is checked.
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (status, rest) = answer.split_once("\r\n").unwrap_or((&answer, ""));
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (status.to_string(), format!("{}\r\n\r\n{body}", headers.to_ascii_lowercase()))
}

#[test]
fn what_a_web_page_could_send_is_refused_and_uploads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coordinator");
    let (_coordinator, admin) = coordinator(&data, &["--max-plugin-bytes", "1000"]);
    let before = active_version(&admin, "placement");
    let post = |extra: &str, body: &str| {
        format!(
            "POST /plugins/placement/rollback HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // A cross-site form or fetch without preflight: a simple content type.
    let (status, body) = raw(&admin, post("Content-Type: text/plain\r\n", "x").as_bytes());
    assert!(status.contains("415"), "{status} {body}");
    assert!(body.contains("application/wasm or application/json"), "{body}");
    // The right type, but no header a page could only send after a preflight.
    let (status, body) = raw(&admin, post("Content-Type: application/json\r\n", "{}").as_bytes());
    assert!(status.contains("403"), "{status} {body}");
    assert!(body.contains("x-ratchet-admin"), "{body}");
    // A name rebound to 127.0.0.1: its Host is not this endpoint.
    let rebound = "GET /status HTTP/1.1\r\nHost: rebound.example:7401\r\nConnection: close\r\n\r\n";
    let (status, body) = raw(&admin, rebound.as_bytes());
    assert!(status.contains("421"), "{status} {body}");
    assert!(body.contains("does not name this endpoint"), "{body}");
    assert_eq!(active_version(&admin, "placement"), before, "nothing changed");

    // An upload over --max-plugin-bytes, through the command line.
    let big = write(dir.path(), "big.wasm", &vec![0u8; 5000]);
    let out = ratchet(&["plugin", "swap", "placement", big.to_str().unwrap(), "--admin", &admin]);
    assert!(!out.status.success());
    assert!(text(&out).contains("exceeds 1000 bytes (--max-plugin-bytes)"), "{}", text(&out));
    // The command line's own changes pass the gate.
    let good = ratchet::components::bundled("pack").unwrap().bytes;
    let (_big_coordinator, big_admin) = coordinator(&dir.path().join("second"), &[]);
    let pack = write(dir.path(), "pack.wasm", good);
    let out = ratchet(&["plugin", "swap", "placement", pack.to_str().unwrap(), "--admin", &big_admin]);
    assert!(out.status.success(), "{}", text(&out));

    // Connections beyond the limit are told so and closed.
    let held: Vec<std::net::TcpStream> = (0..64).map(|_| std::net::TcpStream::connect(&admin).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = raw(&admin, b"GET /status HTTP/1.1\r\n\r\n");
    assert!(status.contains("503") && body.contains("too many connections"), "{status} {body}");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    // Headers that never end are cut off; the endpoint serves on.
    let started = Instant::now();
    let (status, _) = raw(&admin, b"GET /status HTTP/1.1\r\nHost: x");
    assert!(started.elapsed() < Duration::from_secs(19), "closed after {:?}: {status}", started.elapsed());
    assert!(ratchet(&["plugin", "list", "--admin", &admin]).status.success());
}
