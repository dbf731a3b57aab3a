//! The default components, built by `host/build.rs` and embedded in the
//! binary so that `ratchet` works with no files on disk.

/// A default component embedded in the binary.
#[derive(Debug)]
pub struct EmbeddedComponent {
    /// The slot this component is the default of.
    pub slot: &'static str,
    /// The crate it was built from.
    pub package: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

/// An alternative component shipped in the binary, named for the CLI's
/// `--plugin SLOT=builtin:NAME`.
#[derive(Debug)]
pub struct BundledComponent {
    /// Its name, such as `pack`.
    pub name: &'static str,
    /// The slot it is written for.
    pub slot: &'static str,
    /// The crate it was built from.
    pub package: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The embedded default of `slot`, if there is one.
pub fn default_for(slot: &str) -> Option<&'static EmbeddedComponent> {
    DEFAULTS.iter().find(|c| c.slot == slot)
}

/// The bundled alternative called `name`, if there is one.
pub fn bundled(name: &str) -> Option<&'static BundledComponent> {
    BUNDLED.iter().find(|c| c.name == name)
}
