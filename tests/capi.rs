//! The C API: the static library is built, `runtime/examples/classify.c` is compiled against it with the system C
//! compiler, and its predictions on real MNIST test images must equal the Rust API's exactly, on both paths.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Builds libslimnet_runtime.a in its own target directory (the outer cargo may hold the main one).
fn static_lib() -> PathBuf {
    let target = root().join("target/capi");
    run(Command::new(env!("CARGO"))
        .args([
            "rustc",
            "-p",
            "slimnet-runtime",
            "--release",
            "--features",
            "capi",
            "--crate-type",
            "staticlib",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root()));
    target.join("release/libslimnet_runtime.a")
}

#[test]
fn c_example_agrees_with_the_rust_api_on_real_images() {
    let dir = tempfile::tempdir().unwrap();
    let lib = static_lib();
    let exe = dir.path().join("classify");
    run(Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-std=c11", "-I"])
        .arg(root().join("runtime/include"))
        .arg(root().join("runtime/examples/classify.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe));

    // Real test images, uncompressed for the C program.
    let mut images = Vec::new();
    flate2::read::GzDecoder::new(
        fs::File::open(root().join("data/mnist/t10k-images-idx3-ubyte.gz")).unwrap(),
    )
    .read_to_end(&mut images)
    .unwrap();
    let idx = dir.path().join("images.idx");
    fs::write(&idx, &images).unwrap();

    // A quickly trained model, exported both ways.
    let bin = env!("CARGO_BIN_EXE_slimnet");
    let model = dir.path().join("m.safetensors");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    run(Command::new(bin)
        .args([
            "train",
            "--epochs",
            "1",
            "--train-limit",
            "2000",
            "--val",
            "500",
            "-q",
            "--out",
        ])
        .arg(&model)
        .current_dir(root()));
    let count = 300;
    for encoding in ["f32", "int8"] {
        let slim = dir.path().join(format!("m-{encoding}.slim"));
        run(Command::new(bin)
            .args([
                "export",
                &s(&model),
                "--encoding",
                encoding,
                "--out",
                &s(&slim),
            ])
            .current_dir(root()));
        let bytes = fs::read(&slim).unwrap();
        let m = slimnet_runtime::Model::from_bytes(&bytes).unwrap();
        let paths: &[bool] = if encoding == "int8" {
            &[false, true]
        } else {
            &[false]
        };
        for &integer in paths {
            let mut arena = vec![0u8; m.arena_len().max(m.arena_len_int8())];
            let rust: Vec<usize> = (0..count)
                .map(|i| {
                    let img = &images[16 + i * 784..16 + (i + 1) * 784];
                    if integer {
                        m.predict_int8(img, &mut arena)
                    } else {
                        m.predict_u8(img, &mut arena)
                    }
                    .unwrap()
                })
                .collect();
            let mut cmd = Command::new(&exe);
            cmd.arg(&slim).arg(&idx).arg(count.to_string());
            if integer {
                cmd.arg("int8");
            }
            let c: Vec<usize> = run(&mut cmd).lines().map(|l| l.parse().unwrap()).collect();
            assert_eq!(c, rust, "{encoding}, integer path: {integer}");
        }
    }
    // A foreign file gets the C API's error message and a non-zero exit.
    let out = Command::new(&exe)
        .arg(&idx)
        .arg(&idx)
        .arg("1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a .slim file"));
}
