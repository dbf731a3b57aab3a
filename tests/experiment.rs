//! End-to-end tests of `ratchet experiment`: the summary, JSON and an HTML
//! report that really renders in headless Chromium, failing seeds with the
//! command that replays them, a side-by-side comparison, and bad input.

#[path = "support/chromium.rs"]
mod chromium;

use std::path::Path;
use std::process::{Command, Output};

use chromium::{attribute, rendered, screenshot};
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

#[test]
fn an_experiment_summarizes_and_its_html_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("report.json"), dir.path().join("report.html"));
    let out = ratchet(&["experiment", "--seeds", "0..6", "--json", json.to_str().unwrap(), "--html", html.to_str().unwrap()]);
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
    let dom = rendered(&profile, &page, 5000);
    let charts = attribute(&dom, "data-charts").unwrap_or_else(|| panic!("the page's chart check did not run: {dom}"));
    assert!(charts.starts_with("ok charts=2 "), "{charts}");
    let marks: usize = charts.rsplit('=').next().unwrap().parse().unwrap();
    assert!(marks > 10, "bars and phase spans are drawn: {charts}");

    // A screenshot, kept with the build for a human to look at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("experiment-report.png");
    if let Err(err) = std::fs::remove_file(&shot) {
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    }
    screenshot(&profile, &page, "1000,1400", &shot);
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
    let replay =
        text.lines().find_map(|l| l.trim().strip_prefix("replay: ratchet ")).unwrap_or_else(|| panic!("no replay command: {text}"));
    assert!(replay.starts_with("experiment --seeds 16 ") && replay.ends_with(" --trace"), "{replay}");

    // The command, run as printed, shows the same violation and its history.
    let args: Vec<&str> = replay.split(' ').collect();
    let again = ratchet(&args);
    let replayed = stdout(&again);
    assert_eq!(again.status.code(), Some(1), "{replayed}");
    assert!(replayed.contains("--- plugins seed 16 ---"), "{replayed}");
    assert!(replayed.contains("issued epoch 1") && replayed.contains("client"), "{replayed}");
    assert!(
        replayed.lines().any(|l| l.contains(" guard ") && l.contains(" refused S")),
        "the trace shows the guard's refusals: {replayed}"
    );
    let violation = |t: &str| t.lines().find(|l| l.contains("liveness: ")).map(str::to_string);
    assert_eq!(violation(&replayed), violation(&text), "the replay finds the same violation");
}

#[test]
fn compare_runs_a_second_plugin_set_on_the_same_seeds() {
    let spec = format!("replay-logs={}", fixtures::TAIL_REPLAY);
    let out = ratchet(&["experiment", "--seeds", "15..17", "--compare", &spec]);
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
    assert!(text.contains("compare seed 15:"), "{text}");
    assert!(!text.contains("baseline seed"), "{text}");
}

/// A slower start-sequencer makes recovery slower, and the comparison says
/// so with an interval that excludes zero; the same set against itself
/// differs in nothing.
#[test]
fn compare_says_whether_the_sets_really_differ_with_bootstrap_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let (json, html) = (dir.path().join("report.json"), dir.path().join("report.html"));
    let spec = format!("start-sequencer={}", fixtures::SLOW_SEQUENCER);
    let out = ratchet(&[
        "experiment",
        "--seeds",
        "0..30",
        "--compare",
        &spec,
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let p50 = text.lines().find(|l| l.starts_with("recovery p50 ms")).unwrap_or_else(|| panic!("no p50 row: {text}"));
    assert!(p50.ends_with("compare is higher"), "{p50}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let p50 = &report["comparison"]["differences"][0];
    assert_eq!(p50["figure"], "recovery-p50-ms");
    let (low, difference) = (p50["interval"][0].as_f64().unwrap(), p50["difference"].as_f64().unwrap());
    assert!(low > 0.0 && low <= difference, "{p50}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<table class=\"comparison\">") && page.contains("compare is higher"), "the HTML report has the comparison");

    let out = ratchet(&["experiment", "--seeds", "0..12", "--plugin", "placement=builtin:pack", "--compare", "placement=builtin:pack"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let rows: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("FIGURE")).skip(1).take(4).collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert!(rows.iter().all(|r| r.ends_with("no significant difference")), "{text}");
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

#[test]
fn reports_of_seed_ranges_apart_merge_into_what_one_run_reports() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    // Two plugin sets, one of which fails: the merge must add up figures,
    // failing runs, replay commands and the charted timeline alike.
    let spec = format!("replay-logs={}", fixtures::TAIL_REPLAY);
    let experiment = |seeds: &str, name: &str| {
        let (json, html) = (path(&format!("{name}.json")), path(&format!("{name}.html")));
        let out = ratchet(&["experiment", "--seeds", seeds, "--compare", &spec, "--json", &json, "--html", &html]);
        assert_eq!(out.status.code(), Some(1), "the compared set fails: {}{}", stdout(&out), stderr(&out));
        stdout(&out)
    };
    let whole = experiment("12..18", "whole");
    experiment("12..15", "first");
    experiment("15..18", "second");

    // Given in any order.
    let out = ratchet(&[
        "experiment",
        "merge",
        &path("second.json"),
        &path("first.json"),
        "--json",
        &path("merged.json"),
        "--html",
        &path("merged.html"),
    ]);
    let merged = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "the merge finds the same failures: {merged}{}", stderr(&out));
    assert!(merged.starts_with("merged 2 reports: seeds 12..18 (6 runs per set)"), "{merged}");
    // The table, every failing seed and its replay command: as one run.
    let report = |text: &str| {
        let from = text.find("PLUGINS").unwrap_or_else(|| panic!("no table: {text}"));
        text[from..].lines().filter(|l| !l.starts_with("simulated ") && !l.starts_with("wrote ")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(report(&merged), report(&whole));
    assert!(merged.contains("compare seed 13:") && merged.contains("compare seed 17:"), "{merged}");
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    assert_eq!(read("merged.json"), read("whole.json"), "the JSON reports are byte for byte the same");
    assert_eq!(read("merged.html"), read("whole.html"), "the HTML reports are byte for byte the same");

    // A merged report merges again.
    let out = ratchet(&["experiment", "merge", &path("merged.json")]);
    assert_eq!(report(&stdout(&out)), report(&whole));

    // Reports that cannot be added up are refused, naming why.
    let out = ratchet(&["experiment", "merge", &path("whole.json"), &path("second.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("their seeds overlap or interleave (12..18 and 15..18)"), "{}", stderr(&out));
    let out = ratchet(&["experiment", "--seeds", "18..19", "--faults", "crash", "--json", &path("crash.json")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ratchet(&["experiment", "merge", &path("crash.json"), &path("first.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("faults default against crash"), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("first.json")).unwrap();
    std::fs::write(dir.path().join("cut.json"), &text[..text.len() / 2]).unwrap();
    let out = ratchet(&["experiment", "merge", &path("cut.json"), &path("second.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cut.json is not a complete experiment report"), "{}", stderr(&out));
    let out = ratchet(&["experiment", "merge", &path("first.json"), &path("second.json"), "--json", &path("second.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("would overwrite"), "{}", stderr(&out));
    let out = ratchet(&["experiment", "merge", &path("first.json"), &path("second.json")]);
    assert_eq!(report(&stdout(&out)), report(&whole), "the refused merge left its reports whole");
    let out = ratchet(&["experiment", "merge"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
