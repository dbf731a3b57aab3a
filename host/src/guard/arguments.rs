//! S6: the bounds on what a plugin may ask of the host in one call. An
//! argument past them is refused with the rule, never acted on and never a
//! panic.

use std::collections::HashSet;

use super::rules::{Invariant, Refusal};
use crate::bindings::types::{PlacementRequest, Version};

/// The most service ids one `lock` or `unlock` names, and the most sources
/// or shards one `recover-log` names.
pub const MAX_IDS: usize = 100_000;

/// The most vacancies one placement request asks for, over all its groups.
pub const MAX_VACANCIES: u64 = 100_000;

/// The longest a plugin may sleep in one `clock.sleep-ms`, in milliseconds:
/// a longer sleep is cut to this.
pub const MAX_SLEEP_MS: u64 = 10_000;

/// Refuses a list longer than [`MAX_IDS`].
pub fn bounded(what: &str, len: usize) -> Result<(), Refusal> {
    if len > MAX_IDS {
        return Err(Refusal::new(Invariant::ArgumentsChecked, format!("{len} {what} in one call, more than the {MAX_IDS} allowed")));
    }
    Ok(())
}

/// For each id, whether it repeats an earlier one in the list.
pub fn repeats(ids: &[String]) -> Vec<bool> {
    let mut seen = HashSet::with_capacity(ids.len());
    ids.iter().map(|id| !seen.insert(id.as_str())).collect()
}

/// A refusal of a repeated id.
pub fn repeated(id: &str) -> Refusal {
    Refusal::new(Invariant::ArgumentsChecked, format!("{id} is named twice in one call"))
}

/// Refuses an inverted version range.
pub fn range(first: Version, last: Version) -> Result<(), Refusal> {
    if first > last {
        return Err(Refusal::new(Invariant::ArgumentsChecked, format!("inverted version range [{first}, {last}]")));
    }
    Ok(())
}

/// Refuses a list holding the same value twice.
pub fn distinct<T: std::hash::Hash + Eq + std::fmt::Display>(what: &str, items: &[T]) -> Result<(), Refusal> {
    let mut seen = HashSet::with_capacity(items.len());
    match items.iter().find(|item| !seen.insert(*item)) {
        Some(item) => Err(Refusal::new(Invariant::ArgumentsChecked, format!("{what} {item} is named twice"))),
        None => Ok(()),
    }
}

/// Refuses a placement request for more than [`MAX_VACANCIES`] vacancies.
pub fn placement_size(request: &PlacementRequest) -> Result<(), Refusal> {
    let total: u64 = request.vacancies.iter().map(|v| u64::from(v.count)).sum();
    if total > MAX_VACANCIES {
        return Err(Refusal::new(
            Invariant::ArgumentsChecked,
            format!("a placement request for {total} vacancies, more than the {MAX_VACANCIES} allowed"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_marked_after_their_first_occurrence() {
        let ids: Vec<String> = ["a", "b", "a", "a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(repeats(&ids), [false, false, true, true]);
        assert!(range(3, 2).is_err() && range(2, 2).is_ok());
        assert!(distinct("shard", &[1u32, 2, 1]).unwrap_err().message.contains("shard 1"));
        assert!(bounded("ids", MAX_IDS + 1).is_err());
    }
}
