//! `ratchet experiment`: run a plugin set (and optionally a second one, side
//! by side) over a range of seeded fault scenarios in the simulator, check
//! every run, and summarize.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ratchet::experiment::{self, Seeds, Summary, html, summary};
use ratchet::registry::{Registry, all_slots};
use ratchet::runtime::{Limits, Runtime};
use ratchet::sim::{AdversarySlot, FaultProfile, SimConfig, SimRun};

use super::Failure;

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Seeds to run: `A..B` (B excluded), `A..=B`, or a single seed.
    #[arg(long, default_value = "0..100", value_name = "A..B")]
    seeds: Seeds,
    /// Nodes in each simulated cluster.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(3..=1_000))]
    nodes: u32,
    /// Zones the nodes are spread over.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    zones: u32,
    /// Storage teams (shards) of each cluster.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_024))]
    shards: u32,
    /// Fault profile: none, default, crash, network, zone-loss, chaos
    /// (`--faults help` describes them).
    #[arg(long, default_value = "default", value_name = "PROFILE")]
    faults: String,
    /// Virtual time faults are injected for, in each run.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    fault_window: Duration,
    /// Replace a slot's component: `--plugin SLOT=FILE` or
    /// `SLOT=builtin:NAME` (repeatable).
    #[arg(long = "plugin", value_name = "SLOT=FILE")]
    plugins: Vec<String>,
    /// Run a second plugin set on the same seeds, side by side: the first
    /// set with these slots replaced (repeatable).
    #[arg(long = "compare", value_name = "SLOT=FILE")]
    compare: Vec<String>,
    /// Write every run's figures as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The seed whose per-phase timeline the HTML report charts [default:
    /// the first failing seed, else the first seed].
    #[arg(long, value_name = "SEED")]
    timeline_seed: Option<u64>,
    /// Print the event history of every run (use with one seed).
    #[arg(long)]
    trace: bool,
    /// Threads to run seeds on [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,
    /// Fuel of each plugin call: the only bound on plugins in simulation.
    #[arg(long, default_value_t = SimConfig::default().fuel)]
    fuel: u64,
    /// Logs keep only this many versions behind their newest (never past
    /// what a live replica of the shard holds), so a replica down longer
    /// must be rebuilt [default: logs keep every version].
    #[arg(long, value_name = "VERSIONS", value_parser = clap::value_parser!(u64).range(1..))]
    retention: Option<u64>,
    /// Put the adversary in a slot (a phase, `placement` or
    /// `replica-recovery`), or in a slot each seed picks (`all`): it makes
    /// random host calls with random arguments and returns random steps,
    /// from one boot in four and through the fault window. Such runs are
    /// checked for safety only (S1-S6), never for liveness.
    #[arg(long, value_name = "SLOT|all")]
    adversary: Option<AdversarySlot>,
}

/// One plugin set's runs.
pub struct SetResult {
    pub name: String,
    pub specs: Vec<String>,
    pub runs: Vec<SimRun>,
    pub summary: Summary,
}

pub fn run(args: ExperimentArgs, runtime: Runtime) -> Result<(), Failure> {
    if args.faults == "help" {
        for profile in FaultProfile::ALL {
            println!("{profile}");
        }
        return Ok(());
    }
    let profile = FaultProfile::named(&args.faults).map_err(|e| Failure::input(format!("--faults: {e}")))?;
    if args.zones > args.nodes {
        return Err(Failure::input(format!("--zones {} is more than --nodes {}", args.zones, args.nodes)));
    }
    if profile.zone_loss && args.zones < 2 {
        return Err(Failure::input(format!(
            "--faults {} loses a whole zone: it needs --zones 2 or more (a cluster in one zone cannot survive it)",
            profile.name
        )));
    }
    let config = SimConfig {
        nodes: args.nodes as usize,
        zones: args.zones as usize,
        shards: args.shards,
        profile: profile.clone(),
        fault_window: args.fault_window,
        fuel: args.fuel,
        retention: args.retention,
        adversary: args.adversary.clone(),
        ..SimConfig::default()
    };
    let runtime = Arc::new(runtime);
    let mut sets = vec![("plugins".to_string(), args.plugins.clone())];
    if !args.compare.is_empty() {
        sets[0].0 = "baseline".into();
        sets.push(("compare".into(), args.plugins.iter().chain(&args.compare).cloned().collect()));
    }
    // Load every set before running any, so a bad file fails at once.
    let mut registries = Vec::new();
    for (name, specs) in &sets {
        let registry = Registry::with_defaults(runtime.clone()).map_err(anyhow::Error::new)?;
        if sets.len() > 1 {
            println!("set {name}:");
        }
        super::load_plugins(&registry, specs)?;
        for slot in all_slots() {
            registry.set_limits(slot, Limits::fuel_only(args.fuel)).map_err(anyhow::Error::new)?;
        }
        registries.push(Arc::new(registry));
    }

    let threads = args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), |j| j as usize);
    println!(
        "experiment: seeds {}..{} ({} runs per set), {} nodes in {} zones, {} shards, faults `{}` for {:?} of virtual time, {threads} threads",
        args.seeds.0.start,
        args.seeds.0.end,
        args.seeds.len(),
        args.nodes,
        args.zones,
        args.shards,
        profile.name,
        args.fault_window
    );
    if let Some(adversary) = &args.adversary {
        let slot = match adversary {
            AdversarySlot::Slot(slot) => format!("in {slot}"),
            AdversarySlot::All => "in a slot each seed picks".into(),
        };
        println!("adversary {slot}: safety is checked (S1-S6), liveness is not");
    }
    let started = Instant::now();
    let mut results = Vec::new();
    for ((name, specs), registry) in sets.into_iter().zip(registries) {
        let progress = Progress::new(args.seeds.len(), &name);
        let runs = experiment::run_seeds(&args.seeds, &config, registry, threads, &|run| progress.ran(run))
            .map_err(anyhow::Error::new)?;
        progress.done();
        let summary = Summary::of(&name, &runs);
        results.push(SetResult { name, specs, runs, summary });
    }
    let wall = started.elapsed();

    if args.trace {
        for set in &results {
            for run in &set.runs {
                println!("\n--- {} seed {} ---", set.name, run.seed);
                for line in &run.trace {
                    println!("{line}");
                }
            }
        }
    }
    println!();
    print!("{}", summary::table(&results.iter().map(|r| r.summary.clone()).collect::<Vec<_>>()));
    let recoveries: usize = results.iter().flat_map(|r| &r.runs).map(|r| r.recoveries.len()).sum();
    let boots: usize = results.iter().map(|r| r.runs.len()).sum();
    let virtual_ms: f64 = results.iter().map(|r| r.summary.virtual_ms).sum();
    println!(
        "simulated {recoveries} recoveries ({boots} boots, {} after failures) in {:.1} s: {:.0} recoveries per minute; virtual time ran {:.1}x real time",
        recoveries.saturating_sub(boots),
        wall.as_secs_f64(),
        recoveries as f64 / wall.as_secs_f64().max(1e-9) * 60.0,
        virtual_ms / 1e3 / wall.as_secs_f64().max(1e-9)
    );

    let mut failing = 0;
    for set in &results {
        for run in set.runs.iter().filter(|r| !r.violations.is_empty()) {
            failing += 1;
            let adversary = run.adversary.map_or(String::new(), |slot| format!(" (adversary in {slot})"));
            println!("\n{} seed {}{adversary}: {} violations", set.name, run.seed, run.violations.len());
            for violation in run.violations.iter().take(5) {
                println!("  {violation}");
            }
            println!("  replay: {}", replay_command(&args, &set.specs, run.seed));
        }
    }

    let views = results_view(&results);
    let report = html::Report::new(&args.seeds, &config, &views, args.timeline_seed);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(anyhow::Error::new)?;
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report.to_html()).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if failing > 0 {
        return Err(Failure { code: 1, message: format!("{failing} runs broke an invariant; replay each with the command above") });
    }
    println!("experiment ok: {} runs, 0 violations", results.iter().map(|r| r.runs.len()).sum::<usize>());
    Ok(())
}

fn results_view(results: &[SetResult]) -> Vec<html::SetView<'_>> {
    results.iter().map(|r| html::SetView { name: &r.name, plugins: &r.specs, summary: &r.summary, runs: &r.runs }).collect()
}

/// The command that replays `seed` of the set with `specs`, with its trace.
fn replay_command(args: &ExperimentArgs, specs: &[String], seed: u64) -> String {
    let mut command = format!(
        "ratchet experiment --seeds {seed} --nodes {} --zones {} --shards {} --faults {} --fault-window {}",
        args.nodes,
        args.zones,
        args.shards,
        args.faults,
        humantime::format_duration(args.fault_window)
    );
    if args.fuel != SimConfig::default().fuel {
        command.push_str(&format!(" --fuel {}", args.fuel));
    }
    if let Some(versions) = args.retention {
        command.push_str(&format!(" --retention {versions}"));
    }
    match &args.adversary {
        Some(AdversarySlot::Slot(slot)) => command.push_str(&format!(" --adversary {slot}")),
        Some(AdversarySlot::All) => command.push_str(" --adversary all"),
        None => {}
    }
    for spec in specs {
        command.push_str(&format!(" --plugin {spec}"));
    }
    command.push_str(" --trace");
    command
}

/// A progress bar on a terminal; a line every tenth of the way elsewhere.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: AtomicU64,
    name: String,
}

impl Progress {
    fn new(total: u64, name: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} seeds, {msg} ({eta} left)") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(name.to_string());
            bar
        });
        Progress { bar, total, done: AtomicU64::new(0), name: name.to_string() }
    }

    fn ran(&self, run: &SimRun) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                if !run.violations.is_empty() {
                    bar.set_message(format!("violations at seed {}", run.seed));
                }
            }
            None => {
                let step = (self.total / 10).max(1);
                if done % step == 0 || done == self.total {
                    eprintln!("{}: {done}/{} seeds", self.name, self.total);
                }
            }
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
