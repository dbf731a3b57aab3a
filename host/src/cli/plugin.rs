//! `ratchet plugin ...`: check a component file, list the embedded defaults,
//! and list, swap, roll back and show the history of a running coordinator's
//! slots through its admin endpoint.

use std::path::PathBuf;

use clap::Subcommand;
use ratchet::components;
use ratchet::registry::{all_slots, world_of};
use ratchet::runtime::{Digest256, Runtime, inspect};

use super::Failure;
use super::admin::{AdminArgs, AdminClient};
use ratchet::admin::{History, PluginVersion, ShadowReport, SlotSummary};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check that a component file compiles and satisfies a ratchet world;
    /// print its world, sha256, imports and exports. Exits 2 if it does not.
    Check {
        /// The component file (.wasm).
        file: PathBuf,
        /// Check against the world of this slot (a phase name or `placement`)
        /// instead of detecting the world from the exports.
        #[arg(long, value_name = "SLOT")]
        slot: Option<String>,
    },
    /// List the default components embedded in this binary, or, with
    /// `--admin`, every slot of a running coordinator and its active version.
    List {
        /// A running coordinator's admin endpoint.
        #[arg(long, value_name = "ADDR")]
        admin: Option<String>,
        /// A file holding the admin endpoint's bearer token.
        #[arg(long, value_name = "FILE", requires = "admin")]
        token_file: Option<PathBuf>,
    },
    /// Swap a slot of a running coordinator to a new component. It serves
    /// from the slot's next call once it compiles, satisfies the slot's world
    /// and passes a dry run against a copy of the cluster; otherwise it is
    /// refused (exit 1, with the reason) and the active version keeps serving.
    Swap {
        /// The slot: a phase name or `placement`.
        slot: String,
        /// The component file (.wasm).
        file: PathBuf,
        /// Run it in shadow instead: beside the active version on every call
        /// of the slot, with no side effects, reporting where they differ
        /// (see `plugin shadow`, `plugin promote`, `plugin discard`).
        #[arg(long)]
        shadow: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a slot's shadow: its calls, and every call where it decided
    /// differently from the active version.
    Shadow {
        /// The slot: a phase name or `placement`.
        slot: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a slot's shadow its active version.
    Promote {
        /// The slot: a phase name or `placement`.
        slot: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Stop a slot's shadow without activating it.
    Discard {
        /// The slot: a phase name or `placement`.
        slot: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Roll a slot of a running coordinator back to its previous version.
    Rollback {
        /// The slot: a phase name or `placement`.
        slot: String,
        /// The version to return to, instead of the previous one.
        #[arg(long, value_name = "N")]
        to: Option<u32>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show a slot's versions and its audit trail on a running coordinator.
    History {
        /// The slot: a phase name or `placement`.
        slot: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

pub fn run(command: PluginCommand, runtime: impl FnOnce() -> Result<Runtime, Failure>) -> Result<(), Failure> {
    match command {
        PluginCommand::Check { file, slot } => check(&file, slot.as_deref(), runtime),
        PluginCommand::List { admin: None, .. } => {
            list();
            Ok(())
        }
        PluginCommand::List { admin: Some(addr), token_file } => list_remote(&AdminArgs { addr, token_file }),
        PluginCommand::Swap { slot, file, shadow: false, admin } => swap(&slot, &file, &admin),
        PluginCommand::Swap { slot, file, shadow: true, admin } => shadow(&slot, &file, &admin),
        PluginCommand::Shadow { slot, admin } => shadow_report(&slot, &admin),
        PluginCommand::Promote { slot, admin } => end_shadow(&slot, "promote", &admin),
        PluginCommand::Discard { slot, admin } => end_shadow(&slot, "discard", &admin),
        PluginCommand::Rollback { slot, to, admin } => rollback(&slot, to, &admin),
        PluginCommand::History { slot, admin } => history(&slot, &admin),
    }
}

fn list_remote(admin: &AdminArgs) -> Result<(), Failure> {
    let slots: Vec<SlotSummary> = AdminClient::new(admin)?.get("/plugins")?;
    println!("{:<28} {:>7} {:>8}  {:<16} {:<24} SOURCE", "SLOT", "ACTIVE", "VERSIONS", "SHA256", "LOADED");
    for slot in slots {
        match slot.active {
            Some(v) => println!(
                "{:<28} {:>7} {:>8}  {:<16} {:<24} {}",
                slot.slot,
                format!("v{}", v.number),
                slot.versions,
                &v.sha256[..16.min(v.sha256.len())],
                v.loaded_at,
                v.source
            ),
            None => println!("{:<28} {:>7} {:>8}", slot.slot, "-", slot.versions),
        }
    }
    Ok(())
}

fn swap(slot: &str, file: &PathBuf, admin: &AdminArgs) -> Result<(), Failure> {
    let bytes = std::fs::read(file).map_err(|e| Failure::input(format!("{}: cannot read: {e}", file.display())))?;
    let client = AdminClient::new(admin)?;
    let source = file.display().to_string();
    let swapped: serde_json::Value = client.post(&format!("/plugins/{slot}"), &[("source", &source)], &bytes)?;
    let version = &swapped["version"];
    println!("swapped: {slot} v{} (sha256 {}) serves from its next call", version["number"], version["sha256"].as_str().unwrap_or("?"));
    println!(
        "  dry run passed: {} attempts, {} writes read back, {:.1} ms",
        swapped["dry_run"]["attempts"],
        swapped["dry_run"]["writes"],
        swapped["dry_run"]["millis"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}

fn shadow(slot: &str, file: &PathBuf, admin: &AdminArgs) -> Result<(), Failure> {
    let bytes = std::fs::read(file).map_err(|e| Failure::input(format!("{}: cannot read: {e}", file.display())))?;
    let source = file.display().to_string();
    let query = [("source", source.as_str()), ("shadow", "true")];
    let version: PluginVersion = AdminClient::new(admin)?.post(&format!("/plugins/{slot}"), &query, &bytes)?;
    println!("shadowing: {slot} v{} (sha256 {}) runs beside the active version from its next call", version.number, version.sha256);
    Ok(())
}

fn shadow_report(slot: &str, admin: &AdminArgs) -> Result<(), Failure> {
    let report: ShadowReport = AdminClient::new(admin)?.get(&format!("/plugins/{slot}/shadow"))?;
    match &report.shadow {
        Some(v) => println!("shadow: {slot} v{} ({})", v.number, v.source),
        None => println!("shadow: none running in {slot}"),
    }
    println!("calls {}, decided differently {}", report.record.calls, report.record.divergences.len());
    for d in &report.record.divergences {
        let at = if d.epoch > 0 { format!("epoch {} attempt {}", d.epoch, d.attempt) } else { "placement call".into() };
        println!("\n{at}: active v{} vs shadow v{}", d.active_version, d.shadow_version);
        println!("  active: {}", d.active);
        println!("  shadow: {}", d.shadow);
        for call in &d.would_have_made {
            println!("  would have made: {call}");
        }
    }
    Ok(())
}

fn end_shadow(slot: &str, action: &str, admin: &AdminArgs) -> Result<(), Failure> {
    let version: PluginVersion = AdminClient::new(admin)?.post(&format!("/plugins/{slot}/shadow/{action}"), &[], &[])?;
    let done = if action == "promote" { "promoted: now active" } else { "discarded: never served" };
    println!("{slot} v{} (sha256 {}) {done}", version.number, version.sha256);
    Ok(())
}

fn rollback(slot: &str, to: Option<u32>, admin: &AdminArgs) -> Result<(), Failure> {
    let to = to.map(|n| n.to_string());
    let query: Vec<(&str, &str)> = to.as_deref().map(|n| ("to", n)).into_iter().collect();
    let version: PluginVersion = AdminClient::new(admin)?.post(&format!("/plugins/{slot}/rollback"), &query, &[])?;
    println!("rolled back: {slot} v{} (sha256 {}, {}) is active", version.number, version.sha256, version.source);
    Ok(())
}

fn history(slot: &str, admin: &AdminArgs) -> Result<(), Failure> {
    let history: History = AdminClient::new(admin)?.get(&format!("/plugins/{slot}/history"))?;
    println!("{:<8} {:<64} {:<24} SOURCE", "VERSION", "SHA256", "LOADED");
    for v in &history.versions {
        let mark = if v.active { "*" } else { " " };
        println!("{:<8} {:<64} {:<24} {}", format!("{mark}v{}", v.number), v.sha256, v.loaded_at, v.source);
    }
    println!("\n{:<24} {:<9} {:<13} {:<8} {:<16} RESULT", "TIME", "ACTION", "TRIGGER", "VERSION", "SHA256");
    for e in &history.events {
        println!(
            "{:<24} {:<9} {:<13} {:<8} {:<16} {}",
            e.time,
            e.action,
            e.trigger,
            e.version.map_or("-".into(), |n| format!("v{n}")),
            e.sha256.as_deref().map_or("-", |s| &s[..16.min(s.len())]),
            e.result
        );
    }
    Ok(())
}

fn check(file: &PathBuf, slot: Option<&str>, runtime: impl FnOnce() -> Result<Runtime, Failure>) -> Result<(), Failure> {
    let expected = match slot {
        None => None,
        Some(slot) => Some(
            world_of(slot)
                .ok_or_else(|| Failure::input(format!("unknown slot `{slot}` (slots: {})", all_slots().collect::<Vec<_>>().join(", "))))?,
        ),
    };
    let bytes = std::fs::read(file).map_err(|e| Failure::input(format!("{}: cannot read: {e}", file.display())))?;
    let runtime = runtime()?;
    let found = inspect(&runtime, &bytes, expected).map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
    println!("ok: {} satisfies the world `{}`", file.display(), found.world);
    if let Some(slot) = slot {
        println!("  slot     {slot}");
    }
    println!("  sha256   {}", found.sha256);
    println!("  size     {} bytes", found.size);
    println!("  imports  {}", list_or_none(&found.imports));
    println!("  exports  {}", list_or_none(&found.exports));
    Ok(())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() { "(none)".to_string() } else { items.join("\n           ") }
}

fn list() {
    println!("{:<28} {:<64} {:>9}  CRATE", "SLOT", "SHA256", "BYTES");
    for component in components::DEFAULTS {
        list_row(component.slot, component.bytes, component.package);
    }
    let missing: Vec<&str> = all_slots().filter(|s| components::default_for(s).is_none()).collect();
    if !missing.is_empty() {
        println!("\nslots without an embedded default: {}", missing.join(", "));
    }
    println!("\nalso shipped in the binary, for --plugin SLOT=builtin:NAME (demo, coordinator, experiment):");
    println!("{:<28} {:<64} {:>9}  USE", "SLOT", "SHA256", "BYTES");
    for component in components::BUNDLED {
        list_row(component.slot, component.bytes, &format!("--plugin {}=builtin:{}", component.slot, component.name));
    }
}

/// A line of `plugin list`: the slot, the component's digest and size, and
/// what follows them.
fn list_row(slot: &str, bytes: &[u8], last: &str) {
    println!("{slot:<28} {:<64} {:>9}  {last}", Digest256::of(bytes), bytes.len());
}
