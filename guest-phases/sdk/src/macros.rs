//! The thin WIT glue: one macro per world, expanded in the plugin crate.

/// Exports a [`Phase`](crate::Phase) as the `recovery-phase` world.
///
/// `export_phase!(MyPhase)` reads the WIT from `../../wit`;
/// `export_phase!(MyPhase, wit = "path/to/wit")` from elsewhere.
#[macro_export]
macro_rules! export_phase {
    ($phase:ty) => {
        $crate::export_phase!($phase, wit = "../../wit");
    };
    ($phase:ty, wit = $wit:literal) => {
        $crate::__export_phase_world!(
            wit = $wit,
            reads = || <$phase as ::ratchet_guest::Phase>::READS.to_vec(),
            run = |state: ::ratchet_guest::types::AttemptState, host: &mut dyn ::ratchet_guest::Host| {
                let outcome = <$phase as ::ratchet_guest::Phase>::run(state, host);
                ::ratchet_guest::__private::returned(outcome, <$phase as ::ratchet_guest::Phase>::WRITES)
            }
        );
    };
}

/// Exports a [`RawPhase`](crate::RawPhase) as the `recovery-phase` world:
/// its `reads` and its outcome cross as they are, `written` included, with
/// none of the checks [`export_phase!`] makes. For phases that test the
/// host's own checks (an adversary); a real phase uses [`export_phase!`].
#[macro_export]
macro_rules! export_raw_phase {
    ($phase:ty) => {
        $crate::export_raw_phase!($phase, wit = "../../wit");
    };
    ($phase:ty, wit = $wit:literal) => {
        $crate::__export_phase_world!(
            wit = $wit,
            reads = || <$phase as ::ratchet_guest::RawPhase>::reads(),
            run = |state: ::ratchet_guest::types::AttemptState, host: &mut dyn ::ratchet_guest::Host| {
                <$phase as ::ratchet_guest::RawPhase>::run(state, host)
            }
        );
    };
}

/// The `recovery-phase` world around a `reads` and a `run` closure.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_phase_world {
    (wit = $wit:literal, reads = $reads:expr, run = $run:expr) => {
        // Only a wasm build exports the world: the export names are not valid
        // native symbols, and natively the phase is called as plain Rust.
        #[cfg(target_arch = "wasm32")]
        mod __ratchet_phase_bindings {
            #[allow(unused_imports)]
            use super::*;
            $crate::__private::wit_bindgen::generate!({
                world: "ratchet:recovery/recovery-phase@0.1.0",
                path: $wit,
                runtime_path: "::ratchet_guest::__private::wit_bindgen::rt",
                with: { "ratchet:recovery/types@0.1.0": ::ratchet_guest::types },
            });

            use self::ratchet::recovery::{clock, cluster, log, placement};
            use ::ratchet_guest::types as t;

            /// The WIT imports, as the SDK's host trait.
            struct WitHost;

            impl ::ratchet_guest::Host for WitHost {
                fn services(&mut self) -> Vec<t::ServiceDescriptor> {
                    cluster::services()
                }
                fn nodes(&mut self) -> Vec<t::Node> {
                    cluster::nodes()
                }
                fn lock(&mut self, ids: &[String]) -> Vec<Result<t::LockInfo, t::ClusterError>> {
                    cluster::lock(ids)
                }
                fn create_worker(
                    &mut self,
                    node: &str,
                    kind: t::ServiceKind,
                ) -> Result<t::ServiceDescriptor, t::ClusterError> {
                    cluster::create_worker(node, kind)
                }
                fn create_workers(
                    &mut self,
                    requests: &[(String, t::ServiceKind)],
                ) -> Vec<Result<t::ServiceDescriptor, t::ClusterError>> {
                    cluster::create_workers(requests)
                }
                fn recover_logs(&mut self, copies: &[t::LogCopy]) -> Vec<Result<(), t::ClusterError>> {
                    cluster::recover_logs(copies)
                }
                fn recover_log(
                    &mut self,
                    target: &str,
                    sources: &[String],
                    tags: &[t::ShardTag],
                    first: t::Version,
                    last: t::Version,
                ) -> Result<(), t::ClusterError> {
                    cluster::recover_log(target, sources, tags, first, last)
                }
                fn known_durable(&mut self, ids: &[String]) -> Result<Vec<Option<t::Version>>, t::ClusterError> {
                    cluster::known_durable(ids)
                }
                fn start_role(
                    &mut self,
                    node: &str,
                    kind: t::ServiceKind,
                ) -> Result<t::ServiceDescriptor, t::ClusterError> {
                    cluster::start_role(node, kind)
                }
                fn stage_layout(&mut self, layout: &t::Layout) -> Result<(), t::ClusterError> {
                    cluster::stage_layout(layout)
                }
                fn unlock(&mut self, ids: &[String]) -> Vec<Result<(), t::ClusterError>> {
                    cluster::unlock(ids)
                }
                fn persist_layout(&mut self) -> Result<(), t::ClusterError> {
                    cluster::persist_layout()
                }
                fn place(
                    &mut self,
                    request: &t::PlacementRequest,
                ) -> Result<Vec<t::Assignment>, t::PlacementError> {
                    placement::place(request)
                }
                fn now_ms(&mut self) -> u64 {
                    clock::now_ms()
                }
                fn sleep_ms(&mut self, ms: u64) {
                    clock::sleep_ms(ms)
                }
                fn log(
                    &mut self,
                    level: ::ratchet_guest::LogLevel,
                    message: &str,
                    fields: &[(String, String)],
                ) {
                    let level = match level {
                        ::ratchet_guest::LogLevel::Trace => log::Level::Trace,
                        ::ratchet_guest::LogLevel::Debug => log::Level::Debug,
                        ::ratchet_guest::LogLevel::Info => log::Level::Info,
                        ::ratchet_guest::LogLevel::Warn => log::Level::Warn,
                        ::ratchet_guest::LogLevel::Error => log::Level::Error,
                    };
                    log::write(level, message, fields)
                }
            }

            struct Component;

            impl exports::ratchet::recovery::phase::Guest for Component {
                fn reads() -> Vec<t::StateField> {
                    ($reads)()
                }
                fn run(state: t::AttemptState) -> t::PhaseOutcome {
                    ($run)(state, &mut WitHost)
                }
            }

            export!(Component);
        }
    };
}

/// Exports a [`PlacementPolicy`](crate::PlacementPolicy) as the
/// `placement-policy` world.
///
/// `export_placement_policy!(MyPolicy)` reads the WIT from `../../wit`;
/// `export_placement_policy!(MyPolicy, wit = "path/to/wit")` from elsewhere.
#[macro_export]
macro_rules! export_placement_policy {
    ($policy:ty) => {
        $crate::export_placement_policy!($policy, wit = "../../wit");
    };
    ($policy:ty, wit = $wit:literal) => {
        #[cfg(target_arch = "wasm32")]
        mod __ratchet_policy_bindings {
            #[allow(unused_imports)]
            use super::*;
            $crate::__private::wit_bindgen::generate!({
                world: "ratchet:recovery/placement-policy@0.1.0",
                path: $wit,
                runtime_path: "::ratchet_guest::__private::wit_bindgen::rt",
                with: { "ratchet:recovery/types@0.1.0": ::ratchet_guest::types },
            });

            use ::ratchet_guest::types as t;

            struct Component;

            impl exports::ratchet::recovery::placement::Guest for Component {
                fn place(
                    request: t::PlacementRequest,
                ) -> Result<Vec<t::Assignment>, t::PlacementError> {
                    <$policy as ::ratchet_guest::PlacementPolicy>::place(request)
                }
            }

            export!(Component);
        }
    };
}

/// Exports a [`ReplicaPolicy`](crate::ReplicaPolicy) as the
/// `replica-recovery` world.
///
/// `export_replica_policy!(MyPolicy)` reads the WIT from `../../wit`;
/// `export_replica_policy!(MyPolicy, wit = "path/to/wit")` from elsewhere.
#[macro_export]
macro_rules! export_replica_policy {
    ($policy:ty) => {
        $crate::export_replica_policy!($policy, wit = "../../wit");
    };
    ($policy:ty, wit = $wit:literal) => {
        #[cfg(target_arch = "wasm32")]
        mod __ratchet_replica_bindings {
            #[allow(unused_imports)]
            use super::*;
            $crate::__private::wit_bindgen::generate!({
                world: "ratchet:recovery/replica-recovery@0.1.0",
                path: $wit,
                runtime_path: "::ratchet_guest::__private::wit_bindgen::rt",
                with: { "ratchet:recovery/types@0.1.0": ::ratchet_guest::types },
            });

            use ::ratchet_guest::types as t;

            struct Component;

            impl exports::ratchet::recovery::replica::Guest for Component {
                fn decide(history: t::ReplicaHistory) -> t::ReplicaPlan {
                    <$policy as ::ratchet_guest::ReplicaPolicy>::decide(history)
                }
            }

            export!(Component);
        }
    };
}
