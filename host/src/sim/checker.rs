//! The checker: after every run, the run's facts are judged against the
//! properties a recovery must keep, whatever plugins ran.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::history::Facts;
use crate::bindings::types::{ShardTag, Version};
use crate::guard::named_services;

/// One broken property.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The property: `acked-write-lost`, `epochs-increase`,
    /// `one-layout-per-epoch`, `layout-names-held-services`, `fencing`,
    /// `replicas-agree` or `liveness`.
    pub rule: &'static str,
    /// What happened.
    pub detail: String,
}

impl Violation {
    /// A violation of `rule`.
    pub fn new(rule: &'static str, detail: impl Into<String>) -> Self {
        Violation { rule, detail: detail.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.detail)
    }
}

/// The most lost keys named in one violation.
const NAMED_KEYS: usize = 5;

/// Judges a run by its `facts` and the acknowledged keys that could not be
/// read back (`lost`).
pub fn check(facts: &Facts, lost: &[String]) -> Vec<Violation> {
    let mut violations = Vec::new();
    if !lost.is_empty() {
        let named = lost.iter().take(NAMED_KEYS).cloned().collect::<Vec<_>>().join(", ");
        violations.push(Violation::new("acked-write-lost", format!("{} acknowledged writes unreadable: {named}", lost.len())));
    }
    if let Some(pair) = facts.issued.windows(2).find(|w| w[1] <= w[0]) {
        violations.push(Violation::new("epochs-increase", format!("epoch {} issued after epoch {}", pair[1], pair[0])));
    }
    if let Some(pair) = facts.persisted.windows(2).find(|w| w[1].epoch <= w[0].epoch) {
        violations.push(Violation::new(
            "epochs-increase",
            format!("the layout of epoch {} persisted after that of epoch {}", pair[1].epoch, pair[0].epoch),
        ));
    }
    let mut per_epoch: BTreeMap<u64, usize> = BTreeMap::new();
    for layout in &facts.persisted {
        *per_epoch.entry(layout.epoch).or_default() += 1;
    }
    for (epoch, count) in per_epoch.into_iter().filter(|(_, n)| *n > 1) {
        violations.push(Violation::new("one-layout-per-epoch", format!("{count} layouts persisted for epoch {epoch}")));
    }
    let none = BTreeSet::new();
    for layout in &facts.persisted {
        let locked = facts.locked.get(&layout.epoch).unwrap_or(&none);
        let recruited = facts.recruited.get(&layout.epoch).unwrap_or(&none);
        let foreign: Vec<String> =
            named_services(layout).into_iter().filter(|id| !locked.contains(id) && !recruited.contains(id)).collect();
        if !foreign.is_empty() {
            violations.push(Violation::new(
                "layout-names-held-services",
                format!("the layout of epoch {} names {} that epoch never locked or recruited", layout.epoch, foreign.join(", ")),
            ));
        }
    }
    for stale in &facts.stale_work {
        violations.push(Violation::new("fencing", stale.clone()));
    }
    violations
}

/// Every live replica of a team holds the same data at the same version:
/// once the run settled, a replica caught up, truncated or rebuilt must be
/// identical to its teammates.
pub fn check_replicas(teams: &[(ShardTag, Vec<(String, Version, BTreeMap<String, String>)>)]) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (tag, members) in teams {
        let Some((first, version, data)) = members.first() else { continue };
        for (id, v, d) in &members[1..] {
            if v != version || d != data {
                let differ = d.iter().filter(|(k, value)| data.get(*k) != Some(*value)).count()
                    + data.keys().filter(|k| !d.contains_key(*k)).count();
                violations.push(Violation::new(
                    "replicas-agree",
                    format!("team {tag}: {id} at version {v} differs from {first} at {version} in {differ} keys"),
                ));
            }
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::types::{Layout, LogAssignment};

    fn layout(epoch: u64, logs: &[&str]) -> Layout {
        Layout {
            epoch,
            sequencer: None,
            commit_proxies: vec![],
            resolvers: vec![],
            logs: logs.iter().map(|id| LogAssignment { id: id.to_string(), tags: vec![0] }).collect(),
            storage_teams: vec![],
            services: vec![],
            recovery_version: 0,
        }
    }

    fn rules(facts: &Facts, lost: &[String]) -> Vec<&'static str> {
        check(facts, lost).into_iter().map(|v| v.rule).collect()
    }

    #[test]
    fn replicas_that_differ_are_named() {
        let data = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        let same = data(&[("a", "1"), ("b", "2")]);
        let agreeing = vec![(1, vec![("s1".to_string(), 5, same.clone()), ("s2".to_string(), 5, same.clone())])];
        assert!(check_replicas(&agreeing).is_empty());
        let apart = vec![(1, vec![("s1".to_string(), 5, same.clone()), ("s2".to_string(), 5, data(&[("a", "1")]))])];
        let found = check_replicas(&apart);
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.contains("s2 at version 5 differs from s1 at 5 in 1 keys"), "{}", found[0]);
        let behind = vec![(1, vec![("s1".to_string(), 5, same.clone()), ("s2".to_string(), 4, same)])];
        assert_eq!(check_replicas(&behind)[0].rule, "replicas-agree");
    }

    #[test]
    fn a_clean_history_passes() {
        let mut facts = Facts { issued: vec![1, 2], persisted: vec![layout(1, &["l1"]), layout(2, &["l1"])], ..Facts::default() };
        facts.recruited.entry(1).or_default().insert("l1".into());
        facts.locked.entry(2).or_default().insert("l1".into());
        assert!(check(&facts, &[]).is_empty());
    }

    #[test]
    fn each_broken_property_is_named() {
        let mut facts = Facts {
            issued: vec![1, 3, 3],
            persisted: vec![layout(3, &["l1"]), layout(3, &["l1"]), layout(2, &[])],
            ..Facts::default()
        };
        facts.stale_work.push("l1 accepted push from epoch 1 after epoch 3 had locked it".into());
        let found = rules(&facts, &["k1".into()]);
        assert_eq!(
            found,
            ["acked-write-lost", "epochs-increase", "epochs-increase", "one-layout-per-epoch", "layout-names-held-services", "layout-names-held-services", "fencing"]
        );
    }
}
