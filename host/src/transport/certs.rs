//! `ratchet certs`: a cluster CA, and the certificates it issues to the
//! coordinator, each worker and the clients (see [`super::tls`] for the
//! names each holds).
//!
//! The CA is `DIR/ca.pem` and `DIR/ca.key`; an issued certificate is
//! `DIR/ROLE.pem` (`DIR/worker-NODE.pem` for a worker) and its key beside
//! it. Keys are written readable by their owner alone, and nothing is ever
//! overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use super::tls::{MEMBER, Role, node_name, valid_node};

/// How long the CA is valid.
pub const CA_DAYS: u32 = 3650;

/// How long an issued certificate is valid by default: a leaked key stops
/// working within a year, and a certificate is issued again in a line.
pub const DEFAULT_DAYS: u32 = 365;

/// The CA's certificate and key in a certificate directory.
pub const CA_CERT: &str = "ca.pem";
/// See [`CA_CERT`].
pub const CA_KEY: &str = "ca.key";

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file that would be written is there already.
    #[error("{0} exists already: certificates and keys are never overwritten")]
    Exists(PathBuf),
    /// The request is not one a certificate can be made for.
    #[error("{0}")]
    Invalid(String),
    /// The certificate library refused.
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// The files a certificate was written to.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM), mode 0600.
    pub key: PathBuf,
}

/// The parameters the CA is made with; an issuer is rebuilt from them and
/// the CA's key (its name and key identifier are all a certificate it
/// signs refers to).
fn ca_params() -> Result<CertificateParams, CertsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    valid_for(&mut params, CA_DAYS);
    params.distinguished_name.push(DnType::CommonName, "ratchet cluster CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    Ok(params)
}

/// Makes a cluster CA in `dir` (created if missing).
pub fn init(dir: &Path) -> Result<Issued, CertsError> {
    std::fs::create_dir_all(dir).map_err(|source| CertsError::Io { path: dir.to_path_buf(), source })?;
    let issued = Issued { cert: dir.join(CA_CERT), key: dir.join(CA_KEY) };
    refuse_existing(&issued)?;
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    write(&issued.key, key.serialize_pem().as_bytes(), 0o600)?;
    write(&issued.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(issued)
}

/// Makes `params` valid from an hour ago (clocks differ) for `days`.
fn valid_for(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
}

/// Issues a certificate for `role` (and `node`, for a worker) from the CA
/// in `dir`, written beside it, valid for `days`.
pub fn issue(dir: &Path, role: Role, node: Option<&str>, days: u32) -> Result<Issued, CertsError> {
    let (stem, common, names) = match (role, node) {
        (Role::Worker, Some(node)) if valid_node(node) => {
            (format!("worker-{node}"), format!("worker {node}"), vec![Role::Worker.name().to_string(), node_name(node), MEMBER.to_string()])
        }
        (Role::Worker, Some(node)) => {
            return Err(CertsError::Invalid(format!(
                "--node {node:?}: a node id in a certificate is one DNS label (letters, digits, '-')"
            )));
        }
        (Role::Worker, None) => return Err(CertsError::Invalid("a worker's certificate names its node: give --node".into())),
        (_, Some(_)) => return Err(CertsError::Invalid(format!("--node is for a worker's certificate, not a {}'s", role.label()))),
        (Role::Coordinator, None) => {
            ("coordinator".into(), "coordinator".into(), vec![Role::Coordinator.name().to_string(), MEMBER.to_string()])
        }
        (Role::Client, None) => ("client".into(), "client".into(), vec![Role::Client.name().to_string()]),
    };
    let issued = Issued { cert: dir.join(format!("{stem}.pem")), key: dir.join(format!("{stem}.key")) };
    refuse_existing(&issued)?;
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, common);
    valid_for(&mut params, days);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    sign(dir, params, &issued)?;
    Ok(issued)
}

/// Issues etcd's server certificate from the CA in `dir`, valid for
/// `hosts` (names or IP addresses its clients dial) and for `days`, as
/// `DIR/etcd.pem`. It is also a client certificate, because etcd's JSON
/// gateway dials etcd itself with it; it names no ratchet role, so a
/// ratchet server answers it nothing. etcd trusts every client certificate
/// of the CA it is given, so it gets a CA of its own, which issues only the
/// coordinators' store certificates (see docs/cluster.md).
pub fn issue_etcd(dir: &Path, hosts: &[String], days: u32) -> Result<Issued, CertsError> {
    if hosts.is_empty() {
        return Err(CertsError::Invalid("etcd's certificate names the hosts its clients dial: give --host".into()));
    }
    if let Some(host) = hosts.iter().find(|h| h.contains('*') || h.trim_end_matches('.').ends_with(".ratchet")) {
        return Err(CertsError::Invalid(format!("--host {host}: no wildcard, and no name of a ratchet role")));
    }
    let issued = Issued { cert: dir.join("etcd.pem"), key: dir.join("etcd.key") };
    refuse_existing(&issued)?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, "etcd");
    valid_for(&mut params, days);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    sign(dir, params, &issued)?;
    Ok(issued)
}

/// Signs `params` with the CA in `dir` and writes the certificate and a
/// fresh key to `issued`.
fn sign(dir: &Path, mut params: CertificateParams, issued: &Issued) -> Result<(), CertsError> {
    let ca_key_path = dir.join(CA_KEY);
    let ca_key = std::fs::read_to_string(&ca_key_path).map_err(|source| CertsError::Io { path: ca_key_path, source })?;
    let issuer = Issuer::new(ca_params()?, KeyPair::from_pem(&ca_key)?);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write(&issued.key, key.serialize_pem().as_bytes(), 0o600)?;
    write(&issued.cert, cert.pem().as_bytes(), 0o644)
}

fn refuse_existing(issued: &Issued) -> Result<(), CertsError> {
    for path in [&issued.cert, &issued.key] {
        if path.exists() {
            return Err(CertsError::Exists(path.clone()));
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertsError> {
    let io = |source| CertsError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(io)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io)
}
