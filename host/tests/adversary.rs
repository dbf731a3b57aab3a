//! The adversary against the guard: thousands of seeded attacks from every
//! slot (random host calls, random arguments, random steps and state edits,
//! random placements and replica plans), none of which may break S1–S6.
//! The checker judges each run apart from the guard, from what the client
//! saw and what the cluster holds.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use ratchet::experiment::{Seeds, run_seeds};
use ratchet::guard::Invariant;
use ratchet::registry::{Registry, all_slots};
use ratchet::runtime::Limits;
use ratchet::sim::{AdversarySlot, FaultProfile, Property, SimConfig, SimRun};

fn plugins() -> Arc<Registry> {
    let registry = Registry::with_defaults(common::fuel_runtime()).unwrap();
    for slot in all_slots() {
        registry.set_limits(slot, Limits::fuel_only(SimConfig::default().fuel)).unwrap();
    }
    Arc::new(registry)
}

fn adversarial_runs(seeds: &str, profile: &str, retention: Option<u64>) -> Vec<SimRun> {
    let config = SimConfig {
        profile: FaultProfile::named(profile).unwrap(),
        retention,
        adversary: Some(AdversarySlot::All),
        ..SimConfig::default()
    };
    run_seeds(&seeds.parse::<Seeds>().unwrap(), &config, plugins(), 2, &|_| {}).unwrap()
}

fn assert_safe(runs: &[SimRun]) {
    let failing: Vec<String> = runs
        .iter()
        .filter(|r| !r.violations.is_empty())
        .map(|r| format!("seed {} (adversary in {:?}): {:?}", r.seed, r.adversary, r.violations))
        .collect();
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

/// The rules the guard refused a call under, over every run.
fn refused_rules(runs: &[SimRun]) -> BTreeSet<Invariant> {
    runs.iter().flat_map(|r| r.refusals.keys().copied()).collect()
}

#[test]
fn two_thousand_adversarial_seeds_across_every_slot_break_no_guarantee() {
    let runs = adversarial_runs("0..2000", "default", None);
    assert_safe(&runs);

    // The adversary took every slot, and what it tried reached the guard
    // under every rule a plugin can break.
    let slots: BTreeSet<&str> = runs.iter().filter_map(|r| r.adversary.as_deref()).collect();
    assert_eq!(slots.len(), all_slots().count(), "{slots:?}");
    let refused = refused_rules(&runs);
    use Invariant::*;
    let rules = [
        SelectiveLocking,
        LockedBeforeUse,
        LayoutClosure,
        FencedPersistence,
        AcknowledgedWritesSurvive,
        VersionsIssuedOnce,
        FaithfulLayout,
        KnownAcknowledgements,
        ReplicasKeepVersions,
        ArgumentsChecked,
    ];
    for rule in rules {
        assert!(refused.contains(&rule), "no attack was refused under {rule}: {refused:?}");
    }
    // Not all of it was refused: attacks got layouts persisted, and the
    // cluster served again once the default plugins were back.
    let persisted_while_armed = runs
        .iter()
        .filter(|r| {
            let armed = r.trace.iter().position(|l| l.contains("adversary takes"));
            let left = r.trace.iter().rposition(|l| l.contains("adversary leaves"));
            matches!((armed, left), (Some(a), Some(b)) if r.trace[a..b].iter().any(|l| l.contains("persisted the layout")))
        })
        .count();
    assert!(persisted_while_armed > 100, "only {persisted_while_armed} runs persisted a layout while attacked");
    let settled = runs.iter().filter(|r| r.settled).count();
    assert!(settled > runs.len() / 2, "only {settled} of {} runs served again", runs.len());
}

#[test]
fn the_adversary_breaks_nothing_when_logs_are_popped() {
    assert_safe(&adversarial_runs("0..400", "chaos", Some(20)));
}

#[test]
fn the_adversary_built_as_a_component_breaks_nothing_either() {
    // The component seeds itself from the epoch, the attempt and the
    // host's clock, and stays in its slot for the whole run: recoveries
    // may never complete, and only safety is judged.
    let registry = Registry::with_defaults(common::fuel_runtime()).unwrap();
    registry.load_file("assemble-layout", std::path::Path::new(ratchet::components::fixtures::ADVERSARY)).unwrap();
    for slot in all_slots() {
        registry.set_limits(slot, Limits::fuel_only(SimConfig::default().fuel)).unwrap();
    }
    let config = SimConfig { profile: FaultProfile::named("default").unwrap(), ..SimConfig::default() };
    let runs = run_seeds(&"0..100".parse::<Seeds>().unwrap(), &config, Arc::new(registry), 2, &|_| {}).unwrap();
    let unsafe_runs: Vec<String> = runs
        .iter()
        .filter(|r| r.violations.iter().any(|v| v.rule != Property::Liveness))
        .map(|r| format!("seed {}: {:?}", r.seed, r.violations))
        .collect();
    assert!(unsafe_runs.is_empty(), "{}", unsafe_runs.join("\n"));
    let refused = refused_rules(&runs);
    // Its layouts reach the guard's layout checks: I6 (closure) or S3
    // (faithfulness), whichever a seed's layout breaks first.
    assert!(
        refused.contains(&Invariant::FaithfulLayout) || refused.contains(&Invariant::LayoutClosure),
        "the component's layouts reached the guard: {refused:?}"
    );
}
