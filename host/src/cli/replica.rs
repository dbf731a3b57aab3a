//! `ratchet replica plan`: ask a replica recovery policy how it would bring
//! a replica up to date from given figures, with its proof, and whether the
//! host would accept the plan.

use std::sync::Arc;

use clap::{Args, Subcommand};
use ratchet::bindings::types::{CatchUpPlan, RebuildPlan, ReplicaHistory, ReplicaOutcome};
use ratchet::registry::{REPLICA, Registry};
use ratchet::replica::check_plan;
use ratchet::runtime::Runtime;

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// Show the plan a replica recovery policy makes from the figures given,
    /// its proof, and whether the host's check accepts it (exit 1 if not).
    Plan(PlanArgs),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The replica's durable version.
    #[arg(long)]
    durable: u64,
    /// The oldest retained log version, exclusive.
    #[arg(long)]
    oldest: u64,
    /// The newest version the logs hold [default: the committed version].
    #[arg(long)]
    head: Option<u64>,
    /// The newest committed version.
    #[arg(long)]
    committed: u64,
    /// The version of a trusted checkpoint, if there is one.
    #[arg(long)]
    checkpoint: Option<u64>,
    /// The policy: a component file or `builtin:NAME` [default: the
    /// embedded default].
    #[arg(long, value_name = "FILE")]
    plugin: Option<String>,
}

pub fn run(command: ReplicaCommand, runtime: Runtime) -> Result<(), Failure> {
    let ReplicaCommand::Plan(args) = command;
    let registry = Registry::with_defaults(Arc::new(runtime)).map_err(anyhow::Error::new)?;
    if let Some(plugin) = &args.plugin {
        super::load_plugins(&registry, &[format!("{REPLICA}={plugin}")])?;
    }
    let history = ReplicaHistory {
        durable_version: args.durable,
        oldest_retained: args.oldest,
        head_version: args.head.unwrap_or(args.committed),
        committed_version: args.committed,
        checkpoint_version: args.checkpoint,
    };
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let plan = tokio.block_on(registry.call_replica(&history)).map_err(|e| anyhow::anyhow!("{REPLICA}: {e}"))?;
    println!("outcome  {}", describe(&plan.outcome));
    println!("reason   {}", plan.reason);
    let h = &plan.history;
    println!(
        "figures  durable {}, oldest retained {} (exclusive), head {}, committed {}, checkpoint {}",
        h.durable_version,
        h.oldest_retained,
        h.head_version,
        h.committed_version,
        h.checkpoint_version.map_or("none".to_string(), |v| v.to_string())
    );
    match check_plan(&history, &plan) {
        Ok(()) => {
            println!("host     accepts the plan");
            Ok(())
        }
        Err(reason) => {
            println!("host     refuses the plan: {reason}");
            Err(Failure { code: 1, message: format!("the host refuses the plan: {reason}") })
        }
    }
}

fn describe(outcome: &ReplicaOutcome) -> String {
    match outcome {
        ReplicaOutcome::ZeroGap => "zero-gap".into(),
        ReplicaOutcome::CatchUp(CatchUpPlan::Replay(range)) => format!("catch-up: replay ({}, {}]", range.after, range.through),
        ReplicaOutcome::CatchUp(CatchUpPlan::Truncate(to)) => format!("catch-up: truncate to {to}"),
        ReplicaOutcome::Rebuild(RebuildPlan::SnapshotTail(at)) => format!("rebuild: snapshot at {at}, then the tail"),
        ReplicaOutcome::Rebuild(RebuildPlan::Full) => "rebuild: full copy".into(),
    }
}
