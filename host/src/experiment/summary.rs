//! The figures of a plugin set over its runs, and the table that shows them.

use std::fmt::Write as _;

use crate::sim::{RecoveryEnd, ReplicaCounts, SimRun};

/// What one plugin set did over a range of seeds. Recoveries are counted per
/// director (a competing director is a recovery of its own); the boot is
/// not a recovery.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The plugin set.
    pub name: String,
    /// Seeds run.
    pub runs: usize,
    /// Recoveries started.
    pub recoveries: usize,
    /// Recoveries whose layout was persisted.
    pub completed: usize,
    /// Recoveries that ran out of attempts, or that a phase failed.
    pub stalled: usize,
    /// Recoveries that a newer epoch took over.
    pub superseded: usize,
    /// Invariant violations found by the checker.
    pub violations: usize,
    /// Seeds with at least one violation.
    pub failing_seeds: Vec<u64>,
    /// Recovery time of completed recoveries in virtual ms: median.
    pub recovery_p50_ms: f64,
    /// And 99th percentile.
    pub recovery_p99_ms: f64,
    /// Attempts per completed recovery, on average.
    pub attempts_per_recovery: f64,
    /// Zone spread of the final layouts (zones spanned over zones possible,
    /// 1.0 best), on average.
    pub placement_spread: f64,
    /// Runs whose final layout has a team held whole by one zone.
    pub one_zone_layouts: usize,
    /// Virtual time simulated, in ms.
    pub virtual_ms: f64,
    /// Replica recovery sessions, over every run.
    pub replicas: ReplicaCounts,
}

impl Summary {
    /// The summary of `runs` under `name`.
    pub fn of(name: &str, runs: &[SimRun]) -> Self {
        let recoveries: Vec<_> = runs.iter().flat_map(|r| r.recoveries.iter().filter(|c| c.trigger != "boot")).collect();
        let completed: Vec<_> = recoveries.iter().filter(|c| c.end == RecoveryEnd::Completed).collect();
        let mut times: Vec<f64> = completed.iter().map(|c| c.ms()).collect();
        times.sort_by(f64::total_cmp);
        let placements: Vec<_> = runs.iter().filter_map(|r| r.placement.as_ref()).collect();
        Summary {
            name: name.to_string(),
            runs: runs.len(),
            recoveries: recoveries.len(),
            completed: completed.len(),
            stalled: recoveries.iter().filter(|c| matches!(c.end, RecoveryEnd::Stalled | RecoveryEnd::Failed)).count(),
            superseded: recoveries.iter().filter(|c| c.end == RecoveryEnd::Superseded).count(),
            violations: runs.iter().map(|r| r.violations.len()).sum(),
            failing_seeds: runs.iter().filter(|r| !r.violations.is_empty()).map(|r| r.seed).collect(),
            recovery_p50_ms: percentile(&times, 50.0),
            recovery_p99_ms: percentile(&times, 99.0),
            attempts_per_recovery: mean(completed.iter().map(|c| f64::from(c.attempts))),
            placement_spread: mean(placements.iter().map(|p| p.spread)),
            one_zone_layouts: placements.iter().filter(|p| p.one_zone_teams > 0).count(),
            virtual_ms: runs.iter().map(|r| r.virtual_ms).sum(),
            replicas: runs.iter().fold(ReplicaCounts::default(), |mut sum, r| {
                sum.catch_ups += r.replicas.catch_ups;
                sum.truncations += r.replicas.truncations;
                sum.rebuilds += r.replicas.rebuilds;
                sum.escalations += r.replicas.escalations;
                sum.completed += r.replicas.completed;
                sum
            }),
        }
    }
}

/// The nearest-rank percentile of sorted `values` (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// The summary table, one row per plugin set.
pub fn table(summaries: &[Summary]) -> String {
    let width = summaries.iter().map(|s| s.name.len()).max().unwrap_or(0).max(10);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$} {:>5} {:>10} {:>9} {:>7} {:>10} {:>10} {:>9} {:>9} {:>8} {:>7} {:>9}",
        "PLUGINS", "RUNS", "RECOVERIES", "COMPLETED", "STALLED", "SUPERSEDED", "VIOLATIONS", "P50 MS", "P99 MS", "ATTEMPTS", "SPREAD", "ONE-ZONE"
    );
    for s in summaries {
        let _ = writeln!(
            out,
            "{:<width$} {:>5} {:>10} {:>9} {:>7} {:>10} {:>10} {:>9.1} {:>9.1} {:>8.2} {:>7.3} {:>9}",
            s.name,
            s.runs,
            s.recoveries,
            s.completed,
            s.stalled,
            s.superseded,
            s.violations,
            s.recovery_p50_ms,
            s.recovery_p99_ms,
            s.attempts_per_recovery,
            s.placement_spread,
            s.one_zone_layouts
        );
    }
    for s in summaries {
        let r = &s.replicas;
        let _ = writeln!(
            out,
            "{:<width$} replica recovery: {} catch-ups, {} truncations, {} rebuilds ({} escalated), {} completed",
            s.name, r.catch_ups, r.truncations, r.rebuilds, r.escalations, r.completed
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
