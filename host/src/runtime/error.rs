//! Why a component could not be loaded.

use std::path::PathBuf;

/// Why a component could not be loaded into the runtime or a slot. Every
/// variant reads as one line naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The input had no bytes.
    #[error("empty file: there are no bytes to load")]
    Empty,
    /// The input is not WebAssembly at all.
    #[error("not a WebAssembly file: it does not start with the `\\0asm` magic bytes")]
    NotWasm,
    /// The input stops before its end.
    #[error("truncated WebAssembly file: {0}")]
    Truncated(String),
    /// The input is a core module.
    #[error("a core WebAssembly module, not a component: build the plugin for wasm32-wasip2 (or wrap it with `wasm-tools component new`)")]
    CoreModule,
    /// The input has a WebAssembly version or layer this runtime cannot load.
    #[error("unsupported WebAssembly encoding: version {version:#06x}, layer {layer}")]
    UnknownEncoding {
        /// The version field of the header.
        version: u16,
        /// The layer field of the header.
        layer: u16,
    },
    /// The component is malformed or uses features the engine does not enable.
    #[error("invalid component: {0}")]
    Compile(String),
    /// The component does not satisfy the world its slot requires.
    #[error("does not satisfy the world `{world}`: {reason}")]
    WrongWorld {
        /// The world required.
        world: &'static str,
        /// What is missing or mismatched.
        reason: String,
    },
    /// No slot has that name.
    #[error("unknown slot `{slot}` (slots: {known})")]
    UnknownSlot {
        /// The name asked for.
        slot: String,
        /// The slots that exist.
        known: String,
    },
    /// No bundled component has that name, or it is written for another slot.
    #[error("no built-in component `{name}` for slot `{slot}` (built-ins: {known})")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The slot it was asked for.
        slot: String,
        /// The built-ins that exist, as `slot=builtin:name`.
        known: String,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The engine itself could not be set up.
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
}

impl LoadError {
    pub(crate) fn engine(err: wasmtime::Error) -> Self {
        LoadError::Engine(format!("{err:#}"))
    }

    pub(crate) fn compile(err: wasmtime::Error) -> Self {
        let message = format!("{err:#}");
        // The parser reports a cut-off file either as an early end or as a
        // section that claims more bytes than the file has.
        let cut_off = message.contains("unexpected end") || (message.contains("section range") && message.contains("out of bounds"));
        if cut_off { LoadError::Truncated(message) } else { LoadError::Compile(message) }
    }
}

const MAGIC: &[u8; 4] = b"\0asm";
/// Version 1, layer 0: a core module.
const CORE_MODULE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
/// Version 0x0d, layer 1: a component.
const COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Checks the 8-byte header before handing the bytes to the compiler, so the
/// common mistakes get a precise error.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.is_empty() {
        return Err(LoadError::Empty);
    }
    let magic_len = bytes.len().min(MAGIC.len());
    if bytes[..magic_len] != MAGIC[..magic_len] {
        return Err(LoadError::NotWasm);
    }
    if bytes.len() < 8 {
        return Err(LoadError::Truncated(format!("{} bytes, shorter than the 8-byte header", bytes.len())));
    }
    let header: [u8; 4] = bytes[4..8].try_into().expect("slice of length 4");
    match header {
        COMPONENT => Ok(()),
        CORE_MODULE => Err(LoadError::CoreModule),
        other => Err(LoadError::UnknownEncoding {
            version: u16::from_le_bytes([other[0], other[1]]),
            layer: u16::from_le_bytes([other[2], other[3]]),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_told_apart() {
        assert!(matches!(check_header(b""), Err(LoadError::Empty)));
        assert!(matches!(check_header(b"hello world"), Err(LoadError::NotWasm)));
        assert!(matches!(check_header(b"\0as"), Err(LoadError::Truncated(_))));
        assert!(matches!(check_header(b"\0asm\x0d\0"), Err(LoadError::Truncated(_))));
        assert!(matches!(check_header(b"\0asm\x01\0\0\0"), Err(LoadError::CoreModule)));
        assert!(matches!(check_header(b"\0asm\x0e\0\x01\0"), Err(LoadError::UnknownEncoding { version: 0x0e, layer: 1 })));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
