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
//! - [`compare`] says whether two sets really differ, with bootstrap
//!   confidence intervals over the seeds;
//! - [`html`] writes the self-contained report page.

pub mod compare;
pub mod html;
pub mod report;
pub mod summary;

use std::collections::BTreeMap;
use std::ops::{ControlFlow, Range};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

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
/// done. No thread runs more than a few seeds ahead of the oldest one still
/// running, so the runs held back are few and the memory an experiment
/// needs does not grow with its range of seeds. The sink stops the
/// experiment by returning `Break`; a seed that cannot be simulated stops
/// it with its error; a thread that panics stops the others before the
/// panic goes on.
pub fn stream_seeds(
    seeds: &Seeds,
    config: &SimConfig,
    plugins: Arc<dyn Plugins>,
    threads: usize,
    sink: &mut (dyn FnMut(SimRun) -> ControlFlow<()> + Send),
) -> Result<(), SimError> {
    struct InOrder<'s> {
        next: u64,
        waiting: BTreeMap<u64, SimRun>,
        sink: &'s mut (dyn FnMut(SimRun) -> ControlFlow<()> + Send),
        failed: Option<SimError>,
        stopped: bool,
    }
    struct Shared<'s> {
        order: Mutex<InOrder<'s>>,
        /// Signalled whenever `next` moves or the experiment stops.
        moved: Condvar,
        next_seed: AtomicU64,
        end: u64,
    }
    impl<'s> Shared<'s> {
        fn lock(&self) -> std::sync::MutexGuard<'_, InOrder<'s>> {
            self.order.lock().unwrap_or_else(|e| e.into_inner())
        }
        /// The next seed to run, if any is left.
        fn take(&self) -> Option<u64> {
            self.next_seed.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| (s < self.end).then(|| s + 1)).ok()
        }
        fn stop(&self, order: &mut InOrder<'s>) {
            order.stopped = true;
            self.next_seed.store(self.end, Ordering::Relaxed);
            self.moved.notify_all();
        }
    }
    /// Stops every thread when the one holding it unwinds.
    struct StopOnPanic<'a, 's>(&'a Shared<'s>);
    impl Drop for StopOnPanic<'_, '_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut order = self.0.lock();
                self.0.stop(&mut order);
            }
        }
    }

    let threads = threads.max(1);
    let ahead = 4 * threads as u64;
    let shared = Shared {
        order: Mutex::new(InOrder { next: seeds.0.start, waiting: BTreeMap::new(), sink, failed: None, stopped: false }),
        moved: Condvar::new(),
        next_seed: AtomicU64::new(seeds.0.start),
        end: seeds.0.end,
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let _stop = StopOnPanic(&shared);
                while let Some(seed) = shared.take() {
                    {
                        let mut order = shared.lock();
                        while seed >= order.next.saturating_add(ahead) && !order.stopped {
                            order = shared.moved.wait(order).unwrap_or_else(|e| e.into_inner());
                        }
                        if order.stopped {
                            break;
                        }
                    }
                    let run = simulate(seed, config, plugins.clone());
                    let mut order = shared.lock();
                    match run {
                        Ok(run) => {
                            order.waiting.insert(seed, run);
                            while !order.stopped {
                                let next = order.next;
                                let Some(run) = order.waiting.remove(&next) else { break };
                                order.next += 1;
                                if (order.sink)(run).is_break() {
                                    shared.stop(&mut order);
                                }
                            }
                            shared.moved.notify_all();
                        }
                        Err(error) => {
                            // Stop every thread: the other seeds would fail alike.
                            order.failed.get_or_insert(error);
                            shared.stop(&mut order);
                        }
                    }
                }
            });
        }
    });
    match shared.order.into_inner().unwrap_or_else(|e| e.into_inner()).failed {
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
        ControlFlow::Continue(())
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
