//! End-to-end tests of `ratchet experiment`: the summary, JSON and an HTML
//! report that really renders in headless Chromium, failing seeds with the
//! command that replays them, a side-by-side comparison, and bad input.

use std::path::Path;
use std::process::{Command, Output};

use ratchet::components::fixtures;

fn ratchet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ratchet")).arg("--no-cache").args(args).output().expect("the ratchet binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Headless Chromium with a throwaway profile. `.ci/run` installs Debian's
/// `chromium`; without it this test cannot check rendering, so it fails.
fn chromium(profile: &Path, args: &[&str]) -> Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs (Debian package `chromium`, installed by .ci/run)")
}

#[test]
fn an_experiment_summarizes_and_its_html_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("report.json"), dir.path().join("report.html"));
    let out = ratchet(&[
        "experiment",
        "--seeds",
        "0..6",
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("PLUGINS") && text.contains("P99 MS") && text.contains("SPREAD"), "{text}");
    assert!(text.contains("recoveries per minute") && text.contains("x real time"), "{text}");
    assert!(text.trim_end().ends_with("experiment ok: 6 runs, 0 violations"), "{text}");

    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["faults"], "default");
    assert_eq!(report["sets"][0]["summary"]["runs"], 6);
    assert_eq!(report["sets"][0]["runs"].as_array().unwrap().len(), 6);
    assert!(report["timeline"]["recoveries"][0]["timeline"].as_array().is_some_and(|t| !t.is_empty()));

    // The page's own script measures the drawn charts once laid out.
    let page = format!("file://{}", html.display());
    let profile = dir.path().join("chromium");
    let dom = chromium(&profile, &["--virtual-time-budget=5000", "--dump-dom", &page]);
    let dom_text = stdout(&dom);
    let charts = dom_text
        .split("data-charts=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the page's chart check did not run: {}", stderr(&dom)));
    assert!(charts.starts_with("ok charts=2 "), "{charts}");
    let marks: usize = charts.rsplit('=').next().unwrap().parse().unwrap();
    assert!(marks > 10, "bars and phase spans are drawn: {charts}");

    // A screenshot, kept with the build for a human to look at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("experiment-report.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(&profile, &["--window-size=1000,1400", &format!("--screenshot={}", shot.display()), &page]);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {}", stderr(&out)));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000, "a blank page compresses to almost nothing: {} bytes", png.len());
    println!("screenshot: {}", shot.display());
}

#[test]
fn a_failing_seed_prints_the_command_that_replays_it_with_its_trace() {
    let spec = format!("replay-logs={}", fixtures::TAIL_REPLAY);
    let out = ratchet(&["experiment", "--seeds", "16..18", "--plugin", &spec]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(stderr(&out).contains("broke an invariant"), "{}", stderr(&out));
    // The guard refuses the hasty replay's layouts, so the cluster cannot
    // recover: a liveness violation, with every write still at rest.
    assert!(text.contains("plugins seed 16: 1 violations"), "{text}");
    assert!(text.contains("liveness: "), "{text}");
    assert!(!text.contains("acked-write-lost"), "{text}");
    let replay = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: ratchet "))
        .unwrap_or_else(|| panic!("no replay command: {text}"));
    assert!(replay.starts_with("experiment --seeds 16 ") && replay.ends_with(" --trace"), "{replay}");

    // The command, run as printed, shows the same violation and its history.
    let args: Vec<&str> = replay.split(' ').collect();
    let again = ratchet(&args);
    let replayed = stdout(&again);
    assert_eq!(again.status.code(), Some(1), "{replayed}");
    assert!(replayed.contains("--- plugins seed 16 ---"), "{replayed}");
    assert!(replayed.contains("issued epoch 1") && replayed.contains("client"), "{replayed}");
    assert!(replayed.contains("refused S3: log"), "the trace shows the guard's refusals: {replayed}");
    let violation = |t: &str| t.lines().find(|l| l.contains("liveness: ")).map(str::to_string);
    assert_eq!(violation(&replayed), violation(&text), "the replay finds the same violation");
}

#[test]
fn compare_runs_a_second_plugin_set_on_the_same_seeds() {
    let spec = format!("replay-logs={}", fixtures::TAIL_REPLAY);
    let out = ratchet(&["experiment", "--seeds", "14..16", "--compare", &spec]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "the hasty replay's set fails: {text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("no `{name}` row: {text}"))
    };
    let (baseline, compare) = (row("baseline "), row("compare "));
    assert_eq!(baseline[1], "2", "two runs each: {text}");
    assert_eq!(baseline[6], "0", "the defaults keep every invariant: {text}");
    assert_ne!(compare[6], "0", "the hasty replay never recovers: {text}");
    assert!(text.contains("compare seed 14:"), "{text}");
    assert!(!text.contains("baseline seed"), "{text}");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let out = ratchet(&["experiment", "--faults", "hurricane"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown fault profile `hurricane` (known: none, default, crash"), "{}", stderr(&out));

    let out = ratchet(&["experiment", "--faults", "zone-loss", "--zones", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("needs --zones 2 or more"), "{}", stderr(&out));

    let out = ratchet(&["experiment", "--seeds", "5..2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("holds no seed"), "{}", stderr(&out));

    let out = ratchet(&["experiment", "--plugin", "no-such-slot=builtin:pack"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--plugin no-such-slot=builtin:pack"), "{}", stderr(&out));

    let out = ratchet(&["experiment", "--faults", "help"]);
    assert!(out.status.success());
    for profile in ["none", "default", "crash", "network", "zone-loss", "chaos"] {
        assert!(stdout(&out).lines().any(|l| l.starts_with(profile)), "{profile}: {}", stdout(&out));
    }
}
