//! Each default phase declares the fields of the attempt state it reads and
//! writes (`Phase::READS`, `Phase::WRITES`); only those cross the component
//! boundary. A wrong declaration would make a phase decide on an empty field,
//! or drop what it decided. These tests run the whole pipeline natively twice
//! on the same scripted host, once handing every phase the whole state and
//! keeping all it returns, once as the host does (only the fields read in,
//! only the fields written back), and require the same decisions, the same
//! calls and the same final state.

use phase_assemble_layout::AssembleLayout;
use phase_create_vacancies::CreateVacancies;
use phase_determine_durable_version::DetermineDurableVersion;
use phase_determine_path::DeterminePath;
use phase_initialize::Initialize;
use phase_lock_services::LockServices;
use phase_persist_layout::PersistLayout;
use phase_plan_log_recovery::PlanLogRecovery;
use phase_recruit_logs::RecruitLogs;
use phase_recruit_storage::RecruitStorage;
use phase_replay_logs::ReplayLogs;
use phase_start_proxies::StartProxies;
use phase_start_resolvers::StartResolvers;
use phase_start_sequencer::StartSequencer;
use phase_validate_layout::ValidateLayout;
use ratchet_guest::testing::{ScriptedHost, old_layout, state};
use ratchet_guest::types::{AttemptState, LockInfo, LogRecoveryInfo, PhaseStep, ServiceKind, ShardRetention, StorageRecoveryInfo};
use ratchet_guest::{Phase, state_fields};

/// How a phase gets its state.
#[derive(Clone, Copy, PartialEq)]
enum Crossing {
    /// The whole state in, the whole state back.
    Whole,
    /// As through the component boundary: the fields read in, the fields
    /// written back.
    Declared,
}

fn step<P: Phase>(state: &mut AttemptState, host: &mut ScriptedHost, crossing: Crossing) -> PhaseStep {
    let step = match crossing {
        Crossing::Whole => {
            let out = P::run(state.clone(), host);
            *state = out.state;
            out.step
        }
        Crossing::Declared => {
            let sent = state_fields::masked(state, P::READS);
            let out = ratchet_guest::__private::returned(P::run(sent, host), P::WRITES);
            state_fields::merge(state, out.state, &out.written);
            out.step
        }
    };
    // The new layout is the host's: what was staged, as the director sets it.
    if host.staged.is_some() {
        state.new_layout = host.staged.clone();
    }
    step
}

/// Runs the pipeline from validate-layout to its end; returns the steps
/// taken, the final state and every host call.
fn pipeline(start: AttemptState, mut host: ScriptedHost, crossing: Crossing) -> (Vec<String>, AttemptState, Vec<String>) {
    let mut state = start;
    let mut slot = "validate-layout".to_string();
    let mut steps = Vec::new();
    for _ in 0..20 {
        let h = &mut host;
        let s = &mut state;
        let next = match slot.as_str() {
            "validate-layout" => step::<ValidateLayout>(s, h, crossing),
            "lock-services" => step::<LockServices>(s, h, crossing),
            "determine-path" => step::<DeterminePath>(s, h, crossing),
            "initialize" => step::<Initialize>(s, h, crossing),
            "plan-log-recovery" => step::<PlanLogRecovery>(s, h, crossing),
            "create-vacancies" => step::<CreateVacancies>(s, h, crossing),
            "determine-durable-version" => step::<DetermineDurableVersion>(s, h, crossing),
            "recruit-logs" => step::<RecruitLogs>(s, h, crossing),
            "recruit-storage" => step::<RecruitStorage>(s, h, crossing),
            "replay-logs" => step::<ReplayLogs>(s, h, crossing),
            "start-sequencer" => step::<StartSequencer>(s, h, crossing),
            "start-proxies" => step::<StartProxies>(s, h, crossing),
            "start-resolvers" => step::<StartResolvers>(s, h, crossing),
            "assemble-layout" => step::<AssembleLayout>(s, h, crossing),
            "persist-layout" => step::<PersistLayout>(s, h, crossing),
            other => panic!("unknown phase {other}"),
        };
        steps.push(format!("{slot}: {next:?}"));
        match next {
            PhaseStep::Next(next) => slot = next,
            _ => break,
        }
    }
    (steps, state, host.calls)
}

/// The same pipeline both ways gives the same result, and completes.
fn assert_declarations_hold(start: AttemptState, host: ScriptedHost) -> AttemptState {
    let (whole_steps, whole, whole_calls) = pipeline(start.clone(), host_copy(&host), Crossing::Whole);
    let (steps, declared, calls) = pipeline(start, host, Crossing::Declared);
    assert_eq!(steps, whole_steps, "the phases decided differently on their declared fields");
    assert_eq!(calls, whole_calls, "the phases asked the host differently on their declared fields");
    assert_eq!(declared, whole, "the final states differ: a phase writes a field it does not declare");
    assert!(steps.last().is_some_and(|s| s.ends_with("Completed")), "{steps:#?}");
    declared
}

fn host_copy(host: &ScriptedHost) -> ScriptedHost {
    let mut copy = ScriptedHost::with_nodes(0, 1);
    copy.nodes = host.nodes.clone();
    copy.locks = host.locks.clone();
    copy.persist = host.persist.clone();
    copy
}

#[test]
fn a_new_cluster_decides_the_same_on_the_declared_fields() {
    let state = assert_declarations_hold(state(1, None), ScriptedHost::with_nodes(12, 3));
    let layout = state.new_layout.expect("a layout was assembled");
    assert_eq!((layout.logs.len(), layout.storage_teams.len()), (3, 2));
}

#[test]
fn a_recovery_that_lost_a_log_and_a_replica_decides_the_same_on_the_declared_fields() {
    let mut host = ScriptedHost::with_nodes(12, 3);
    for (i, log) in ["log2", "log3"].iter().enumerate() {
        let oldest = i as u64;
        let shards = (0..2).map(|tag| ShardRetention { tag, oldest_version: oldest }).collect();
        let info = LogRecoveryInfo { id: log.to_string(), oldest_version: oldest, last_version: 40 + i as u64, shards };
        host.locks.insert(log.to_string(), Ok(LockInfo::Log(info)));
    }
    for id in ["st0-2", "st0-3", "st1-1", "st1-2", "st1-3"] {
        let info = StorageRecoveryInfo { id: id.into(), durable_version: 30, oldest_durable_version: 0 };
        host.locks.insert(id.into(), Ok(LockInfo::Storage(info)));
    }
    host.locks.insert("seq".into(), Ok(LockInfo::Stateless(ServiceKind::Sequencer)));
    host.locks.insert("proxy".into(), Ok(LockInfo::Stateless(ServiceKind::CommitProxy)));
    host.locks.insert("res".into(), Ok(LockInfo::Stateless(ServiceKind::Resolver)));
    let state = assert_declarations_hold(state(2, Some(old_layout())), host);
    assert_eq!(state.unreachable, ["log1", "st0-1"], "both lost services were seen");
    assert_eq!(state.degraded_teams, [0]);
    assert_eq!(state.recovery_version, Some(40));
    let layout = state.new_layout.expect("a layout was assembled");
    assert!(layout.storage_teams[0].storage_ids.contains(&"st0-2".to_string()), "live replicas are kept");
    assert!(!layout.services.iter().any(|s| s.id == "log1" || s.id == "st0-1"));
}
