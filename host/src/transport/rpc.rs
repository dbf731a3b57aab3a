//! Calls over a framed TCP connection: the handshake, the call and reply
//! envelopes, a client with a timeout on every call and reconnection, and a
//! server that survives whatever a peer sends.
//!
//! A connection starts with a handshake: the client sends [`Hello`] with the
//! protocol version and the service it expects; the server answers
//! [`Welcome`](HelloReply::Welcome) or [`Refused`](HelloReply::Refused) and
//! closes. Then each call is one [`Call`] frame answered by one [`Reply`]
//! frame with the same id; a reply to an earlier call that timed out is
//! skipped. A frame the server cannot read gets a `Malformed` reply and the
//! connection is closed; the server goes on serving everyone else.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};

use super::frame::{self, FrameError};

/// The first bytes of every handshake.
pub const MAGIC: [u8; 4] = *b"RTCH";

/// The wire protocol version; a peer with another is refused at handshake.
pub const PROTOCOL_VERSION: u32 = 6;

/// A request/response protocol spoken over the transport.
pub trait Protocol: Send + Sync + 'static {
    /// The service name checked at handshake, such as `worker`.
    const SERVICE: &'static str;
    /// What a client sends.
    type Request: Serialize + DeserializeOwned + Send + Sync + Debug + 'static;
    /// What a server answers.
    type Response: Serialize + DeserializeOwned + Send + Sync + Debug + 'static;
}

/// The client's opening frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// The client's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The service the client expects to reach.
    pub service: String,
}

/// The server's answer to [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The connection is open for calls.
    Welcome {
        /// The server's protocol version.
        version: u32,
    },
    /// The connection is refused, and closed.
    Refused(String),
}

/// One call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Call<Q> {
    /// Chosen by the client; echoed in the reply.
    pub id: u64,
    /// The request.
    pub request: Q,
}

/// One reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply<R> {
    /// The id of the call answered; 0 for a frame that could not be read.
    pub id: u64,
    /// The response, or why the server could not read the call.
    pub result: Result<R, String>,
}

/// Why a call failed. Every variant names the peer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The peer.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The peer refused the handshake, or is not a ratchet service at all.
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The peer.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The call got no reply in time.
    #[error("no reply from {addr} within {after:?}")]
    Timeout {
        /// The peer.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// A frame could not be written or read.
    #[error("{addr}: {source}")]
    Frame {
        /// The peer.
        addr: String,
        /// Why.
        source: FrameError,
    },
    /// No server answers at the endpoint: none is bound there, or it is
    /// down (the in-memory transport's refused connection).
    #[error("{addr} does not answer: {reason}")]
    Unreachable {
        /// The endpoint.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The server could not read the call.
    #[error("{addr} refused the call: {reason}")]
    Remote {
        /// The peer.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// Bounds of a client or server.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// How long a call (connecting included) may take.
    pub call_timeout: Duration,
    /// The largest frame sent or accepted.
    pub max_frame: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig { call_timeout: Duration::from_secs(5), max_frame: frame::MAX_FRAME }
    }
}

/// The most idle connections a client keeps to its server.
const MAX_IDLE: usize = 8;

/// A client of one server. Each call takes an idle connection, or opens
/// one when every connection is busy, so that calls run side by side (a
/// slow call never holds up the others); a connection goes back to the
/// idle ones only after a whole, successful exchange.
pub struct Client<P: Protocol> {
    addr: String,
    config: TransportConfig,
    idle: std::sync::Mutex<Vec<TcpStream>>,
    next_id: AtomicU64,
    _protocol: std::marker::PhantomData<fn() -> P>,
}

impl<P: Protocol> Client<P> {
    /// A client of the server at `addr` (`host:port`). Nothing is connected yet.
    pub fn new(addr: impl Into<String>, config: TransportConfig) -> Self {
        Client {
            addr: addr.into(),
            config,
            idle: std::sync::Mutex::default(),
            next_id: AtomicU64::new(1),
            _protocol: std::marker::PhantomData,
        }
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<TcpStream>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `request` and waits for its reply, within the call timeout.
    pub async fn call(&self, request: P::Request) -> Result<P::Response, TransportError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let after = self.config.call_timeout;
        // The stream is taken out of the idle ones for the exchange and put
        // back only after a whole, successful one: a call that fails, times
        // out or is cancelled mid-frame never leaves half a frame for the
        // next call.
        let stream = self.idle().pop();
        let result = tokio::time::timeout(after, self.exchange(stream, Call { id, request })).await;
        match result {
            Ok(Ok((stream, response))) => {
                let mut idle = self.idle();
                if idle.len() < MAX_IDLE {
                    idle.push(stream);
                }
                Ok(response)
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(TransportError::Timeout { addr: self.addr.clone(), after }),
        }
    }

    async fn exchange(
        &self,
        stream: Option<TcpStream>,
        call: Call<P::Request>,
    ) -> Result<(TcpStream, P::Response), TransportError> {
        let mut stream = match stream {
            Some(stream) => stream,
            None => self.connect().await?,
        };
        let response = self.round_trip(&mut stream, call).await?;
        Ok((stream, response))
    }

    async fn round_trip(&self, stream: &mut TcpStream, call: Call<P::Request>) -> Result<P::Response, TransportError> {
        let max = self.config.max_frame;
        frame::write(stream, &call, max).await.map_err(|source| self.frame_error(source))?;
        loop {
            let reply: Reply<P::Response> = frame::read(stream, max).await.map_err(|source| self.frame_error(source))?;
            match reply.result {
                Ok(response) if reply.id == call.id => return Ok(response),
                Err(reason) if reply.id == call.id || reply.id == 0 => {
                    return Err(TransportError::Remote { addr: self.addr.clone(), reason });
                }
                // A late reply to an earlier call.
                _ => continue,
            }
        }
    }

    async fn connect(&self) -> Result<TcpStream, TransportError> {
        let mut stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|source| TransportError::Connect { addr: self.addr.clone(), source })?;
        let _ = stream.set_nodelay(true);
        let hello = Hello { magic: MAGIC, version: PROTOCOL_VERSION, service: P::SERVICE.into() };
        let handshake = |reason: String| TransportError::Handshake { addr: self.addr.clone(), reason };
        frame::write(&mut stream, &hello, self.config.max_frame).await.map_err(|e| handshake(e.to_string()))?;
        match frame::read(&mut stream, self.config.max_frame).await {
            Ok(HelloReply::Welcome { .. }) => Ok(stream),
            Ok(HelloReply::Refused(reason)) => Err(handshake(reason)),
            Err(err) => Err(handshake(format!("not a ratchet {} service? {err}", P::SERVICE))),
        }
    }

    fn frame_error(&self, source: FrameError) -> TransportError {
        TransportError::Frame { addr: self.addr.clone(), source }
    }
}

/// What a server does with each call.
#[async_trait::async_trait]
pub trait Handler<P: Protocol>: Send + Sync + 'static {
    /// Answers one request.
    async fn handle(&self, request: P::Request) -> P::Response;
}

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections on `listener`, serving each on its own task, until
/// this future is dropped, which also closes every connection it accepted.
/// A connection that misbehaves is closed; the server and every other
/// connection go on.
pub async fn serve<P: Protocol, H: Handler<P>>(listener: TcpListener, handler: Arc<H>, config: TransportConfig) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = handler.clone();
        let config = config.clone();
        connections.spawn(async move {
            if let Err(reason) = serve_connection::<P, H>(stream, &handler, &config).await {
                tracing::debug!(%peer, %reason, service = P::SERVICE, "connection closed");
            }
        });
    }
}

async fn serve_connection<P: Protocol, H: Handler<P>>(
    mut stream: TcpStream,
    handler: &H,
    config: &TransportConfig,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let max = config.max_frame;
    let hello: Hello = tokio::time::timeout(HELLO_TIMEOUT, frame::read(&mut stream, max))
        .await
        .map_err(|_| "no hello in time".to_string())?
        .map_err(|e| format!("bad hello: {e}"))?;
    if let Some(reason) = refusal::<P>(&hello) {
        let _ = frame::write(&mut stream, &HelloReply::Refused(reason.clone()), max).await;
        return Err(reason);
    }
    frame::write(&mut stream, &HelloReply::Welcome { version: PROTOCOL_VERSION }, max)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let call: Call<P::Request> = match frame::read(&mut stream, max).await {
            Ok(call) => call,
            Err(FrameError::Closed) => return Ok(()),
            Err(err @ (FrameError::TooLarge { .. } | FrameError::Malformed(_))) => {
                let reply: Reply<P::Response> = Reply { id: 0, result: Err(err.to_string()) };
                let _ = frame::write(&mut stream, &reply, max).await;
                return Err(err.to_string());
            }
            Err(err) => return Err(err.to_string()),
        };
        let response = handler.handle(call.request).await;
        let reply = Reply { id: call.id, result: Ok(response) };
        if let Err(err) = frame::write(&mut stream, &reply, max).await {
            // A reply too large for a frame is reported to the caller.
            let reply: Reply<P::Response> = Reply { id: call.id, result: Err(err.to_string()) };
            frame::write(&mut stream, &reply, max).await.map_err(|e| e.to_string())?;
        }
    }
}

fn refusal<P: Protocol>(hello: &Hello) -> Option<String> {
    if hello.magic != MAGIC {
        return Some("not a ratchet client (bad magic)".into());
    }
    if hello.version != PROTOCOL_VERSION {
        return Some(format!("protocol version {} is not supported (this peer speaks {PROTOCOL_VERSION})", hello.version));
    }
    if hello.service != P::SERVICE {
        return Some(format!("this is a ratchet {} service, not {}", P::SERVICE, hello.service));
    }
    None
}
