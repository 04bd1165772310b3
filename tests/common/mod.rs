//! Helpers shared by the end-to-end tests: run the binary, expect success or one clean error line.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

pub fn slimnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slimnet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SLIMNET_DATA")
        .output()
        .expect("the binary runs")
}

pub fn ok(args: &[&str]) -> String {
    let out = slimnet(args);
    assert!(
        out.status.success(),
        "slimnet {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail and returns its stderr, checking that it is one clean error line.
pub fn fails(args: &[&str]) -> String {
    let out = slimnet(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "slimnet {args:?} should fail");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace") && !err.contains("internal error"),
        "{err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("error:"), "{err}");
    err
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
