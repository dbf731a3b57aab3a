//! What workers and clients ask the coordinator process.

use serde::{Deserialize, Serialize};

use crate::bindings::types::Layout;
use crate::status::Status;
use crate::transport::Protocol;

/// The coordinator protocol.
pub struct CoordinatorProtocol;

impl Protocol for CoordinatorProtocol {
    const SERVICE: &'static str = "coordinator";
    type Request = CoordinatorRequest;
    type Response = Result<CoordinatorReply, String>;
}

/// A request to the coordinator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CoordinatorRequest {
    /// A worker announces itself; sent again every second as its heartbeat.
    Register {
        /// The node.
        node: String,
        /// Its zone.
        zone: String,
        /// Workers it may host.
        capacity: u32,
        /// Where its foreman listens.
        addr: String,
    },
    /// The live generation's layout, with the address of every service, so
    /// a client commits through its proxies directly.
    Generation,
    /// Read a key from a serving replica of its team.
    Read {
        /// The key.
        key: String,
    },
    /// The coordinator's state and the last recovery.
    Status,
}

/// The coordinator's answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum CoordinatorReply {
    /// For [`CoordinatorRequest::Register`].
    Registered,
    /// For [`CoordinatorRequest::Generation`]: none before the first
    /// recovery completes.
    Generation(Option<Box<Layout>>),
    /// For [`CoordinatorRequest::Read`].
    Value(Option<String>),
    /// For [`CoordinatorRequest::Status`].
    Status(Box<Status>),
}
