//! What `ratchet plugin check` reports about a component.

use super::{Digest256, LoadError, Runtime, World};

/// A component that compiled and satisfies a world.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The sha256 of its bytes.
    pub sha256: Digest256,
    /// Its size in bytes.
    pub size: usize,
    /// The world it satisfies.
    pub world: World,
    /// The names of its imports.
    pub imports: Vec<String>,
    /// The names of its exports.
    pub exports: Vec<String>,
}

/// Compiles `bytes` and finds the world they satisfy: `expected` if given,
/// else whichever world's export the component has.
pub fn inspect(runtime: &Runtime, bytes: &[u8], expected: Option<World>) -> Result<Inspection, LoadError> {
    let (component, sha256, _) = runtime.compile(bytes)?;
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(runtime.engine()).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(runtime.engine()).map(|(n, _)| n.to_string()).collect();
    let world = match expected {
        Some(world) => world,
        None => World::ALL.into_iter().find(|w| exports.iter().any(|e| e == w.export())).ok_or_else(|| LoadError::WrongWorld {
            world: "recovery-phase or placement-policy",
            reason: format!(
                "missing export `{}` or `{}` (it exports {})",
                World::RecoveryPhase.export(),
                World::PlacementPolicy.export(),
                if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
            ),
        })?,
    };
    runtime.link(&component, world)?;
    Ok(Inspection { sha256, size: bytes.len(), world, imports, exports })
}
