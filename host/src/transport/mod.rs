//! The transport between ratchet processes: length-prefixed postcard frames
//! over TCP ([`frame`]), and calls on top of them with a versioned
//! handshake, a timeout on every call, reconnection and a maximum frame size
//! ([`rpc`]). Phases and policies never see it: they reach the network only
//! through the host's service handles, which are built on it.

pub mod frame;
pub mod rpc;

pub use frame::{FrameError, MAX_FRAME};
pub use rpc::{Client, Handler, Protocol, TransportConfig, TransportError, serve};
