//! A recovery phase that misbehaves on request, for the sandbox tests.
//!
//! The behaviour is chosen by the first entry of `state.unreachable`, so one
//! component covers every case:
//!
//! | command    | what it does                                          |
//! |------------|-------------------------------------------------------|
//! | `loop`     | spins forever                                         |
//! | `grow`     | allocates memory until the host refuses more          |
//! | `panic`    | panics with a message                                 |
//! | `spew`     | writes 64 MiB to stdout                               |
//! | `sleep:MS` | sleeps MS milliseconds of host time, then stalls      |
//! | `log`      | writes a structured log line and a stderr line        |
//! | `logflood` | writes 100,000 structured log lines                   |
//! | `probe`    | reports what it can see of the host and its network   |
//! | otherwise  | stalls with `adversarial: idle`                       |

use std::io::Write;

use ratchet_guest::types::{AttemptState, PhaseOutcome, PhaseStep};
use ratchet_guest::{Host, LogLevel, Phase, outcome};

/// The misbehaving phase.
pub struct Adversarial;

impl Phase for Adversarial {
    fn run(state: AttemptState, host: &mut dyn Host) -> PhaseOutcome {
        let command = state.unreachable.first().cloned().unwrap_or_default();
        let step = match command.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("adversarial phase panicked on purpose"),
            "spew" => {
                let line = [b'x'; 1024];
                let mut out = std::io::stdout();
                for _ in 0..64 * 1024 {
                    out.write_all(&line).expect("stdout refused the write");
                }
                PhaseStep::Stalled("adversarial: spewed".into())
            }
            "log" => {
                host.log(LogLevel::Warn, "adversarial says hello", &[("k".into(), "v".into())]);
                eprintln!("adversarial stderr line");
                PhaseStep::Stalled("adversarial: logged".into())
            }
            "logflood" => {
                for i in 0..100_000u32 {
                    host.log(LogLevel::Info, "adversarial flood", &[("line".into(), i.to_string())]);
                }
                PhaseStep::Stalled("adversarial: flooded".into())
            }
            "probe" => {
                let env = std::env::vars().count();
                let file = std::fs::read("/etc/hostname").is_ok();
                let dir = std::fs::read_dir(".").is_ok();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(u64::MAX);
                use std::net::ToSocketAddrs;
                let net = std::net::TcpStream::connect("127.0.0.1:9").is_ok()
                    || std::net::UdpSocket::bind("127.0.0.1:0").is_ok()
                    || ("localhost", 80).to_socket_addrs().is_ok();
                PhaseStep::Stalled(format!("env={env} file={file} dir={dir} now={now} net={net}"))
            }
            other => match other.strip_prefix("sleep:").and_then(|ms| ms.parse().ok()) {
                Some(ms) => {
                    host.sleep_ms(ms);
                    PhaseStep::Stalled(format!("adversarial: slept {ms} ms"))
                }
                None => PhaseStep::Stalled("adversarial: idle".into()),
            },
        };
        outcome(state, step)
    }
}

ratchet_guest::export_phase!(Adversarial);
