//! Whether the compiler has the AVX-512 intrinsics and target features (stable since Rust 1.89), for the x86-64
//! dense kernel in `src/ops/lanes.rs`. The crate's minimum, 1.85, is Debian's rustc-web, which builds it for the
//! Cortex-M targets only; a host compiler older than 1.89 builds the AVX2 kernel alone. Written by hand: the
//! runtime takes no dependencies, build ones included (the `rustversion` crate would do this).
use std::process::Command;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(slimnet_avx512)");
    println!("cargo:rerun-if-changed=build.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok());
    // "rustc 1.95.0 (…)": the minor version.
    let minor = version
        .as_deref()
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    if minor.is_some_and(|m| m >= 89) {
        println!("cargo:rustc-cfg=slimnet_avx512");
    }
}
