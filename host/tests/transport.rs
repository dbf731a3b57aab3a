//! The transport over real sockets on 127.0.0.1: calls and replies, the
//! handshake's refusals, malformed and oversized frames, timeouts and
//! reconnection. Whatever one peer sends, the server keeps serving the others.

use std::sync::Arc;
use std::time::Duration;

use ratchet::transport::rpc::{Call, Hello, HelloReply, MAGIC, PROTOCOL_VERSION, Reply};
use ratchet::transport::{Client, Handler, Protocol, TransportConfig, TransportError, frame, serve};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Echo;

#[derive(Debug, Serialize, Deserialize)]
enum EchoRequest {
    Say(String),
    SleepMs(u64),
}

impl Protocol for Echo {
    const SERVICE: &'static str = "echo";
    type Request = EchoRequest;
    type Response = String;
}

struct EchoHandler;

#[async_trait::async_trait]
impl Handler<Echo> for EchoHandler {
    async fn handle(&self, request: EchoRequest) -> String {
        match request {
            EchoRequest::Say(text) => text,
            EchoRequest::SleepMs(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("slept {ms}")
            }
        }
    }
}

fn config() -> TransportConfig {
    TransportConfig { call_timeout: Duration::from_millis(500), max_frame: 1 << 16, ..TransportConfig::default() }
}

/// A config with tight server bounds.
fn bounded() -> TransportConfig {
    TransportConfig { max_connections: 2, idle_timeout: Duration::from_millis(300), frame_timeout: Duration::from_millis(300), ..config() }
}

async fn start_with(config: TransportConfig) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve::<Echo, _>(listener, Arc::new(EchoHandler), config));
    addr
}

/// Whether the server closed `stream` within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut rest = Vec::new();
    matches!(tokio::time::timeout(within, stream.read_to_end(&mut rest)).await, Ok(Ok(_)) | Ok(Err(_)))
}

#[tokio::test]
async fn a_connection_beyond_the_limit_is_refused_naming_it_and_served_once_one_closes() {
    let addr = start_with(bounded()).await;
    let (first, reply) = raw_connect(&addr, "echo", PROTOCOL_VERSION).await;
    assert!(matches!(reply, HelloReply::Welcome { .. }));
    let (_second, reply) = raw_connect(&addr, "echo", PROTOCOL_VERSION).await;
    assert!(matches!(reply, HelloReply::Welcome { .. }));
    let err = Client::<Echo>::new(&addr, bounded()).call(EchoRequest::Say("x".into())).await.unwrap_err();
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("too many connections: this echo serves at most 2"), "{err}");
    drop(first);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(Client::<Echo>::new(&addr, bounded()).call(EchoRequest::Say("x".into())).await.unwrap(), "x");
}

#[tokio::test]
async fn connections_that_never_say_hello_take_no_members_slot() {
    let addr = start_with(bounded()).await;
    // Five strangers hold connections open without a word: more than the
    // server's two connections.
    let mut strangers = Vec::new();
    for _ in 0..5 {
        strangers.push(TcpStream::connect(&addr).await.unwrap());
    }
    let first = Client::<Echo>::new(&addr, bounded());
    let second = Client::<Echo>::new(&addr, bounded());
    assert_eq!(first.call(EchoRequest::Say("a".into())).await.unwrap(), "a");
    assert_eq!(second.call(EchoRequest::Say("b".into())).await.unwrap(), "b");
    drop(strangers);
}

#[tokio::test]
async fn idle_trickling_and_oversized_hello_connections_are_closed_and_a_kept_client_reconnects() {
    let addr = start_with(bounded()).await;
    // Idle after the handshake.
    let (mut idle, _) = raw_connect(&addr, "echo", PROTOCOL_VERSION).await;
    assert!(closed_within(&mut idle, Duration::from_secs(2)).await, "an idle connection is closed");
    // A frame that starts and never ends.
    let (mut trickle, _) = raw_connect(&addr, "echo", PROTOCOL_VERSION).await;
    trickle.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    assert!(closed_within(&mut trickle, Duration::from_secs(2)).await, "a trickled frame is cut off");
    // A hello far larger than any hello.
    let mut big = TcpStream::connect(&addr).await.unwrap();
    big.write_all(&4096u32.to_be_bytes()).await.unwrap();
    assert!(closed_within(&mut big, Duration::from_secs(2)).await, "an oversized hello is refused");
    // A client keeps its connection between calls, and opens a new one
    // rather than reuse one the server is closing for idling.
    let client = Client::<Echo>::new(&addr, bounded());
    for _ in 0..3 {
        assert_eq!(client.call(EchoRequest::Say("again".into())).await.unwrap(), "again");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// Starts an echo server on a free port; returns its address and task.
async fn start() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (addr, tokio::spawn(serve::<Echo, _>(listener, Arc::new(EchoHandler), config())))
}

async fn raw_connect(addr: &str, service: &str, version: u32) -> (TcpStream, HelloReply) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let hello = Hello { magic: MAGIC, version, service: service.into() };
    frame::write(&mut stream, &hello, 1 << 16).await.unwrap();
    let reply = frame::read(&mut stream, 1 << 16).await.unwrap();
    (stream, reply)
}

#[tokio::test]
async fn calls_get_their_replies() {
    let (addr, _server) = start().await;
    let client = Client::<Echo>::new(&addr, config());
    for i in 0..20 {
        assert_eq!(client.call(EchoRequest::Say(format!("hi {i}"))).await.unwrap(), format!("hi {i}"));
    }
}

#[tokio::test]
async fn the_handshake_refuses_another_service_or_version() {
    let (addr, _server) = start().await;
    let (_, reply) = raw_connect(&addr, "coordinator", PROTOCOL_VERSION).await;
    assert_eq!(reply, HelloReply::Refused("this is a ratchet echo service, not coordinator".into()));
    let (_, reply) = raw_connect(&addr, "echo", PROTOCOL_VERSION + 1).await;
    let HelloReply::Refused(reason) = reply else { panic!("a newer version must be refused") };
    assert!(reason.contains(&format!("protocol version {} is not supported", PROTOCOL_VERSION + 1)), "{reason}");

    struct Other;
    impl Protocol for Other {
        const SERVICE: &'static str = "coordinator";
        type Request = EchoRequest;
        type Response = String;
    }
    let err = Client::<Other>::new(&addr, config()).call(EchoRequest::Say("x".into())).await.unwrap_err();
    assert!(matches!(err, TransportError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("not coordinator"), "{err}");
}

#[tokio::test]
async fn a_peer_that_is_not_ratchet_is_named_at_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let err = Client::<Echo>::new(&addr, config()).call(EchoRequest::Say("x".into())).await.unwrap_err();
    assert!(err.to_string().contains("not a ratchet echo service?"), "{err}");
}

#[tokio::test]
async fn malformed_and_oversized_frames_get_an_error_and_the_server_serves_on() {
    let (addr, _server) = start().await;
    let client = Client::<Echo>::new(&addr, config());

    // A frame whose body is not a call.
    let (mut stream, reply) = raw_connect(&addr, "echo", PROTOCOL_VERSION).await;
    assert!(matches!(reply, HelloReply::Welcome { .. }));
    stream.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).await.unwrap();
    let reply: Reply<String> = frame::read(&mut stream, 1 << 16).await.unwrap();
    assert_eq!(reply.id, 0);
    assert!(reply.result.unwrap_err().starts_with("malformed frame"));
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0, "the connection is closed");

    // A length beyond the maximum.
    let (mut stream, _) = raw_connect(&addr, "echo", PROTOCOL_VERSION).await;
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let reply: Reply<String> = frame::read(&mut stream, 1 << 16).await.unwrap();
    assert!(reply.result.unwrap_err().contains("exceeds the maximum"));

    // Garbage instead of a hello.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream.write_all(b"\0\0\0\x01\x07garbage").await.unwrap();

    assert_eq!(client.call(EchoRequest::Say("still here".into())).await.unwrap(), "still here");
}

#[tokio::test]
async fn a_call_too_large_to_send_is_refused_by_the_client() {
    let (addr, _server) = start().await;
    let client = Client::<Echo>::new(&addr, config());
    let err = client.call(EchoRequest::Say("x".repeat(1 << 17))).await.unwrap_err();
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
    assert_eq!(client.call(EchoRequest::Say("small".into())).await.unwrap(), "small");
}

#[tokio::test]
async fn a_slow_call_times_out_and_its_late_reply_is_never_mistaken() {
    let (addr, _server) = start().await;
    let client = Client::<Echo>::new(&addr, config());
    let err = client.call(EchoRequest::SleepMs(800)).await.unwrap_err();
    assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
    assert_eq!(client.call(EchoRequest::Say("next".into())).await.unwrap(), "next");
}

#[tokio::test]
async fn the_client_reconnects_after_the_server_restarts() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve::<Echo, _>(listener, Arc::new(EchoHandler), config()));
    let client = Client::<Echo>::new(addr.to_string(), config());
    assert_eq!(client.call(EchoRequest::Say("one".into())).await.unwrap(), "one");

    server.abort();
    let _ = server.await;
    let err = client.call(EchoRequest::Say("down".into())).await.unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. } | TransportError::Frame { .. }), "{err}");

    let listener = TcpListener::bind(addr).await.unwrap();
    let _server = tokio::spawn(serve::<Echo, _>(listener, Arc::new(EchoHandler), config()));
    assert_eq!(client.call(EchoRequest::Say("two".into())).await.unwrap(), "two");
}

#[tokio::test]
async fn calls_and_replies_are_matched_by_id() {
    let (addr, _server) = start().await;
    let mut stream = raw_connect(&addr, "echo", PROTOCOL_VERSION).await.0;
    frame::write(&mut stream, &Call { id: 41, request: EchoRequest::Say("a".into()) }, 1 << 16).await.unwrap();
    frame::write(&mut stream, &Call { id: 42, request: EchoRequest::Say("b".into()) }, 1 << 16).await.unwrap();
    let first: Reply<String> = frame::read(&mut stream, 1 << 16).await.unwrap();
    let second: Reply<String> = frame::read(&mut stream, 1 << 16).await.unwrap();
    assert_eq!((first.id, first.result.unwrap()), (41, "a".to_string()));
    assert_eq!((second.id, second.result.unwrap()), (42, "b".to_string()));
}

#[tokio::test]
async fn a_cancelled_call_leaves_nothing_behind_for_the_next() {
    let (addr, _server) = start().await;
    let client = Client::<Echo>::new(&addr, config());
    // Dropped mid-call, as a plugin's deadline drops the host call it waits on.
    let cancelled = tokio::time::timeout(Duration::from_millis(50), client.call(EchoRequest::SleepMs(300))).await;
    assert!(cancelled.is_err());
    assert_eq!(client.call(EchoRequest::Say("after".into())).await.unwrap(), "after");
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(client.call(EchoRequest::Say("later".into())).await.unwrap(), "later");
}
