//! Standard output that never panics. `println!` panics when stdout fails (`slimnet info m.slim > /dev/full`,
//! a closed pipe); [`outln!`] and [`out!`] write through [`write`], which remembers the first failure and stops
//! writing, and `main` reports it once at the end ([`finish`]) as a one-line error with a non-zero exit.

use std::io::{self, Write};
use std::sync::OnceLock;

/// The first write error, if any.
static FAILED: OnceLock<io::Error> = OnceLock::new();

/// Writes `args` to standard output, unless an earlier write failed.
pub fn write(args: std::fmt::Arguments) {
    if FAILED.get().is_some() {
        return;
    }
    if let Err(e) = io::stdout().lock().write_fmt(args) {
        let _ = FAILED.set(e);
    }
}

/// Flushes standard output and returns the first write error of the run.
pub fn finish() -> io::Result<()> {
    if let Err(e) = io::stdout().lock().flush() {
        let _ = FAILED.set(e);
    }
    match FAILED.get() {
        Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
        None => Ok(()),
    }
}
