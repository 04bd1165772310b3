//! File output. A regular file (or a new one) is written atomically: to a temporary file beside the target,
//! flushed to disk, then renamed over it, so a crash or an error part-way leaves the previous file (or none) in
//! place, never a half-written one. Anything else is written straight through, never replaced: `-` and
//! `/dev/stdout` are standard output, a device (`/dev/null`, `/dev/full`), a FIFO or a `/proc/self/fd` path is
//! opened and written, and a symbolic link's target is what gets replaced (the link stays). Temporary files left
//! by a killed run (`.NAME.tmp-PID` of a process that no longer exists) are removed by the next successful write
//! of the same file. [`check_output`] finds a bad output path before a command starts its work.

use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How an output path is written.
#[derive(Debug, PartialEq)]
enum Target {
    /// Standard output (`-`, `/dev/stdout`).
    Stdout,
    /// Opened and written in place: a device, a FIFO, a descriptor path.
    Direct(PathBuf),
    /// A regular file, new or replaced atomically (symbolic links resolved).
    Atomic(PathBuf),
}

/// Symbolic links followed before giving up (as the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Writes `bytes` to `path`: atomically when it is (or will be) a regular file, straight through otherwise.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    match target(path)? {
        Target::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io(path, e))
        }
        Target::Direct(p) => fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.flush()))
            .map_err(|e| Error::io(path, e)),
        Target::Atomic(p) => replace(&p, bytes).map_err(|e| Error::io(path, e)),
    }
}

/// Fails, before any work, if `path` cannot take a command's output: its directory is missing, it is a
/// directory, it is one of the command's `inputs` (writing would destroy them), or its directory is not writable.
pub fn check_output(path: &Path, inputs: &[&Path]) -> Result<()> {
    let bad = |reason: String| Error::Output {
        path: path.to_path_buf(),
        reason,
    };
    let target = target(path)?;
    let Target::Atomic(file) = &target else {
        return Ok(());
    };
    let dir = parent(file);
    if !dir.is_dir() {
        return Err(bad(format!("directory {} does not exist", dir.display())));
    }
    if let Some(input) = inputs.iter().find(|i| same_file(i, file)) {
        let spelled = match input == &path {
            true => String::new(),
            false => format!(" ({})", input.display()),
        };
        return Err(bad(format!(
            "is also an input of this command{spelled}: writing it would destroy it; choose another output"
        )));
    }
    // Create and remove a probe where the temporary file will go: a read-only directory fails now.
    let probe = temp_path(file);
    fs::File::create(&probe)
        .and_then(|_| fs::remove_file(&probe))
        .map_err(|e| bad(format!("cannot write in {}: {e}", dir.display())))
}

/// Whether `path` is (or will be) a regular file, written atomically — not standard output, a device, a FIFO or
/// a descriptor path. A file beside such an output (a checkpoint `OUT.ckpt`) makes no sense.
pub fn is_file_target(path: &Path) -> bool {
    matches!(target(path), Ok(Target::Atomic(_)))
}

/// Whether two outputs of one command name the same file: spelled alike, or the same existing file.
pub fn same_output(a: &Path, b: &Path) -> bool {
    a == b || same_file(a, b)
}

/// Whether `a` and `b` are the same existing file (after links, whatever the spelling).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// How `path` is written: standard output, straight through, or atomically at the end of its links.
fn target(path: &Path) -> Result<Target> {
    if path == Path::new("-") || path == Path::new("/dev/stdout") {
        return Ok(Target::Stdout);
    }
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        if p.starts_with("/proc") || p.starts_with("/dev/fd") {
            return Ok(Target::Direct(p));
        }
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::Atomic(p)),
            Err(e) => return Err(Error::io(path, e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = fs::read_link(&p).map_err(|e| Error::io(path, e))?;
            p = parent(&p).join(link);
        } else if kind.is_dir() {
            return Err(Error::Output {
                path: path.to_path_buf(),
                reason: "is a directory: give a file name".into(),
            });
        } else if kind.is_file() {
            return Ok(Target::Atomic(p));
        } else {
            return Ok(Target::Direct(p));
        }
    }
    Err(Error::Output {
        path: path.to_path_buf(),
        reason: format!("more than {MAX_LINKS} symbolic links"),
    })
}

/// The directory `path` lies in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Writes a temporary file beside `path`, syncs it and renames it over `path`; then clears stale temporaries.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    remove_stale_temporaries(path);
    Ok(())
}

/// `dir/.name.tmp-PID`: same directory (so the rename cannot cross file systems), hidden, unique per process.
fn temp_path(path: &Path) -> PathBuf {
    path.with_file_name(format!("{}{}", temp_prefix(path), std::process::id()))
}

fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    format!(".{name}.tmp-")
}

/// Removes `path`'s temporaries whose writer is gone (a `kill -9` mid-write). Best effort: errors are ignored.
fn remove_stale_temporaries(path: &Path) {
    let prefix = temp_prefix(path);
    let Ok(entries) = fs::read_dir(parent(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix)?.parse::<u32>().ok());
        if pid.is_some_and(|pid| !process_alive(pid, &entry.path())) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` may still be writing `tmp`: on Linux, whether it exists (`/proc/PID`); elsewhere,
/// whether the file was touched in the last hour.
fn process_alive(pid: u32, tmp: &Path) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    let age = fs::metadata(tmp).and_then(|m| m.modified()).ok();
    age.and_then(|t| t.elapsed().ok())
        .is_none_or(|a| a < std::time::Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/model.bin");
        let err = write_atomic(&path, b"x").unwrap_err().to_string();
        assert!(err.contains("model.bin"), "{err}");
        let err = check_output(&path, &[]).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn a_symlink_keeps_pointing_at_its_replaced_target() {
        let dir = tempfile::tempdir().unwrap();
        let (real, link) = (dir.path().join("real.bin"), dir.path().join("link.bin"));
        fs::write(&real, b"old").unwrap();
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&real).unwrap(), b"new");
        // A dangling link creates its target.
        let (gone, dangling) = (dir.path().join("gone.bin"), dir.path().join("dangling"));
        std::os::unix::fs::symlink(&gone, &dangling).unwrap();
        write_atomic(&dangling, b"x").unwrap();
        assert_eq!(fs::read(&gone).unwrap(), b"x");
    }

    #[test]
    fn devices_and_fifos_are_written_straight_through() {
        write_atomic(Path::new("/dev/null"), b"discarded").unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        let err = write_atomic(Path::new("/dev/full"), b"x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev/full"), "{err}");
        assert_eq!(target(Path::new("-")).unwrap(), Target::Stdout);
        assert!(
            !is_file_target(Path::new("/dev/null")) && is_file_target(Path::new("/tmp/new-file"))
        );
        assert_eq!(
            target(Path::new("/proc/self/fd/1")).unwrap(),
            Target::Direct("/proc/self/fd/1".into())
        );
    }

    #[test]
    fn directories_and_inputs_are_refused_as_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_output(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let input = dir.path().join("a.safetensors");
        fs::write(&input, b"model").unwrap();
        let spelled = dir.path().join(".").join("a.safetensors");
        let err = check_output(&spelled, &[&input]).unwrap_err().to_string();
        assert!(err.contains("also an input"), "{err}");
        assert_eq!(fs::read(&input).unwrap(), b"model");
        check_output(&dir.path().join("b.slim"), &[&input]).unwrap();
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the probe is gone"
        );
    }

    #[test]
    fn temporaries_of_dead_writers_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.slim");
        // PID 4194304 exceeds Linux's pid_max: no such process. Another file's temporary stays.
        let stale = dir.path().join(".m.slim.tmp-4194304");
        let other = dir.path().join(".n.slim.tmp-4194304");
        fs::write(&stale, b"half").unwrap();
        fs::write(&other, b"half").unwrap();
        write_atomic(&path, b"whole").unwrap();
        assert!(!stale.exists());
        assert!(other.exists());
    }
}
