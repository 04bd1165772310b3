//! Bounded file input: a model or data file is read up to a limit, so `/dev/zero`, a FIFO that never ends or a
//! runaway file gives an error naming the file, never a hang or exhausted memory; a FIFO that no one writes to
//! reads as empty instead of blocking ([`open`]).

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// The largest model file read (safetensors, `.slim`, `.tflite`, checkpoints): 256 MiB, far beyond any network
/// a microcontroller runs (MobileNet v1 at full width is 17 MB in f32).
pub const MODEL_LIMIT: u64 = 256 << 20;

/// The largest data file read whole (`.npy` tensors): 4 GiB.
pub const DATA_LIMIT: u64 = 4 << 30;

/// The largest JSON report or peer file read: 64 MiB.
pub const REPORT_LIMIT: u64 = 64 << 20;

/// Opens `path` for reading. A FIFO is opened without waiting for a writer (`open` would block until one
/// comes): one that is writing is read as usual, one that no one writes to reads as empty.
pub fn open(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    use std::os::unix::io::AsRawFd;
    let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
    if !fifo {
        return std::fs::File::open(path);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // Back to blocking reads, so that a connected writer is waited for; with none, a read is end of file.
    // SAFETY: fcntl on a descriptor this function owns (kept alive by `file`), with flags it just read.
    let ok = unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        flags >= 0 && libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0
    };
    if !ok {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

/// Reads at most `limit` bytes of `path`; a longer file (or stream) is an error.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::io(
            path,
            std::io::Error::other("is a directory, not a file"),
        ));
    }
    let mut out = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.into(),
            limit,
        });
    }
    Ok(out)
}

/// Reads a model file (at most [`MODEL_LIMIT`] bytes).
pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    read_limited(path, MODEL_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_oversized_inputs_are_errors_naming_the_file() {
        let e = read_limited(Path::new("/dev/zero"), 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/zero") && e.contains("larger than"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_limited(dir.path(), 1000).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let f = dir.path().join("m");
        std::fs::write(&f, [7u8; 1000]).unwrap();
        assert_eq!(read_limited(&f, 1000).unwrap().len(), 1000);
        assert!(read_limited(&f, 999).is_err());
        // A FIFO no one writes to reads as empty, at once.
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert_eq!(read_limited(&fifo, 1000).unwrap(), b"");
    }
}
