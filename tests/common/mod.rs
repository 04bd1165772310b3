//! Helpers shared by the end-to-end tests: run the binary, expect success or one clean error line.
#![allow(dead_code)] // each test file uses its own subset

use std::fs;
use std::io::Write;
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

/// Runs a command that must fail and returns its stderr, checking that it holds one clean error line.
pub fn fails(args: &[&str]) -> String {
    let out = slimnet(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "slimnet {args:?} should fail");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace") && !err.contains("internal error"),
        "{err}"
    );
    // One `error:` line (clap's usage errors add a hint after it).
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    err
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A learnable 12×12 dataset with 4 classes: the bright quadrant is the label.
pub fn quadrants(dir: &Path, n: u32) {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let c = (i % 4) as usize;
        labels.push(c as u8);
        for r in 0..12 {
            for col in 0..12 {
                let q = (r / 6) * 2 + col / 6;
                images.push(if q == c {
                    180 + (i * 7 % 70) as u8
                } else {
                    (i * 13 % 60) as u8
                });
            }
        }
    }
    for (name, bytes) in [
        (
            "train-images-idx3-ubyte.gz",
            gz(&idx(&[n, 12, 12], &images)),
        ),
        ("train-labels-idx1-ubyte.gz", gz(&idx(&[n], &labels))),
        ("t10k-images-idx3-ubyte", idx(&[n, 12, 12], &images)),
        ("t10k-labels-idx1-ubyte", idx(&[n], &labels)),
    ] {
        fs::write(dir.join(name), bytes).unwrap();
    }
}
