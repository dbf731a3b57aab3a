//! `ratchet plugin ...`: check a component file, list the embedded defaults.

use std::path::PathBuf;

use clap::Subcommand;
use ratchet::components;
use ratchet::registry::{all_slots, world_of};
use ratchet::runtime::{Digest256, Runtime, inspect};

use super::Failure;

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
    /// List the default components embedded in this binary.
    List,
}

pub fn run(command: PluginCommand, runtime: impl FnOnce() -> Result<Runtime, Failure>) -> Result<(), Failure> {
    match command {
        PluginCommand::Check { file, slot } => check(&file, slot.as_deref(), runtime),
        PluginCommand::List => {
            list();
            Ok(())
        }
    }
}

fn check(
    file: &PathBuf,
    slot: Option<&str>,
    runtime: impl FnOnce() -> Result<Runtime, Failure>,
) -> Result<(), Failure> {
    let expected = match slot {
        None => None,
        Some(slot) => Some(world_of(slot).ok_or_else(|| {
            Failure::input(format!(
                "unknown slot `{slot}` (slots: {})",
                all_slots().collect::<Vec<_>>().join(", ")
            ))
        })?),
    };
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::input(format!("{}: cannot read: {e}", file.display())))?;
    let runtime = runtime()?;
    let found = inspect(&runtime, &bytes, expected)
        .map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
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
    println!("{:<28} {:<64} {:>9}  {}", "SLOT", "SHA256", "BYTES", "CRATE");
    for component in components::DEFAULTS {
        println!(
            "{:<28} {:<64} {:>9}  {}",
            component.slot,
            Digest256::of(component.bytes),
            component.bytes.len(),
            component.package
        );
    }
    let missing: Vec<&str> = all_slots().filter(|s| components::default_for(s).is_none()).collect();
    if !missing.is_empty() {
        println!("\nslots without an embedded default: {}", missing.join(", "));
    }
}
