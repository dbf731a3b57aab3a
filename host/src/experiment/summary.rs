//! The figures of a plugin set over its runs, and the table that shows them.

use std::collections::BTreeMap;
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
        let mut tally = Tally::new(name);
        for run in runs {
            tally.add(run);
        }
        tally.summary()
    }
}

/// A plugin set's figures, added up one run at a time: what an experiment
/// keeps of each run, so that its memory does not grow with the seeds.
/// Runs added in seed order give the same figures, to the last bit,
/// however they were split between experiments and merged.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    name: String,
    runs: usize,
    /// Recoveries, the boots included.
    every_recovery: usize,
    recoveries: usize,
    completed: usize,
    stalled: usize,
    superseded: usize,
    violations: usize,
    failing_seeds: Vec<u64>,
    /// Completed recoveries by virtual ms (the bits of a non-negative
    /// `f64`, which order as the numbers do): their distribution, exactly.
    times: BTreeMap<u64, usize>,
    attempts: f64,
    placements: usize,
    spread: f64,
    one_zone_layouts: usize,
    virtual_ms: f64,
    replicas: ReplicaCounts,
}

impl Tally {
    /// An empty tally of the set `name`.
    pub fn new(name: &str) -> Self {
        Tally { name: name.to_string(), ..Tally::default() }
    }

    /// Adds one run.
    pub fn add(&mut self, run: &SimRun) {
        self.runs += 1;
        self.every_recovery += run.recoveries.len();
        for recovery in run.recoveries.iter().filter(|c| c.trigger != "boot") {
            self.recoveries += 1;
            match recovery.end {
                RecoveryEnd::Completed => {
                    self.completed += 1;
                    *self.times.entry((recovery.ms() + 0.0).to_bits()).or_default() += 1;
                    self.attempts += f64::from(recovery.attempts);
                }
                RecoveryEnd::Stalled | RecoveryEnd::Failed => self.stalled += 1,
                RecoveryEnd::Superseded => self.superseded += 1,
            }
        }
        self.violations += run.violations.len();
        if !run.violations.is_empty() {
            self.failing_seeds.push(run.seed);
        }
        if let Some(placement) = &run.placement {
            self.placements += 1;
            self.spread += placement.spread;
            if placement.one_zone_teams > 0 {
                self.one_zone_layouts += 1;
            }
        }
        self.virtual_ms += run.virtual_ms;
        let sum = &mut self.replicas;
        sum.catch_ups += run.replicas.catch_ups;
        sum.truncations += run.replicas.truncations;
        sum.rebuilds += run.replicas.rebuilds;
        sum.escalations += run.replicas.escalations;
        sum.completed += run.replicas.completed;
    }

    /// Runs added.
    pub fn runs(&self) -> usize {
        self.runs
    }

    /// Recoveries of every run, the boots included.
    pub fn every_recovery(&self) -> usize {
        self.every_recovery
    }

    /// The completed recoveries' virtual ms, rising, with how many took each.
    pub fn recovery_times(&self) -> impl Iterator<Item = (f64, usize)> + '_ {
        self.times.iter().map(|(bits, count)| (f64::from_bits(*bits), *count))
    }

    /// The figures so far.
    pub fn summary(&self) -> Summary {
        let ratio = |sum: f64, n: usize| if n == 0 { 0.0 } else { sum / n as f64 };
        Summary {
            name: self.name.clone(),
            runs: self.runs,
            recoveries: self.recoveries,
            completed: self.completed,
            stalled: self.stalled,
            superseded: self.superseded,
            violations: self.violations,
            failing_seeds: self.failing_seeds.clone(),
            recovery_p50_ms: self.percentile(50.0),
            recovery_p99_ms: self.percentile(99.0),
            attempts_per_recovery: ratio(self.attempts, self.completed),
            placement_spread: ratio(self.spread, self.placements),
            one_zone_layouts: self.one_zone_layouts,
            virtual_ms: self.virtual_ms,
            replicas: self.replicas.clone(),
        }
    }

    /// The nearest-rank percentile of the completed recoveries' times.
    fn percentile(&self, p: f64) -> f64 {
        let rank = nearest_rank(p, self.completed);
        let mut seen = 0;
        for (ms, count) in self.recovery_times() {
            seen += count;
            if seen >= rank {
                return ms;
            }
        }
        0.0
    }
}

/// The 1-based rank of the `p`th percentile among `n` values (0 when none).
pub(super) fn nearest_rank(p: f64, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    (((p / 100.0) * n as f64).ceil() as usize).clamp(1, n)
}

/// The summary table, one row per plugin set.
pub fn table(summaries: &[Summary]) -> String {
    let width = summaries.iter().map(|s| s.name.len()).max().unwrap_or(0).max(10);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$} {:>5} {:>10} {:>9} {:>7} {:>10} {:>10} {:>9} {:>9} {:>8} {:>7} {:>9}",
        "PLUGINS",
        "RUNS",
        "RECOVERIES",
        "COMPLETED",
        "STALLED",
        "SUPERSEDED",
        "VIOLATIONS",
        "P50 MS",
        "P99 MS",
        "ATTEMPTS",
        "SPREAD",
        "ONE-ZONE"
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
    use crate::sim::Recovery;

    fn run(seed: u64, times: &[f64]) -> SimRun {
        let recovery = |ms: &f64| Recovery {
            director: 1,
            trigger: "crash".into(),
            competing: false,
            started_ms: 1.0,
            ended_ms: 1.0 + ms,
            end: RecoveryEnd::Completed,
            attempts: 1,
            epoch: 2,
            timeline: Vec::new(),
        };
        SimRun {
            seed,
            recoveries: times.iter().map(recovery).collect(),
            violations: Vec::new(),
            acked: 0,
            faults: 0,
            virtual_ms: 0.0,
            placement: None,
            replicas: ReplicaCounts::default(),
            adversary: None,
            settled: true,
            refusals: Default::default(),
            trace: Vec::new(),
            requests: Default::default(),
        }
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let mut tally = Tally::new("t");
        // 1..=100 ms over four runs, 50 twice, in no order.
        tally.add(&run(0, &(51..=100).rev().map(f64::from).collect::<Vec<_>>()));
        tally.add(&run(1, &(1..=25).map(f64::from).collect::<Vec<_>>()));
        tally.add(&run(2, &(26..=50).map(f64::from).collect::<Vec<_>>()));
        tally.add(&run(3, &[50.0]));
        let summary = tally.summary();
        assert_eq!(summary.completed, 101);
        // Rank ceil(0.5 * 101) = 51 of 1..=50, 50, 51..=100: the second 50.
        assert_eq!(summary.recovery_p50_ms, 50.0);
        // Rank ceil(0.99 * 101) = 100: 99.
        assert_eq!(summary.recovery_p99_ms, 99.0);
        assert_eq!(tally.recovery_times().map(|(_, n)| n).sum::<usize>(), 101);

        let mut one = Tally::new("t");
        one.add(&run(0, &[7.0]));
        assert_eq!((one.summary().recovery_p50_ms, one.summary().recovery_p99_ms), (7.0, 7.0));
        assert_eq!(Tally::new("t").summary().recovery_p50_ms, 0.0);
    }
}
