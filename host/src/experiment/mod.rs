//! Experiments: many seeded simulation runs of one or two plugin sets, and
//! what they add up to.
//!
//! - [`stream_seeds`] runs a range of seeds on a few threads (each run on
//!   its own virtual clock, so threads change nothing but the wall time)
//!   and hands the runs on in seed order;
//! - [`summary`] adds the runs up, one at a time, into the figures of the
//!   summary table;
//! - [`report`] keeps what the report shows of the runs and streams every
//!   run to the JSON report, which [`report::merge`] reads back to add up
//!   experiments run apart;
//! - [`html`] writes the self-contained report page.

pub mod html;
pub mod report;
pub mod summary;

use std::collections::BTreeMap;
use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use report::{Report, ReportBuilder, ReportError, Setup};
pub use summary::{Summary, Tally};

use crate::registry::Plugins;
use crate::sim::{SimConfig, SimError, SimRun, simulate};

/// A range of seeds, written `A..B` (B excluded), `A..=B`, or one seed `A`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seeds(pub Range<u64>);

impl FromStr for Seeds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |s: &str| s.trim().parse::<u64>().map_err(|_| format!("`{s}` is not a seed (a whole number)"));
        let range = if let Some((a, b)) = text.split_once("..=") {
            number(a)?..number(b)?.checked_add(1).ok_or("the last seed is too large")?
        } else if let Some((a, b)) = text.split_once("..") {
            number(a)?..number(b)?
        } else {
            let a = number(text)?;
            a..a.checked_add(1).ok_or("the seed is too large")?
        };
        if range.is_empty() {
            return Err(format!("`{text}` holds no seed (write A..B with A < B, or A..=B)"));
        }
        Ok(Seeds(range))
    }
}

impl Seeds {
    /// How many seeds.
    pub fn len(&self) -> u64 {
        self.0.end - self.0.start
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs every seed of `seeds` with `plugins` on `threads` threads and hands
/// each run to `sink` in seed order, as soon as every seed before it is
/// done. A run is held only while an earlier seed is still running, so the
/// memory an experiment needs does not grow with its range of seeds.
pub fn stream_seeds(
    seeds: &Seeds,
    config: &SimConfig,
    plugins: Arc<dyn Plugins>,
    threads: usize,
    sink: &mut (dyn FnMut(SimRun) + Send),
) -> Result<(), SimError> {
    struct InOrder<'s> {
        next: u64,
        waiting: BTreeMap<u64, SimRun>,
        sink: &'s mut (dyn FnMut(SimRun) + Send),
        failed: Option<SimError>,
    }
    let next_seed = AtomicU64::new(seeds.0.start);
    let order = Mutex::new(InOrder { next: seeds.0.start, waiting: BTreeMap::new(), sink, failed: None });
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next_seed.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.0.end {
                        break;
                    }
                    let run = simulate(seed, config, plugins.clone());
                    let mut order = order.lock().unwrap_or_else(|e| e.into_inner());
                    match run {
                        Ok(run) => {
                            order.waiting.insert(seed, run);
                            loop {
                                let next = order.next;
                                let Some(run) = order.waiting.remove(&next) else { break };
                                order.next += 1;
                                (order.sink)(run);
                            }
                        }
                        Err(error) => {
                            // Stop every thread: the other seeds would fail alike.
                            order.failed.get_or_insert(error);
                            next_seed.store(seeds.0.end, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    match order.into_inner().unwrap_or_else(|e| e.into_inner()).failed {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Runs every seed of `seeds` as [`stream_seeds`] does, calling `progress`
/// after each run, and keeps them all: for tests and small ranges.
pub fn run_seeds(
    seeds: &Seeds,
    config: &SimConfig,
    plugins: Arc<dyn Plugins>,
    threads: usize,
    progress: &(dyn Fn(&SimRun) + Sync),
) -> Result<Vec<SimRun>, SimError> {
    let mut runs = Vec::new();
    stream_seeds(seeds, config, plugins, threads, &mut |run| {
        progress(&run);
        runs.push(run);
    })?;
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_and_bad_ones_say_why() {
        assert_eq!("3..7".parse::<Seeds>().unwrap(), Seeds(3..7));
        assert_eq!("3..=7".parse::<Seeds>().unwrap(), Seeds(3..8));
        assert_eq!("42".parse::<Seeds>().unwrap(), Seeds(42..43));
        assert!("7..3".parse::<Seeds>().unwrap_err().contains("holds no seed"));
        assert!("a..3".parse::<Seeds>().unwrap_err().contains("`a` is not a seed"));
    }
}
