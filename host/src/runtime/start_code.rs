//! Whether a component runs code of its own while it is instantiated: a
//! core module's `start` function (wit-component makes one of a reactor's
//! exported `_initialize`, such as a C plugin's constructors). The guest
//! clock counts instantiation only for such a component: otherwise the
//! code instantiation runs is wasmtime's setting up of tables and element
//! segments (see `guest_time.rs`).

/// Whether any core module in `bytes`, or the component itself, has a start
/// function. Bytes that do not parse answer `false`: compiling them fails.
pub(crate) fn has_start_function(bytes: &[u8]) -> bool {
    use wasmparser::Payload;
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .any(|payload| matches!(payload, Ok(Payload::StartSection { .. } | Payload::ComponentStartSection { .. })))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module of one empty function, which is its start function.
    const MODULE_WITH_START: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
        0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // one type: () -> ()
        0x03, 0x02, 0x01, 0x00, // one function of that type
        0x08, 0x01, 0x00, // start: function 0
        0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // its body: no locals, end
    ];

    #[test]
    fn a_start_section_is_found_and_the_default_plugins_have_none() {
        assert!(has_start_function(MODULE_WITH_START));
        let without_start = [&MODULE_WITH_START[..18], &MODULE_WITH_START[21..]].concat();
        assert!(!has_start_function(&without_start));
        for component in crate::components::DEFAULTS {
            assert!(!has_start_function(component.bytes), "{} runs code when instantiated", component.slot);
        }
        assert!(!has_start_function(b"not wasm at all"));
    }
}
