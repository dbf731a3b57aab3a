//! `ratchet demo`: boot an in-process cluster, commit, kill a log and a
//! storage worker, recover, and prove that no acknowledged write was lost.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use ratchet::bindings::types::{Layout, RecoveryConfig};
use ratchet::cluster::{Cluster, LocalCluster};
use ratchet::director::{Director, DirectorOptions, RecoveryReport};
use ratchet::quality::PlacementQuality;
use ratchet::registry::Registry;
use ratchet::runtime::Runtime;
use ratchet::store::{CoordinatorStore, FileStore};

use super::Failure;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(3..=10_000))]
    nodes: u32,
    /// Zones the nodes are spread over.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    zones: u32,
    /// Writes to commit before the failure.
    #[arg(long, default_value_t = 3000)]
    writes: usize,
    /// Storage teams (shards) of the new cluster.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    shards: u32,
    /// Replace a slot's component: `--plugin SLOT=FILE`, or a component
    /// shipped in the binary: `--plugin placement=builtin:least-loaded` or
    /// `builtin:pack` (repeatable).
    #[arg(long = "plugin", value_name = "SLOT=FILE")]
    plugins: Vec<String>,
    /// Where the coordinator keeps its state [default: a temporary directory].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

pub fn run(args: DemoArgs, runtime: Runtime) -> Result<(), Failure> {
    let registry = Registry::with_defaults(Arc::new(runtime)).map_err(anyhow::Error::new)?;
    super::load_plugins(&registry, &args.plugins)?;
    let held = args.data.as_deref().map(super::hold_data_dir).transpose()?;
    let data = match &args.data {
        Some(dir) => dir.clone(),
        None => tempdir()?,
    };
    let result = run_in(&args, registry, &data);
    drop(held);
    if args.data.is_none() {
        // The state of a throwaway demo is not worth keeping.
        if let Err(err) = std::fs::remove_dir_all(&data) {
            eprintln!("warning: cannot remove the demo's state in {}: {err}", data.display());
        }
    }
    result
}

fn run_in(args: &DemoArgs, registry: Registry, data: &std::path::Path) -> Result<(), Failure> {
    let store = Arc::new(FileStore::open(data).map_err(anyhow::Error::new)?);
    let local = LocalCluster::with_zones(args.nodes as usize, args.zones as usize, 16).map_err(anyhow::Error::new)?;
    let cluster = local.client();
    let config = RecoveryConfig { shards: args.shards, ..RecoveryConfig::default() };
    let director = Director::new(Arc::new(registry), cluster.clone(), store.clone(), config, DirectorOptions::default());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;

    println!("cluster: {} nodes in {} zones, coordinator state in {}", args.nodes, args.zones, data.display());
    let boot = tokio.block_on(director.recover()).map_err(anyhow::Error::new)?;
    print_recovery("boot", &boot);
    let first = boot.layout().cloned().ok_or_else(|| anyhow::anyhow!("the new cluster did not boot"))?;
    print_quality("boot", &first, &tokio.block_on(cluster.nodes()));

    let started = Instant::now();
    let mut acked = Vec::with_capacity(args.writes);
    tokio.block_on(async {
        for i in 0..args.writes {
            let (key, value) = write(i);
            if let Ok(version) = cluster.commit(&[(key.clone(), value.clone())]).await {
                acked.push((key, value, version));
            }
            if i % 100 == 99 {
                cluster.pump().await;
            }
        }
    });
    println!(
        "committed {} writes in {:.1} ms (version {})",
        acked.len(),
        started.elapsed().as_secs_f64() * 1e3,
        cluster.committed_version()
    );

    // A node hosting a log crashes, then one hosting a storage replica.
    let node_of = |id: &str| first.services.iter().find(|s| s.id == id).map(|s| s.node.clone());
    let victims = [first.logs.first().map(|l| &l.id), first.storage_teams.first().and_then(|t| t.storage_ids.first())];
    for id in victims.into_iter().flatten() {
        if let Some(node) = node_of(id)
            && local.crash(&node)
        {
            let hosted: Vec<&str> = first.services.iter().filter(|s| s.node == node).map(|s| s.id.as_str()).collect();
            println!("crashed node {node} (hosting {})", hosted.join(", "));
        }
    }
    let refused = tokio.block_on(async {
        let mut refused = 0;
        for i in 0..3 {
            refused += usize::from(cluster.commit(&[write(args.writes + i)]).await.is_err());
        }
        refused
    });
    println!("commits refused while the generation is broken: {refused} of 3");

    let recovery = tokio.block_on(director.recover()).map_err(anyhow::Error::new)?;
    print_recovery("recovery", &recovery);
    let second = recovery.layout().cloned();
    if let Some(second) = &second {
        print_layouts(&first, second);
        print_quality("recovery", second, &tokio.block_on(cluster.nodes()));
    }

    let epochs = store.state().map_err(anyhow::Error::new)?.layout.map_or(0, |l| l.epoch);
    if second.is_none() {
        // Without a new generation the writes cannot be read; whether they
        // are still there is not known until a recovery completes.
        println!("verified none of {} acknowledged writes: unreadable: recovery did not complete", acked.len());
        println!("demo FAILED: epochs={epochs} committed={} unreadable={} (recovery did not complete)", acked.len(), acked.len());
        return Err(Failure { code: 1, message: "the demo recovery did not complete".into() });
    }
    let lost = tokio.block_on(async {
        cluster.pump().await;
        let mut lost = 0;
        for (key, value, _) in &acked {
            if cluster.read(key).await.ok().flatten().as_deref() != Some(value.as_str()) {
                lost += 1;
            }
        }
        lost
    });
    println!("verified {} acknowledged writes: {lost} lost", acked.len());
    println!("demo {}: epochs={epochs} committed={} lost={lost}", if lost == 0 { "ok" } else { "FAILED" }, acked.len());
    if lost > 0 {
        return Err(Failure { code: 1, message: format!("the demo recovery lost {lost} acknowledged writes") });
    }
    Ok(())
}

/// A write whose key starts with a hash, so keys spread over the shards.
fn write(i: usize) -> (String, String) {
    (format!("{:08x}-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("value-{i}"))
}

fn tempdir() -> Result<PathBuf, Failure> {
    let dir = std::env::temp_dir().join(format!("ratchet-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn print_recovery(title: &str, report: &RecoveryReport) {
    for attempt in &report.attempts {
        println!(
            "\n{title}: epoch {} attempt {} {} in {:.2} ms",
            attempt.epoch,
            attempt.attempt,
            attempt.outcome,
            attempt.duration.as_secs_f64() * 1e3
        );
        println!("  {:<28} {:>10}  OUTCOME", "PHASE", "MS");
        for phase in &attempt.timeline {
            println!("  {:<28} {:>10.3}  {}", phase.phase, phase.duration.as_secs_f64() * 1e3, phase.outcome);
        }
        for refusal in &attempt.refusals {
            println!("  refused: {refusal}");
        }
    }
}

fn print_quality(title: &str, layout: &Layout, nodes: &[ratchet::bindings::types::Node]) {
    println!("\n{title}: placement quality of epoch {}", layout.epoch);
    println!("{}", PlacementQuality::of(layout, nodes));
}

fn print_layouts(old: &Layout, new: &Layout) {
    let describe = |layout: &Layout| -> Vec<String> {
        let placed = |id: &String| match layout.services.iter().find(|s| &s.id == id) {
            Some(service) => format!("{id}@{}", service.node),
            None => id.clone(),
        };
        let mut lines = vec![
            format!("epoch {}", layout.epoch),
            format!("recovery version {}", layout.recovery_version),
            format!("sequencer {}", layout.sequencer.as_ref().map_or("-".into(), placed)),
            format!("proxies {}", layout.commit_proxies.iter().map(placed).collect::<Vec<_>>().join(",")),
            format!("resolvers {}", layout.resolvers.iter().map(placed).collect::<Vec<_>>().join(",")),
        ];
        for log in &layout.logs {
            lines.push(format!("log {} tags {:?}", placed(&log.id), log.tags));
        }
        for team in &layout.storage_teams {
            lines.push(format!("team {} {}", team.tag, team.storage_ids.iter().map(placed).collect::<Vec<_>>().join(",")));
        }
        lines
    };
    let (left, right) = (describe(old), describe(new));
    let width = left.iter().map(String::len).max().unwrap_or(0).max(10) + 2;
    println!("\n  {:<width$} NEW LAYOUT", "OLD LAYOUT");
    for i in 0..left.len().max(right.len()) {
        println!("  {:<width$} {}", left.get(i).map(String::as_str).unwrap_or(""), right.get(i).map(String::as_str).unwrap_or(""));
    }
}
