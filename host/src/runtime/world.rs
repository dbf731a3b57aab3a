//! The worlds a plugin can satisfy, and linking a component against one.

use wasmtime::component::Component;

use super::{CallCtx, LoadError, Runtime};
use crate::bindings::{PlacementPolicyPre, RecoveryPhasePre, ReplicaRecoveryPre};

/// A WIT world of the package `ratchet:recovery@0.1.0` that a plugin exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum World {
    /// One step of the recovery pipeline.
    RecoveryPhase,
    /// A placement policy.
    PlacementPolicy,
    /// A replica recovery policy.
    ReplicaRecovery,
}

impl World {
    /// Every world, in the order `plugin check` tries them.
    pub const ALL: [World; 3] = [World::RecoveryPhase, World::PlacementPolicy, World::ReplicaRecovery];

    /// The world's WIT name.
    pub fn name(self) -> &'static str {
        match self {
            World::RecoveryPhase => "recovery-phase",
            World::PlacementPolicy => "placement-policy",
            World::ReplicaRecovery => "replica-recovery",
        }
    }

    /// The interface a component of this world must export.
    pub fn export(self) -> &'static str {
        match self {
            World::RecoveryPhase => "ratchet:recovery/phase@0.1.0",
            World::PlacementPolicy => "ratchet:recovery/placement@0.1.0",
            World::ReplicaRecovery => "ratchet:recovery/replica@0.1.0",
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A component linked against its world: an `InstancePre` with typed exports.
#[derive(Clone)]
pub enum Linked {
    /// A recovery phase.
    Phase(RecoveryPhasePre<CallCtx>),
    /// A placement policy.
    Policy(PlacementPolicyPre<CallCtx>),
    /// A replica recovery policy.
    Replica(ReplicaRecoveryPre<CallCtx>),
}

impl Linked {
    /// The world this component satisfies.
    pub fn world(&self) -> World {
        match self {
            Linked::Phase(_) => World::RecoveryPhase,
            Linked::Policy(_) => World::PlacementPolicy,
            Linked::Replica(_) => World::ReplicaRecovery,
        }
    }
}

/// Links `component` against `world`, naming precisely what does not fit.
pub(super) fn link(runtime: &Runtime, component: &Component, world: World) -> Result<Linked, LoadError> {
    let wrong = |reason: String| LoadError::WrongWorld { world: world.name(), reason };
    let exports: Vec<String> = component.component_type().exports(runtime.engine()).map(|(name, _)| name.to_string()).collect();
    if !exports.iter().any(|name| name == world.export()) {
        let found = if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") };
        return Err(wrong(format!("missing export `{}` (it exports {found})", world.export())));
    }
    let pre = runtime.linker(world).instantiate_pre(component).map_err(|e| wrong(format!("{e:#}")))?;
    match world {
        World::RecoveryPhase => RecoveryPhasePre::new(pre).map(Linked::Phase),
        World::PlacementPolicy => PlacementPolicyPre::new(pre).map(Linked::Policy),
        World::ReplicaRecovery => ReplicaRecoveryPre::new(pre).map(Linked::Replica),
    }
    .map_err(|e| wrong(format!("{e:#}")))
}
