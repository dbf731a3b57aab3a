//! Mutual TLS between every process of a cluster, and who a peer is.
//!
//! Every certificate is issued by the cluster's own CA (`ratchet certs`)
//! and names its holder's role as DNS names:
//!
//! | holder | names |
//! |---|---|
//! | the coordinator | `coordinator.ratchet`, `member.ratchet` |
//! | the worker of node N | `worker.ratchet`, `N.worker.ratchet`, `member.ratchet` |
//! | a client (`load`, `verify`, `status`) | `client.ratchet` |
//!
//! A server asks every peer for its certificate and refuses a connection
//! without one the CA signed; a client checks that the server holds
//! `member.ratchet` (a coordinator or a worker of this cluster: it dials
//! addresses, not names). What a peer may ask is then decided on the names
//! its certificate holds ([`Peer`]): only a coordinator locks, recruits,
//! releases or pops, a worker registers only as the node it names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The DNS suffix of every role name.
pub const DOMAIN: &str = "ratchet";

/// The name every server of a cluster holds.
pub const MEMBER: &str = "member.ratchet";

/// What a certificate says its holder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Drives recovery: locks, recruits, releases, pops.
    Coordinator,
    /// Hosts services; a proxy on it calls sequencers, resolvers and logs.
    Worker,
    /// Commits and reads (`ratchet load`, `verify`, `status`).
    Client,
}

impl Role {
    /// The role's name in a certificate.
    pub fn name(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator.ratchet",
            Role::Worker => "worker.ratchet",
            Role::Client => "client.ratchet",
        }
    }

    /// How the role is spelled on the command line.
    pub fn label(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Worker => "worker",
            Role::Client => "client",
        }
    }

    /// Every role.
    pub const ALL: [Role; 3] = [Role::Coordinator, Role::Worker, Role::Client];
}

/// The DNS name that says a certificate is the worker of `node`.
pub fn node_name(node: &str) -> String {
    format!("{node}.worker.{DOMAIN}")
}

/// Whether `node` can be named in a certificate: one DNS label, in lower
/// case (names in certificates compare without regard to case, so `N1`
/// would pass for `n1`'s certificate as another node).
pub fn valid_node(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 63
        && node.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !node.starts_with('-')
        && !node.ends_with('-')
}

/// Who is at the other end of a connection.
#[derive(Clone, Debug)]
pub enum Peer {
    /// A plain connection: nothing is known, and a server without TLS
    /// serves only loopback, where every process is the operator's.
    Unauthenticated,
    /// A certificate the cluster's CA signed.
    Certified {
        /// The end-entity certificate.
        cert: CertificateDer<'static>,
        /// The roles it names.
        roles: Vec<Role>,
    },
}

impl Peer {
    /// The peer that presented `cert` (already verified against the CA).
    pub fn certified(cert: CertificateDer<'static>) -> Self {
        let roles = Role::ALL.into_iter().filter(|role| names(&cert, role.name())).collect();
        Peer::Certified { cert, roles }
    }

    /// Whether the peer may act as one of `roles` (any peer of a plain
    /// connection may).
    pub fn holds_any(&self, roles: &[Role]) -> bool {
        match self {
            Peer::Unauthenticated => true,
            Peer::Certified { roles: held, .. } => held.iter().any(|r| roles.contains(r)),
        }
    }

    /// Whether the peer is the worker of `node` (any peer of a plain
    /// connection is). Under TLS a node id is a lower-case DNS label.
    pub fn is_node(&self, node: &str) -> bool {
        match self {
            Peer::Unauthenticated => true,
            Peer::Certified { cert, roles } => valid_node(node) && roles.contains(&Role::Worker) && names(cert, &node_name(node)),
        }
    }

    /// Whether the peer holds any role of the cluster (any peer of a plain
    /// connection does): a certificate of the CA naming none (etcd's, say)
    /// may ask nothing.
    pub fn holds_a_role(&self) -> bool {
        match self {
            Peer::Unauthenticated => true,
            Peer::Certified { roles, .. } => !roles.is_empty(),
        }
    }

    /// The roles the peer's certificate names, for an error message.
    pub fn describe(&self) -> String {
        match self {
            Peer::Unauthenticated => "an unauthenticated peer".into(),
            Peer::Certified { roles, .. } if roles.is_empty() => "a certificate that names no role".into(),
            Peer::Certified { roles, .. } => {
                let names: Vec<&str> = roles.iter().map(|r| r.label()).collect();
                format!("a certificate for {}", names.join(", "))
            }
        }
    }
}

/// Whether `cert` is valid for the DNS name `name`.
fn names(cert: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(name) = ServerName::try_from(name) else { return false };
    webpki::EndEntityCert::try_from(cert).is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The certificate, key and CA do not make a configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The three files of a process's TLS identity.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The cluster CA's certificate (PEM).
    pub ca: PathBuf,
    /// This process's certificate (PEM), issued by the CA.
    pub cert: PathBuf,
    /// This process's private key (PEM).
    pub key: PathBuf,
}

/// A process's TLS configurations, as a server and as a client.
#[derive(Clone)]
pub struct TlsIdentity {
    pub(crate) server: Arc<rustls::ServerConfig>,
    pub(crate) client: Arc<rustls::ClientConfig>,
    files: TlsFiles,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").field("files", &self.files).finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// Reads `files` and builds both configurations.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let ca = certificates(&files.ca)?;
        let chain = certificates(&files.cert)?;
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
        // ring builds with the C compiler alone; its provider has no
        // post-quantum key exchange, which rustls now flags. The cluster's
        // own CA and short-lived connections make that an acceptable trade.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = |e: rustls::Error| TlsError::Config(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|e| TlsError::File { path: files.ca.clone(), reason: e.to_string() })?;
        }
        let roots = Arc::new(roots);
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config)?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(config)?;
        Ok(TlsIdentity { server: Arc::new(server), client: Arc::new(client), files: files.clone() })
    }
}

fn file_error(path: &Path, err: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), reason: err.to_string() }
}

/// Every certificate of the PEM file at `path`; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))?.collect::<Result<_, _>>().map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The name a client checks the server's certificate against.
pub(crate) fn server_name() -> ServerName<'static> {
    ServerName::try_from(MEMBER).expect("a valid DNS name")
}
