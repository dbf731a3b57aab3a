//! The dry run a candidate must pass before it serves: a simulated copy of
//! the cluster (its nodes, zones and capacities, all healthy, and its shard
//! count) boots with the candidate in its slot, takes writes, loses a log
//! and a storage replica, and recovers. The candidate is refused if any
//! attempt traps or times out in a plugin, the invariant guard refuses
//! anything, an attempt fails, either recovery does not complete, or an
//! acknowledged write is lost.
//!
//! A replica recovery policy is not called by a recovery: its dry run asks it
//! to decide for histories at every boundary of the rules instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bindings::types::{RecoveryConfig, ReplicaHistory};
use crate::cluster::LocalCluster;
use crate::director::{AttemptOutcome, Director, DirectorOptions, RecoveryReport};
use crate::registry::{Plugins, Registry};
use crate::replica::{check_plan, recoverable};
use crate::store::MemoryStore;
use crate::topology::NodeSpec;

/// Writes committed between the boot and the failure.
const WRITES: usize = 200;

/// The cluster a dry run copies.
#[derive(Clone, Debug)]
pub struct Shape {
    /// The nodes; a copy with fewer than three uses nine over three zones.
    pub nodes: Vec<NodeSpec>,
    /// The recovery configuration (shards, replication).
    pub config: RecoveryConfig,
}

/// What a passed dry run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Passed {
    /// Attempts over both recoveries (for a replica recovery policy: the
    /// decisions it was asked for).
    pub attempts: usize,
    /// Writes read back after the recovery.
    pub writes: usize,
    /// Wall time of the whole dry run, in milliseconds.
    pub millis: f64,
}

/// Runs the dry run with `plugins`; `Err` says why the candidate is refused.
pub async fn run(plugins: Arc<dyn Plugins>, shape: &Shape) -> Result<Passed, String> {
    let started = Instant::now();
    let nodes = if shape.nodes.len() >= 3 {
        shape.nodes.clone()
    } else {
        (0..9).map(|i| NodeSpec { id: format!("n{}", i + 1), zone: format!("z{}", i % 3 + 1), capacity: 16 }).collect()
    };
    let local = LocalCluster::new(nodes).map_err(|e| format!("cannot start the dry run's cluster: {e}"))?;
    let cluster = local.client();
    let options = DirectorOptions {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(10),
        ..DirectorOptions::default()
    };
    let director = Director::new(plugins, cluster.clone(), Arc::new(MemoryStore::default()), shape.config, options);

    let boot = director.recover().await.map_err(|e| format!("boot: {e}"))?;
    let first = judge("boot", &boot)?;
    let mut acked = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let write = (format!("{:08x}-dry-{i}", (i as u32).wrapping_mul(2_654_435_761)), format!("v{i}"));
        if cluster.commit(std::slice::from_ref(&write)).await.is_ok() {
            acked.push(write);
        }
    }
    if acked.is_empty() {
        return Err("boot: the new generation acknowledged no write".into());
    }
    cluster.pump().await;
    // The nodes hosting the first log and the first replica crash.
    let victims = [first.logs.first().map(|l| &l.id), first.storage_teams.first().and_then(|t| t.storage_ids.first())];
    for id in victims.into_iter().flatten() {
        if let Some(service) = first.services.iter().find(|s| &s.id == id) {
            local.crash(&service.node);
        }
    }
    let recovery = director.recover().await.map_err(|e| format!("recovery: {e}"))?;
    judge("recovery", &recovery)?;
    cluster.pump().await;
    let mut lost = 0;
    for (key, value) in &acked {
        if cluster.read(key).await.ok().flatten().as_deref() != Some(value.as_str()) {
            lost += 1;
        }
    }
    if lost > 0 {
        return Err(format!("recovery: {lost} of {} acknowledged writes lost", acked.len()));
    }
    Ok(Passed {
        attempts: boot.attempts.len() + recovery.attempts.len(),
        writes: acked.len(),
        millis: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// The dry run of a replica recovery policy (`registry` holds the candidate
/// in its slot): it decides for histories at every boundary of the rules
/// that some plan fits, and a trap, or a plan that does not fit its own
/// figures, refuses it.
pub async fn run_replica(registry: &Registry) -> Result<Passed, String> {
    let started = Instant::now();
    let histories: Vec<ReplicaHistory> = replica_histories().into_iter().filter(recoverable).collect();
    for history in &histories {
        let plan = registry.call_replica(history).await.map_err(|e| format!("deciding for {history:?}: {e}"))?;
        check_plan(history, &plan).map_err(|reason| format!("deciding for {history:?}: {reason}"))?;
    }
    Ok(Passed { attempts: histories.len(), writes: 0, millis: started.elapsed().as_secs_f64() * 1e3 })
}

/// Histories at and around every boundary: equal, ahead, at and below
/// retention, with a checkpoint inside, at the edge of and outside it.
fn replica_histories() -> Vec<ReplicaHistory> {
    let (oldest, committed) = (100, 200);
    let mut histories = Vec::new();
    for durable in [0, oldest - 1, oldest, oldest + 1, committed - 1, committed, committed + 1, committed + 50] {
        for checkpoint in [None, Some(oldest - 1), Some(oldest), Some(committed), Some(committed + 1)] {
            histories.push(ReplicaHistory {
                durable_version: durable,
                oldest_retained: oldest,
                head_version: committed,
                committed_version: committed,
                checkpoint_version: checkpoint,
            });
        }
    }
    histories
}

/// The layout of a recovery that went cleanly, or why it did not.
fn judge(stage: &str, report: &RecoveryReport) -> Result<crate::bindings::types::Layout, String> {
    for attempt in &report.attempts {
        let at = format!("{stage}, attempt {} at epoch {}", attempt.attempt, attempt.epoch);
        if let Some(refusal) = attempt.refusals.first() {
            return Err(format!("{at}: the invariant guard refused: {refusal}"));
        }
        if let Some(phase) = attempt.timeline.iter().find(|p| p.outcome == "trapped" || p.outcome == "refused") {
            return Err(format!("{at}: {} {}: {}", phase.phase, phase.outcome, attempt.outcome));
        }
        if let AttemptOutcome::Failed(reason) = &attempt.outcome {
            return Err(format!("{at}: failed: {reason}"));
        }
    }
    report.layout().cloned().ok_or_else(|| {
        let last = report.last().map_or("no attempt".to_string(), |a| a.outcome.to_string());
        format!("{stage}: did not complete: {last}")
    })
}
