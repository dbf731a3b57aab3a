//! A connection of the transport: plain TCP on loopback, or TLS over TCP.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::tls::{Peer, TlsIdentity, server_name};

/// One connection, either side.
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, as a client or a server.
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Conn {
    /// Opens the client side over `tcp`: TLS if `tls` is set, checking that
    /// the server is a member of the cluster.
    pub(crate) async fn client(tcp: TcpStream, tls: Option<&TlsIdentity>) -> std::io::Result<Conn> {
        let Some(tls) = tls else { return Ok(Conn::Plain(tcp)) };
        let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
        let stream = connector.connect(server_name(), tcp).await?;
        Ok(Conn::Tls(Box::new(stream.into())))
    }

    /// Accepts the server side over `tcp`: TLS if `tls` is set, which
    /// requires the client's certificate. Answers who the client is.
    pub(crate) async fn server(tcp: TcpStream, tls: Option<&TlsIdentity>) -> std::io::Result<(Conn, Peer)> {
        let Some(tls) = tls else { return Ok((Conn::Plain(tcp), Peer::Unauthenticated)) };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server.clone());
        let stream = acceptor.accept(tcp).await?;
        let cert = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).cloned();
        let Some(cert) = cert else {
            return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "the client presented no certificate"));
        };
        Ok((Conn::Tls(Box::new(stream.into())), Peer::certified(cert.into_owned())))
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
