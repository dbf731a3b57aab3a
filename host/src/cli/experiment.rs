//! `ratchet experiment`: run a plugin set (and optionally a second one, side
//! by side) over a range of seeded fault scenarios in the simulator, check
//! every run, and summarize; `ratchet experiment merge`: add up the JSON
//! reports of experiments run apart.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ratchet::experiment::report::{self, Part, SetHead};
use ratchet::experiment::{self, Report, ReportBuilder, Seeds, Setup, compare, summary};
use ratchet::registry::{Registry, all_slots};
use ratchet::runtime::{Limits, Runtime};
use ratchet::sim::{AdversarySlot, FaultProfile, SimConfig, SimRun};

use super::Failure;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExperimentArgs {
    #[command(subcommand)]
    command: Option<ExperimentCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum ExperimentCommand {
    /// Add up the JSON reports (`--json`) of experiments over seed ranges
    /// apart, run on one machine or several, into one summary, table and
    /// report: what one experiment over all their seeds would give.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// The reports, each written by `ratchet experiment --json` with the
    /// same cluster, faults and plugin sets.
    #[arg(required = true, value_name = "REPORT.json")]
    reports: Vec<PathBuf>,
    #[command(flatten)]
    report: ReportArgs,
}

/// The reports an experiment, or a merge, writes.
#[derive(Debug, Args)]
struct ReportArgs {
    /// Write every run's figures as JSON, streamed as the runs come
    /// (`experiment merge` adds such reports up).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a self-contained HTML report with charts.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// The seed whose per-phase timeline the HTML report charts [default:
    /// the first failing seed, else the first seed].
    #[arg(long, value_name = "SEED")]
    timeline_seed: Option<u64>,
}

#[derive(Debug, Args)]
struct RunArgs {
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
    /// Fault profile: none, default, crash, network, zone-loss, slow-disk, chaos
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
    /// set with these slots replaced (repeatable). The report says, for
    /// recovery time (p50, p99), attempts per recovery and placement spread,
    /// whether the sets differ, with a 95 % bootstrap confidence interval
    /// over the seeds.
    #[arg(long = "compare", value_name = "SLOT=FILE")]
    compare: Vec<String>,
    #[command(flatten)]
    report: ReportArgs,
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
    /// what two live replicas of the shard hold), so a replica down longer
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

pub fn run(args: ExperimentArgs, runtime: impl FnOnce() -> Result<Runtime, Failure>) -> Result<(), Failure> {
    match args.command {
        Some(ExperimentCommand::Merge(merge)) => run_merge(merge),
        None => run_seeds(args.run, runtime()?),
    }
}

fn run_seeds(args: RunArgs, runtime: Runtime) -> Result<(), Failure> {
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
        trace: args.trace,
        ..SimConfig::default()
    };
    let runtime = Arc::new(runtime);
    let mut sets = vec![SetHead { name: "plugins".to_string(), plugins: args.plugins.clone() }];
    if !args.compare.is_empty() {
        sets[0].name = "baseline".into();
        sets.push(SetHead { name: "compare".into(), plugins: args.plugins.iter().chain(&args.compare).cloned().collect() });
    }
    // Load every set before running any, so a bad file fails at once.
    let mut registries = Vec::new();
    for set in &sets {
        let registry = Registry::with_defaults(runtime.clone()).map_err(anyhow::Error::new)?;
        if sets.len() > 1 {
            println!("set {}:", set.name);
        }
        super::load_plugins(&registry, &set.plugins)?;
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
    let mut builder = ReportBuilder::new(Setup::new(&args.seeds, &config), args.report.timeline_seed, args.report.json.as_deref())
        .map_err(anyhow::Error::new)?;
    let started = Instant::now();
    for (head, registry) in sets.into_iter().zip(registries) {
        let mut progress = Progress::new(args.seeds.len(), &head.name);
        let name = head.name.clone();
        builder.begin_set(head).map_err(anyhow::Error::new)?;
        // Runs come in seed order; each is added up, streamed to the JSON
        // report and dropped. A report that cannot be written stops the
        // experiment at once.
        let mut unwritten = None;
        experiment::stream_seeds(&args.seeds, &config, registry, threads, &mut |run| {
            if args.trace {
                progress.println(&trace(&name, &run));
            }
            progress.ran(&run);
            match builder.add(&run) {
                Ok(()) => ControlFlow::Continue(()),
                Err(error) => {
                    unwritten = Some(error);
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(anyhow::Error::new)?;
        progress.done();
        if let Some(error) = unwritten {
            return Err(anyhow::Error::new(error).into());
        }
        builder.end_set().map_err(anyhow::Error::new)?;
    }
    let wall = started.elapsed();
    let report = builder.finish().map_err(anyhow::Error::new)?;

    println!();
    print!("{}", summary::table(&report.sets.iter().map(|s| s.summary()).collect::<Vec<_>>()));
    let recoveries: usize = report.sets.iter().map(|s| s.tally.every_recovery()).sum();
    let boots: usize = report.sets.iter().map(|s| s.tally.runs()).sum();
    let virtual_ms: f64 = report.sets.iter().map(|s| s.summary().virtual_ms).sum();
    println!(
        "simulated {recoveries} recoveries ({boots} boots, {} after failures) in {:.1} s: {:.0} recoveries per minute; virtual time ran {:.1}x real time",
        recoveries.saturating_sub(boots),
        wall.as_secs_f64(),
        recoveries as f64 / wall.as_secs_f64().max(1e-9) * 60.0,
        virtual_ms / 1e3 / wall.as_secs_f64().max(1e-9)
    );
    conclude(&report, &args.report)
}

fn run_merge(args: MergeArgs) -> Result<(), Failure> {
    if let Some(html) = &args.report.html {
        report::refuse_overwrite(&args.reports, html).map_err(Failure::input)?;
    }
    let merged = report::merge(&args.reports, args.report.timeline_seed, args.report.json.as_deref(), &mut |part: &Part, set: &SetHead| {
        eprintln!("{}: reading {} ({} seeds)", set.name, part.path.display(), part.setup.seed_count());
    });
    let report = merged.map_err(|e| match e {
        report::ReportError::Io { .. } => Failure::from(anyhow::Error::new(e)),
        _ => Failure::input(e),
    })?;
    let setup = &report.setup;
    println!(
        "merged {} reports: seeds {} ({} runs per set), {} nodes in {} zones, {} shards, faults `{}`",
        args.reports.len(),
        setup.seed_ranges(),
        setup.seed_count(),
        setup.nodes,
        setup.zones,
        setup.shards,
        setup.faults
    );
    println!();
    print!("{}", summary::table(&report.sets.iter().map(|s| s.summary()).collect::<Vec<_>>()));
    conclude(&report, &args.report)
}

/// Lists the failing runs with the command that replays each, writes the
/// HTML report, and ends the command.
fn conclude(report: &Report, written: &ReportArgs) -> Result<(), Failure> {
    match &report.comparison {
        Some(Ok(comparison)) => print!("\n{}", compare::table(comparison)),
        Some(Err(why)) => println!("\nno comparison: {why}"),
        None => {}
    }
    let mut failing = 0;
    for set in &report.sets {
        for run in &set.failing {
            failing += 1;
            let adversary = run.adversary.as_ref().map_or(String::new(), |slot| format!(" (adversary in {slot})"));
            println!("\n{} seed {}{adversary}: {} violations", set.head.name, run.seed, run.violations.len());
            for violation in run.violations.iter().take(5) {
                println!("  {violation}");
            }
            println!("  replay: {}", report.setup.replay(&set.head.plugins, run.seed));
        }
        if set.failing_not_kept > 0 {
            failing += set.failing_not_kept;
            println!(
                "\n{}: {} more failing seeds, not listed (their runs are in the JSON report): {}",
                set.head.name,
                set.failing_not_kept,
                seed_list(&set.summary().failing_seeds[set.failing.len()..])
            );
        }
    }
    if let Some(path) = &written.json {
        println!("wrote {}", path.display());
    }
    if let Some(path) = &written.html {
        std::fs::write(path, report.to_html()).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if failing > 0 {
        return Err(Failure { code: 1, message: format!("{failing} runs broke an invariant; replay each with the command above") });
    }
    println!("experiment ok: {} runs, 0 violations", report.sets.iter().map(|s| s.tally.runs()).sum::<usize>());
    Ok(())
}

/// At most the first 20 of `seeds`.
fn seed_list(seeds: &[u64]) -> String {
    let shown: Vec<String> = seeds.iter().take(20).map(u64::to_string).collect();
    let more = if seeds.len() > 20 { format!(" and {} more", seeds.len() - 20) } else { String::new() };
    format!("{}{more}", shown.join(" "))
}

/// The event history of one run, as `--trace` prints it.
fn trace(set: &str, run: &SimRun) -> String {
    let mut text = format!("\n--- {set} seed {} ---", run.seed);
    for line in &run.trace {
        text.push('\n');
        text.push_str(line);
    }
    text
}

/// A progress bar on a terminal; a line every tenth of the way elsewhere.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
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
        Progress { bar, total, done: 0, name: name.to_string() }
    }

    /// Prints `text` above the bar.
    fn println(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    fn ran(&mut self, run: &SimRun) {
        self.done += 1;
        let done = self.done;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                if !run.violations.is_empty() {
                    bar.set_message(format!("violations at seed {}", run.seed));
                }
            }
            None => {
                let step = (self.total / 10).max(1);
                if done.is_multiple_of(step) || done == self.total {
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
