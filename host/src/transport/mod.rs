//! How ratchet's parts reach each other: the [`Transport`] trait (send a
//! request to a named endpoint, get the reply, within a timeout) and its
//! implementations. Between processes, [`TcpTransport`]: length-prefixed
//! postcard frames over TCP ([`frame`]), and calls on top of them with a
//! versioned handshake, a timeout on every call, reconnection and a maximum
//! frame size ([`rpc`]). Within one process, [`MemoryTransport`] calls the
//! handler bound to the endpoint. Phases and policies never see a
//! transport: they reach the network only through the host's service
//! handles, which are built on it.

pub mod certs;
pub mod conn;
pub mod frame;
pub mod memory;
pub mod rpc;
pub mod tcp;
pub mod tls;

pub use frame::{FrameError, MAX_FRAME};
pub use memory::MemoryTransport;
pub use rpc::{Client, Handler, Protocol, TransportConfig, TransportError, serve};
pub use tcp::{TcpTransport, accept};
pub use tls::{Peer, Role, TlsFiles, TlsIdentity};

/// Sends a request of protocol `P` to a named endpoint and waits for the
/// reply, within the transport's timeout.
#[async_trait::async_trait]
pub trait Transport<P: Protocol>: Send + Sync {
    /// The reply of the handler at `endpoint` to `request`.
    async fn call(&self, endpoint: &str, request: P::Request) -> Result<P::Response, TransportError>;
}
