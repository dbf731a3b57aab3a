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

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The embedded default of `slot`, if there is one.
pub fn default_for(slot: &str) -> Option<&'static EmbeddedComponent> {
    DEFAULTS.iter().find(|c| c.slot == slot)
}
