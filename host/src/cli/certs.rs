//! `ratchet certs`: the cluster's CA and the certificates of its processes.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use ratchet::transport::Role;
use ratchet::transport::certs::{self, CertsError, Issued};

use super::Failure;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a cluster CA in DIR: ca.pem (give it to every process as
    /// --tls-ca) and ca.key (keep it to issue certificates).
    Init {
        /// The directory (created if missing).
        dir: PathBuf,
    },
    /// Issue a certificate from the CA in DIR, written beside it:
    /// coordinator.pem, worker-NODE.pem, client.pem or etcd.pem, and its key.
    Issue(IssueArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Whose certificate: it names what its holder may do.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// For a worker: the node id it runs as (its --node).
    #[arg(long, value_name = "ID")]
    node: Option<String>,
    /// For etcd: a host name or IP address its clients dial (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    hosts: Vec<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = certs::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_500))]
    days: u32,
    /// The directory of the CA.
    dir: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    /// Drives recovery: may lock, recruit, release and pop.
    Coordinator,
    /// Hosts services: registers as its node, serves its proxies' calls.
    Worker,
    /// Commits and reads: `ratchet load`, `verify`, `status`.
    Client,
    /// etcd's server certificate, for a coordinator store at etcds://
    /// (from a CA of etcd's own: see docs/cluster.md).
    Etcd,
}

pub fn run(command: CertsCommand) -> Result<(), Failure> {
    let issued = match command {
        CertsCommand::Init { dir } => certs::init(&dir).map_err(failure)?,
        CertsCommand::Issue(args) => {
            let role = match args.role {
                RoleArg::Coordinator => Role::Coordinator,
                RoleArg::Worker => Role::Worker,
                RoleArg::Client => Role::Client,
                RoleArg::Etcd => {
                    let issued = certs::issue_etcd(&args.dir, &args.hosts, args.days).map_err(failure)?;
                    print(&issued);
                    println!(
                        "use: etcd --cert-file {} --key-file {} --client-cert-auth --trusted-ca-file {}",
                        issued.cert.display(),
                        issued.key.display(),
                        args.dir.join(certs::CA_CERT).display()
                    );
                    return Ok(());
                }
            };
            if !args.hosts.is_empty() {
                return Err(Failure::input("--host is for etcd's certificate"));
            }
            let issued = certs::issue(&args.dir, role, args.node.as_deref(), args.days).map_err(failure)?;
            print(&issued);
            let ca = args.dir.join(certs::CA_CERT);
            println!("use: --tls-ca {} --tls-cert {} --tls-key {}", ca.display(), issued.cert.display(), issued.key.display());
            return Ok(());
        }
    };
    print(&issued);
    Ok(())
}

fn print(issued: &Issued) {
    println!("certificate {}", issued.cert.display());
    println!("key         {} (mode 600)", issued.key.display());
}

fn failure(err: CertsError) -> Failure {
    match err {
        CertsError::Io { .. } | CertsError::Rcgen(_) => Failure::from(anyhow::Error::new(err)),
        CertsError::Exists(_) | CertsError::Invalid(_) => Failure::input(err.to_string()),
    }
}
