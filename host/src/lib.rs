//! ratchet: a recovery engine for FoundationDB-style databases in which every
//! recovery phase and every placement policy is a WebAssembly component.
//!
//! The crate is laid out by concern:
//!
//! - [`bindings`]: the host side of the WIT package `ratchet:recovery@0.1.0`;
//! - [`runtime`]: the one wasmtime engine, the component cache and the
//!   per-call sandbox;
//! - [`registry`]: named plugin slots with validation, atomic swap and rollback;
//! - [`components`]: the default components embedded in the binary;
//! - [`guard`]: the invariant guard between plugins and the cluster;
//! - [`director`]: the phase driver;
//! - [`quality`]: how good a layout's placement is;
//! - [`topology`]: the nodes, which shard owns a key, the page size;
//! - [`status`]: what `ratchet status` and the admin endpoint report, the
//!   replica recovery event log among it;
//! - [`store`]: the coordinator's durable epoch, directory and layout
//!   (in memory, a file, or etcd);
//! - [`services`]: the log, storage and role state machines and their journals;
//! - [`cluster`]: the cluster as the director reaches it, in process or remote;
//! - [`replica`]: replica recovery, its plan check and its sessions;
//! - [`transport`]: framed, versioned calls between processes over TCP;
//! - [`worker`]: the worker process and its foreman;
//! - [`coordinator`]: the coordinator process;
//! - [`data_dir`]: one process per data directory (`flock` on `LOCK`);
//! - [`wire`]: the worker and coordinator protocols, a leaf both sides share;
//! - [`client`]: the client that commits through the live generation;
//! - [`admin`]: the coordinator's admin endpoint (swap with validation and a
//!   dry run, rollback, history, status, metrics), with [`audit`] and
//!   [`metrics`] behind it;
//! - [`sim`] and [`experiment`]: the deterministic simulator and the seeded
//!   experiments run on it;
//! - [`telemetry`]: the spans of attempts, phases and plugin calls, exported
//!   over OTLP.
//!
//! Where a user of the library starts: the default components in a
//! [`registry::Registry`], a [`director::Director`] that drives them through
//! the guard against a cluster, and a recovery after a node is lost.
//!
//! ```
//! use std::sync::Arc;
//!
//! use ratchet::bindings::types::RecoveryConfig;
//! use ratchet::cluster::LocalCluster;
//! use ratchet::director::{Director, DirectorOptions};
//! use ratchet::registry::Registry;
//! use ratchet::runtime::{Runtime, RuntimeConfig};
//! use ratchet::store::MemoryStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! // The 15 default phases and the default policies, embedded in the crate.
//! let registry = Arc::new(Registry::with_defaults(Arc::new(Runtime::new(RuntimeConfig::default())?))?);
//! // 9 nodes in 3 zones, room for 10 workers each, in this process.
//! let local = LocalCluster::with_zones(9, 3, 10)?;
//! let store = Arc::new(MemoryStore::default());
//! let director = Director::new(registry, local.client(), store, RecoveryConfig::default(), DirectorOptions::default());
//!
//! let boot = director.recover().await?;
//! let first = boot.layout().cloned().expect("the boot completes");
//!
//! // Lose the node of the first log; the next generation takes a higher
//! // epoch and none of its logs is on that node.
//! let lost = first.services.iter().find(|s| s.id == first.logs[0].id).map(|s| s.node.clone()).unwrap();
//! local.crash(&lost);
//! let report = director.recover().await?;
//! let second = report.layout().expect("the recovery completes");
//! assert!(second.epoch > first.epoch);
//! assert!(second.logs.iter().all(|log| second.services.iter().any(|s| s.id == log.id && s.node != lost)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })
//! # }
//! ```

#![warn(missing_docs)]

pub mod admin;
pub mod audit;
pub mod bindings;
pub mod client;
pub mod cluster;
pub mod components;
pub mod coordinator;
pub mod data_dir;
pub mod director;
pub mod experiment;
pub mod guard;
pub mod metrics;
pub mod quality;
pub mod registry;
pub mod replica;
pub mod runtime;
pub mod services;
pub mod sim;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod topology;
pub mod transport;
pub mod wire;
pub mod worker;
