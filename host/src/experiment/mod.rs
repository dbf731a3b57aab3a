//! Experiments: many seeded simulation runs of one or two plugin sets, and
//! what they add up to.
//!
//! - [`run_seeds`] runs a range of seeds on a few threads (each run on its
//!   own virtual clock, so threads change nothing but the wall time);
//! - [`summary`] turns the runs into the figures of the summary table;
//! - [`html`] writes the self-contained report page.

pub mod html;
pub mod summary;

use std::ops::Range;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use summary::Summary;

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

/// Runs every seed of `seeds` with `plugins` on `threads` threads, calling
/// `progress` after each run. The runs come back in seed order.
pub fn run_seeds(
    seeds: &Seeds,
    config: &SimConfig,
    plugins: Arc<dyn Plugins>,
    threads: usize,
    progress: &(dyn Fn(&SimRun) + Sync),
) -> Result<Vec<SimRun>, SimError> {
    let next = AtomicU64::new(seeds.0.start);
    let results: Mutex<Vec<Result<SimRun, SimError>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.0.end {
                        break;
                    }
                    let run = simulate(seed, config, plugins.clone());
                    if let Ok(run) = &run {
                        progress(run);
                    }
                    let failed = run.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(run);
                    if failed {
                        // Stop every thread: the other seeds would fail alike.
                        next.store(seeds.0.end, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let mut runs = results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().collect::<Result<Vec<_>, _>>()?;
    runs.sort_by_key(|r| r.seed);
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
