//! The protocols on the wire, a leaf that the processes, the cluster client
//! and the clients share without importing each other: the worker protocol
//! ([`worker`]: the cluster client's and the proxies' requests to a
//! foreman) and the coordinator protocol ([`coordinator`]: workers
//! registering, clients asking for the generation and the status).

pub mod coordinator;
pub mod worker;

pub use coordinator::{CoordinatorProtocol, CoordinatorReply, CoordinatorRequest};
pub use worker::{RequestKind, Serving, WorkerProtocol, WorkerReply, WorkerRequest};
