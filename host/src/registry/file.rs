//! Reading a component from a file without trusting the file: only a
//! regular file (a FIFO would block the reader for ever, a device could
//! stream without end), and at most a given size.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Reads the component file at `path`, refusing anything but a regular
/// file and a file of more than `max` bytes. The file is opened without
/// blocking, so a FIFO is refused rather than waited on.
pub fn read_component(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("not a regular file ({})", kind(&meta))));
    }
    if meta.len() > max as u64 {
        return Err(too_large(meta.len(), max));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The size may have grown since the stat: read one byte past the limit
    // to see it.
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(too_large(bytes.len() as u64, max));
    }
    Ok(bytes)
}

fn too_large(len: u64, max: usize) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{len} bytes is more than the {max} a component may have"))
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_component(&file, 10).unwrap(), b"0123456789");
        let err = read_component(&file, 9).unwrap_err().to_string();
        assert!(err.contains("10 bytes is more than the 9"), "{err}");

        let fifo = dir.path().join("fifo.wasm");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let err = read_component(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("not a regular file (a FIFO)"), "{err}");
        let err = read_component(Path::new("/dev/zero"), 1 << 20).unwrap_err().to_string();
        assert!(err.contains("not a regular file (a device)"), "{err}");
        assert!(read_component(dir.path(), 1 << 20).is_err());
    }
}
