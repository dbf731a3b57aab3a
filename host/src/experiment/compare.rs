//! Whether two plugin sets really differ: for each figure of the summary
//! that a comparison is about, the difference between the sets with a 95 %
//! confidence interval from a paired bootstrap over the seeds.
//!
//! Both sets run the same seeds, so a seed is the unit that is resampled:
//! one resample draws as many seeds as were run, with replacement, and
//! computes each figure of both sets over the seeds drawn. The interval is
//! the 2.5th to 97.5th percentile of the differences over the resamples.
//! The resampling generator is seeded, so the same experiment gives the
//! same intervals.

use super::summary;
use crate::sim::rng::SimRng;
use crate::sim::{RecoveryEnd, SimRun};

/// How many resamples the bootstrap draws.
pub const RESAMPLES: usize = 2000;

/// The seed of the resampling generator.
const RESAMPLING_SEED: u64 = 0x7261_7463_6865_7421;

/// What one seed's run contributes to the compared figures.
#[derive(Clone, Debug, Default)]
struct SeedFigures {
    seed: u64,
    /// Virtual ms of each completed recovery (the boot excluded).
    times: Vec<f64>,
    /// Attempts over those recoveries.
    attempts: u64,
    /// The final layout's zone spread, when it has one.
    spread: Option<f64>,
}

/// The per-seed figures of one set, in seed order.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    seeds: Vec<SeedFigures>,
}

impl Samples {
    /// Adds one run.
    pub fn add(&mut self, run: &SimRun) {
        let mut figures = SeedFigures { seed: run.seed, spread: run.placement.as_ref().map(|p| p.spread), ..SeedFigures::default() };
        for recovery in run.recoveries.iter().filter(|r| r.trigger != "boot" && r.end == RecoveryEnd::Completed) {
            figures.times.push(recovery.ms());
            figures.attempts += u64::from(recovery.attempts);
        }
        self.seeds.push(figures);
    }
}

/// A figure the comparison is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Figure {
    /// The median recovery time, virtual ms.
    RecoveryP50Ms,
    /// The 99th percentile recovery time, virtual ms.
    RecoveryP99Ms,
    /// Attempts per completed recovery.
    AttemptsPerRecovery,
    /// Zone spread of the final layouts (1.0 best).
    PlacementSpread,
}

impl Figure {
    /// Every figure, in the order the table shows them.
    pub const ALL: [Figure; 4] = [Figure::RecoveryP50Ms, Figure::RecoveryP99Ms, Figure::AttemptsPerRecovery, Figure::PlacementSpread];

    /// Its name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Figure::RecoveryP50Ms => "recovery p50 ms",
            Figure::RecoveryP99Ms => "recovery p99 ms",
            Figure::AttemptsPerRecovery => "attempts per recovery",
            Figure::PlacementSpread => "placement spread",
        }
    }

    /// The figure over the seeds at `picked` (indices into `seeds`), or
    /// none when those seeds hold nothing it is computed from.
    fn of(self, seeds: &[SeedFigures], picked: &[usize], scratch: &mut Vec<f64>) -> Option<f64> {
        match self {
            Figure::RecoveryP50Ms | Figure::RecoveryP99Ms => {
                scratch.clear();
                scratch.extend(picked.iter().flat_map(|&i| seeds[i].times.iter().copied()));
                let p = if self == Figure::RecoveryP50Ms { 50.0 } else { 99.0 };
                percentile(scratch, p)
            }
            Figure::AttemptsPerRecovery => {
                let completed: usize = picked.iter().map(|&i| seeds[i].times.len()).sum();
                let attempts: u64 = picked.iter().map(|&i| seeds[i].attempts).sum();
                (completed > 0).then(|| attempts as f64 / completed as f64)
            }
            Figure::PlacementSpread => {
                let spreads: Vec<f64> = picked.iter().filter_map(|&i| seeds[i].spread).collect();
                (!spreads.is_empty()).then(|| spreads.iter().sum::<f64>() / spreads.len() as f64)
            }
        }
    }
}

/// The `p`th percentile of `values` (reordered in place), at the rank the
/// summary table takes.
fn percentile(values: &mut [f64], p: f64) -> Option<f64> {
    let rank = summary::nearest_rank(p, values.len()).checked_sub(1)?;
    let (_, nth, _) = values.select_nth_unstable_by(rank, f64::total_cmp);
    Some(*nth)
}

/// One figure's difference between the sets.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Difference {
    /// The figure.
    pub figure: Figure,
    /// Its value for the baseline set, over every seed.
    pub baseline: Option<f64>,
    /// Its value for the compared set.
    pub compared: Option<f64>,
    /// `compared - baseline`.
    pub difference: Option<f64>,
    /// The 95 % bootstrap interval of the difference, when enough
    /// resamples hold the figure for both sets.
    pub interval: Option<(f64, f64)>,
}

impl Difference {
    /// Whether the interval excludes zero.
    pub fn significant(&self) -> bool {
        self.interval.is_some_and(|(low, high)| low > 0.0 || high < 0.0)
    }

    /// The table's cells: the figure, baseline, compare, difference, the
    /// interval and the verdict, as the printed and the HTML tables show
    /// them.
    pub fn cells(&self) -> [String; 6] {
        let number = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let interval = self.interval.map_or("-".to_string(), |(low, high)| format!("[{low:.3}, {high:.3}]"));
        [self.figure.label().to_string(), number(self.baseline), number(self.compared), number(self.difference), interval, self.verdict()]
    }

    /// What the table says of it.
    pub fn verdict(&self) -> String {
        match (self.interval, self.difference) {
            (None, _) | (_, None) => "not enough data".into(),
            (Some(_), Some(_)) if !self.significant() => "no significant difference".into(),
            (Some(_), Some(d)) => format!("compare is {}", if d > 0.0 { "higher" } else { "lower" }),
        }
    }
}

/// The comparison of two sets.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// Seeds compared.
    pub seeds: usize,
    /// Resamples drawn.
    pub resamples: usize,
    /// Each figure's difference.
    pub differences: Vec<Difference>,
}

/// Why two sets cannot be compared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompareError {
    /// The sets ran different seeds, so no seed pairs them.
    #[error("the sets ran different seeds ({0} against {1} runs, or in another order): a paired comparison needs the same seeds")]
    Unpaired(usize, usize),
}

/// Compares `compared` against `baseline`, which ran the same seeds.
pub fn compare(baseline: &Samples, compared: &Samples) -> Result<Comparison, CompareError> {
    let (a, b) = (&baseline.seeds, &compared.seeds);
    if a.len() != b.len() || a.iter().zip(b).any(|(x, y)| x.seed != y.seed) {
        return Err(CompareError::Unpaired(a.len(), b.len()));
    }
    let n = a.len();
    let all: Vec<usize> = (0..n).collect();
    let mut scratch = Vec::new();
    let mut rng = SimRng::new(RESAMPLING_SEED);
    let mut deltas: Vec<Vec<f64>> = vec![Vec::with_capacity(RESAMPLES); Figure::ALL.len()];
    let mut picked = vec![0; n];
    for _ in 0..RESAMPLES {
        if n == 0 {
            break;
        }
        for slot in picked.iter_mut() {
            *slot = rng.below(n as u64) as usize;
        }
        for (figure, deltas) in Figure::ALL.iter().zip(deltas.iter_mut()) {
            if let (Some(x), Some(y)) = (figure.of(a, &picked, &mut scratch), figure.of(b, &picked, &mut scratch)) {
                deltas.push(y - x);
            }
        }
    }
    let differences = Figure::ALL
        .iter()
        .zip(deltas)
        .map(|(&figure, mut deltas)| {
            let baseline = figure.of(a, &all, &mut scratch);
            let compared = figure.of(b, &all, &mut scratch);
            // An interval from fewer than nine in ten resamples would be
            // drawn from the lucky ones only.
            let interval = (deltas.len() * 10 >= RESAMPLES * 9).then(|| {
                deltas.sort_by(f64::total_cmp);
                let at = |q: f64| deltas[((q * (deltas.len() - 1) as f64).round() as usize).min(deltas.len() - 1)];
                (at(0.025), at(0.975))
            });
            let difference = baseline.zip(compared).map(|(x, y)| y - x);
            Difference { figure, baseline, compared, difference, interval }
        })
        .collect();
    Ok(Comparison { seeds: n, resamples: RESAMPLES, differences })
}

/// The comparison as the experiment prints it, below the summary table.
pub fn table(comparison: &Comparison) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "compare - baseline, with its 95 % confidence interval (paired bootstrap over {} seeds, {} resamples, seeded):\n",
        comparison.seeds, comparison.resamples
    );
    let _ = writeln!(out, "{:<22} {:>10} {:>10} {:>11}  {:<22} VERDICT", "FIGURE", "BASELINE", "COMPARE", "DIFFERENCE", "95% CI");
    for d in &comparison.differences {
        let [figure, baseline, compared, difference, interval, verdict] = d.cells();
        let _ = writeln!(out, "{figure:<22} {baseline:>10} {compared:>10} {difference:>11}  {interval:<22} {verdict}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(per_seed: &[(u64, &[f64], u64, Option<f64>)]) -> Samples {
        Samples {
            seeds: per_seed
                .iter()
                .map(|&(seed, times, attempts, spread)| SeedFigures { seed, times: times.to_vec(), attempts, spread })
                .collect(),
        }
    }

    /// `n` seeds whose recovery takes `base + noise` ms, the noise spread
    /// evenly over [-5, 5) in an order `stride` sets.
    fn noisy(n: u64, base: f64, attempts: u64, stride: u64) -> Samples {
        let figures: Vec<(u64, Vec<f64>)> = (0..n).map(|s| (s, vec![base + ((s * stride) % 100) as f64 / 10.0 - 5.0])).collect();
        Samples {
            seeds: figures
                .into_iter()
                .map(|(seed, times)| SeedFigures { seed, times, attempts, spread: Some(0.5 + (seed % 2) as f64 / 4.0) })
                .collect(),
        }
    }

    #[test]
    fn a_real_shift_is_significant_and_no_shift_is_not() {
        let baseline = noisy(200, 100.0, 1, 37);
        let slower = noisy(200, 120.0, 2, 53);
        let comparison = compare(&baseline, &slower).unwrap();
        let p50 = &comparison.differences[0];
        assert_eq!(p50.figure, Figure::RecoveryP50Ms);
        assert!((p50.difference.unwrap() - 20.0).abs() < 1e-9, "{p50:?}");
        let (low, high) = p50.interval.unwrap();
        assert!(low > 0.0 && low <= 20.0 && high >= 20.0, "{p50:?}");
        assert_eq!(p50.verdict(), "compare is higher");
        assert_eq!(comparison.differences[2].verdict(), "compare is higher", "attempts 1 -> 2");
        // The spread is the same per seed in both: the interval is [0, 0].
        assert_eq!(comparison.differences[3].interval, Some((0.0, 0.0)));
        assert_eq!(comparison.differences[3].verdict(), "no significant difference");

        let same = compare(&baseline, &noisy(200, 100.0, 1, 53)).unwrap();
        assert!(same.differences.iter().all(|d| !d.significant()), "{same:?}");
        assert!(table(&same).contains("no significant difference"));
    }

    #[test]
    fn the_same_inputs_give_the_same_intervals() {
        let (a, b) = (noisy(50, 10.0, 1, 37), noisy(50, 11.0, 1, 53));
        assert_eq!(compare(&a, &b).unwrap().differences, compare(&a, &b).unwrap().differences);
    }

    #[test]
    fn a_figure_without_data_says_so_and_unpaired_sets_are_refused() {
        let none = samples(&[(1, &[], 0, None), (2, &[], 0, None)]);
        let comparison = compare(&none, &none).unwrap();
        assert!(comparison.differences.iter().all(|d| d.verdict() == "not enough data"));
        let other = samples(&[(1, &[], 0, None), (3, &[], 0, None)]);
        assert_eq!(compare(&none, &other).unwrap_err(), CompareError::Unpaired(2, 2));
    }

    #[test]
    fn percentiles_take_the_nearest_rank_as_the_summary_does() {
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut values, 50.0), Some(50.0));
        assert_eq!(percentile(&mut values, 99.0), Some(99.0));
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
