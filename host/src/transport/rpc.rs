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
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use super::conn::Conn;
use super::frame::{self, FrameError};
use super::tls::{Peer, TlsIdentity};

/// The first bytes of every handshake.
pub const MAGIC: [u8; 4] = *b"RTCH";

/// The wire protocol version; a peer with another is refused at handshake.
pub const PROTOCOL_VERSION: u32 = 9;

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
    /// A server's most open connections; one beyond is refused at its
    /// handshake with the reason.
    pub max_connections: usize,
    /// How long a server waits for the next call on an open connection
    /// before closing it (a client drops the connections it kept idle for
    /// half as long, so it never sends on one the server is closing).
    pub idle_timeout: Duration,
    /// How long a frame may take to arrive once its first byte has: a peer
    /// that trickles a frame is cut off.
    pub frame_timeout: Duration,
    /// Mutual TLS: a server requires a certificate the cluster's CA signed
    /// of every peer, a client presents its own and checks the server's.
    /// `None` is plain TCP, for loopback only.
    pub tls: Option<Arc<TlsIdentity>>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            call_timeout: Duration::from_secs(5),
            max_frame: frame::MAX_FRAME,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(60),
            frame_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// The most idle connections a client keeps to its server.
const MAX_IDLE: usize = 8;

/// The largest hello a server reads: a few dozen bytes in practice.
pub const MAX_HELLO: usize = 256;

/// A client of one server. Each call takes an idle connection, or opens
/// one when every connection is busy, so that calls run side by side (a
/// slow call never holds up the others); a connection goes back to the
/// idle ones only after a whole, successful exchange.
pub struct Client<P: Protocol> {
    addr: String,
    config: TransportConfig,
    idle: std::sync::Mutex<Vec<(Conn, tokio::time::Instant)>>,
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

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(Conn, tokio::time::Instant)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection the server is not about to close for idling.
    fn take_idle(&self) -> Option<Conn> {
        let fresh = self.config.idle_timeout / 2;
        let mut idle = self.idle();
        idle.retain(|(_, since)| since.elapsed() < fresh);
        idle.pop().map(|(stream, _)| stream)
    }

    /// Sends `request` and waits for its reply, within the call timeout.
    pub async fn call(&self, request: P::Request) -> Result<P::Response, TransportError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let after = self.config.call_timeout;
        // The stream is taken out of the idle ones for the exchange and put
        // back only after a whole, successful one: a call that fails, times
        // out or is cancelled mid-frame never leaves half a frame for the
        // next call.
        let stream = self.take_idle();
        let result = tokio::time::timeout(after, self.exchange(stream, Call { id, request })).await;
        match result {
            Ok(Ok((stream, response))) => {
                let mut idle = self.idle();
                if idle.len() < MAX_IDLE {
                    idle.push((stream, tokio::time::Instant::now()));
                }
                Ok(response)
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(TransportError::Timeout { addr: self.addr.clone(), after }),
        }
    }

    async fn exchange(&self, stream: Option<Conn>, call: Call<P::Request>) -> Result<(Conn, P::Response), TransportError> {
        let mut stream = match stream {
            Some(stream) => stream,
            None => self.connect().await?,
        };
        let response = self.round_trip(&mut stream, call).await?;
        Ok((stream, response))
    }

    async fn round_trip(&self, stream: &mut Conn, call: Call<P::Request>) -> Result<P::Response, TransportError> {
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

    async fn connect(&self) -> Result<Conn, TransportError> {
        let tcp = TcpStream::connect(&self.addr).await.map_err(|source| TransportError::Connect { addr: self.addr.clone(), source })?;
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(addr = %self.addr, %err, "cannot turn Nagle off");
        }
        let handshake = |reason: String| TransportError::Handshake { addr: self.addr.clone(), reason };
        let mut stream = Conn::client(tcp, self.config.tls.as_deref()).await.map_err(|e| handshake(format!("TLS: {e}")))?;
        let hello = Hello { magic: MAGIC, version: PROTOCOL_VERSION, service: P::SERVICE.into() };
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

    /// Why `peer` may not make `request`, if it may not: the call is then
    /// answered with the reason and never handled. Everyone may, unless
    /// the handler says otherwise.
    fn forbids(&self, _peer: &Peer, _request: &P::Request) -> Option<String> {
        None
    }
}

/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections on `listener`, serving each on its own task, until
/// this future is dropped, which also closes every connection it accepted.
/// A connection that misbehaves is closed; the server and every other
/// connection go on. At most `config.max_connections` are open at once;
/// one beyond is refused at its handshake, naming the limit.
pub async fn serve<P: Protocol, H: Handler<P>>(listener: TcpListener, handler: Arc<H>, config: TransportConfig) {
    let mut connections = tokio::task::JoinSet::new();
    let open = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let handshakes = Handshakes::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = super::accept(&listener, P::SERVICE) => accepted,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        // A connection is a stranger until its handshake ends: strangers
        // share a small pool of their own, a few per address, so they can
        // neither take the members' connections nor all of that pool.
        let Some(handshake) = handshakes.take(peer.ip()) else {
            tracing::warn!(%peer, service = P::SERVICE, "connection closed: too many handshakes under way");
            continue;
        };
        let (handler, config, open) = (handler.clone(), config.clone(), open.clone());
        connections.spawn(async move {
            if let Err(reason) = serve_connection::<P, H>(stream, &handler, &config, open, handshake).await {
                tracing::debug!(%peer, %reason, service = P::SERVICE, "connection closed");
            }
        });
    }
}

/// The most handshakes under way at once, and from one address other than
/// loopback (a cluster on one machine dials from 127.0.0.1 alone, in
/// bursts: a recovery's locks open connections side by side).
const MAX_HANDSHAKES: usize = 128;
const MAX_HANDSHAKES_PER_ADDRESS: usize = 16;

/// The handshakes under way, counted in all and per address.
#[derive(Clone, Default)]
struct Handshakes(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

impl Handshakes {
    fn take(&self, ip: std::net::IpAddr) -> Option<Handshake> {
        let mut under_way = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = under_way.values().sum();
        let mine = under_way.entry(ip).or_default();
        if total >= MAX_HANDSHAKES || (*mine >= MAX_HANDSHAKES_PER_ADDRESS && !ip.is_loopback()) {
            return None;
        }
        *mine += 1;
        Some(Handshake { under_way: self.clone(), ip })
    }
}

/// A handshake under way, counted until dropped.
struct Handshake {
    under_way: Handshakes,
    ip: std::net::IpAddr,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut under_way = self.under_way.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = under_way.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                under_way.remove(&self.ip);
            }
        }
    }
}

/// Reads the next frame of a connection: it must start within the idle
/// timeout and arrive whole within the frame timeout.
async fn next_frame<T: DeserializeOwned>(stream: &mut Conn, config: &TransportConfig) -> Result<T, String> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(config.idle_timeout, stream.read(&mut first)).await {
        Err(_) => return Err(format!("idle for {:?}", config.idle_timeout)),
        Ok(Ok(0)) => return Err(CLOSED.into()),
        Ok(Ok(_)) => {}
        Ok(Err(err)) => return Err(err.to_string()),
    }
    match tokio::time::timeout(config.frame_timeout, frame::read_after(stream, first[0], config.max_frame)).await {
        Err(_) => Err(format!("a frame took longer than {:?} to arrive", config.frame_timeout)),
        Ok(Ok(message)) => Ok(message),
        Ok(Err(FrameError::Closed)) => Err(CLOSED.into()),
        Ok(Err(err @ (FrameError::TooLarge { .. } | FrameError::Malformed(_)))) => Err(format!("{MALFORMED}{err}")),
        Ok(Err(err)) => Err(err.to_string()),
    }
}

/// What [`next_frame`] answers for a connection closed between frames.
const CLOSED: &str = "closed";

/// How [`next_frame`] starts its answer for a frame that is too large or
/// does not decode: the peer is told before the connection closes.
const MALFORMED: &str = "bad frame: ";

async fn serve_connection<P: Protocol, H: Handler<P>>(
    tcp: TcpStream,
    handler: &H,
    config: &TransportConfig,
    open: Arc<tokio::sync::Semaphore>,
    handshake: Handshake,
) -> Result<(), String> {
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(%err, "cannot turn Nagle off");
    }
    let max = config.max_frame;
    // The TLS handshake and the hello together have the hello's deadline.
    let opened = tokio::time::timeout(HELLO_TIMEOUT, async {
        let (mut stream, peer) = Conn::server(tcp, config.tls.as_deref()).await.map_err(|e| format!("TLS: {e}"))?;
        let hello: Hello = frame::read(&mut stream, MAX_HELLO).await.map_err(|e| format!("bad hello: {e}"))?;
        Ok::<_, String>((stream, peer, hello))
    });
    let (mut stream, peer, hello) = opened.await.map_err(|_| "no hello in time".to_string())??;
    drop(handshake);
    let refused = refusal::<P>(&hello).map(Err).unwrap_or_else(|| {
        open.try_acquire_owned().map_err(|_| {
            tracing::warn!(service = P::SERVICE, limit = config.max_connections, "connection refused: too many");
            format!("too many connections: this {} serves at most {}", P::SERVICE, config.max_connections)
        })
    });
    let _permit = match refused {
        Ok(permit) => permit,
        Err(reason) => {
            let told = write_within(&mut stream, &HelloReply::Refused(reason.clone()), max, config.frame_timeout).await;
            if let Err(err) = told {
                tracing::debug!(service = P::SERVICE, %err, "a refused peer was not told why");
            }
            return Err(reason);
        }
    };
    write_within(&mut stream, &HelloReply::Welcome { version: PROTOCOL_VERSION }, max, config.frame_timeout).await?;
    loop {
        let call: Call<P::Request> = match next_frame(&mut stream, config).await {
            Ok(call) => call,
            Err(reason) if reason == CLOSED => return Ok(()),
            Err(reason) => {
                let told = reason.strip_prefix(MALFORMED).unwrap_or(&reason).to_string();
                let reply: Reply<P::Response> = Reply { id: 0, result: Err(told) };
                // The connection closes either way; telling the peer why is
                // a courtesy a hung peer need not receive.
                if let Err(err) = write_within(&mut stream, &reply, max, Duration::from_secs(1)).await {
                    tracing::debug!(service = P::SERVICE, %err, "the peer was not told why its connection closes");
                }
                return Err(reason);
            }
        };
        if let Some(reason) = handler.forbids(&peer, &call.request) {
            let reply: Reply<P::Response> = Reply { id: call.id, result: Err(format!("forbidden: {reason}")) };
            write_within(&mut stream, &reply, max, config.frame_timeout).await?;
            continue;
        }
        let response = handler.handle(call.request).await;
        let reply = Reply { id: call.id, result: Ok(response) };
        match tokio::time::timeout(config.frame_timeout, frame::write(&mut stream, &reply, max)).await {
            Ok(Ok(())) => {}
            // A reply too large for a frame is reported to the caller.
            Ok(Err(err @ FrameError::TooLarge { .. })) => {
                let reply: Reply<P::Response> = Reply { id: call.id, result: Err(err.to_string()) };
                write_within(&mut stream, &reply, max, config.frame_timeout).await?;
            }
            Ok(Err(err)) => return Err(err.to_string()),
            Err(_) => return Err(format!("a peer that does not read: a reply took longer than {:?}", config.frame_timeout)),
        }
    }
}

/// Writes `message` within `limit`: a peer that stops reading holds no
/// connection for ever.
async fn write_within<T: Serialize>(stream: &mut Conn, message: &T, max: usize, limit: Duration) -> Result<(), String> {
    match tokio::time::timeout(limit, frame::write(stream, message, max)).await {
        Ok(written) => written.map_err(|e| e.to_string()),
        Err(_) => Err(format!("a frame took longer than {limit:?} to write")),
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
