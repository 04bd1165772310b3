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

/// Compiles `runtime/examples/NAME.c` against the static library into `dir`.
fn example(dir: &Path, name: &str) -> PathBuf {
    let exe = dir.join(name);
    run(Command::new("cc")
        .args(["-O2", "-Wall", "-Werror", "-std=c11", "-I"])
        .arg(root().join("runtime/include"))
        .arg(root().join(format!("runtime/examples/{name}.c")))
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe));
    exe
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
    let exe = example(dir.path(), "classify");

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
    // The compressed LeNet-300-100 the firmware embeds, run from its streams and prepared (slimnet_prepare).
    let slim = root().join("runtime/embedded/models/lenet-300-100.slim");
    let bytes = fs::read(&slim).unwrap();
    let m = slimnet_runtime::Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; m.arena_len_int8()];
    let rust: Vec<usize> = (0..count)
        .map(|i| {
            m.predict_int8(&images[16 + i * 784..16 + (i + 1) * 784], &mut arena)
                .unwrap()
        })
        .collect();
    for extra in [&["int8"][..], &["int8", "prepare"]] {
        let mut cmd = Command::new(&exe);
        cmd.arg(&slim).arg(&idx).arg(count.to_string()).args(extra);
        let c: Vec<usize> = run(&mut cmd).lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(c, rust, "compressed file, {extra:?}");
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

#[test]
fn c_tensor_entry_points_agree_with_the_rust_api() {
    let dir = tempfile::tempdir().unwrap();
    let exe = example(dir.path(), "invoke");
    // The compressed LeNet-5 the firmware embeds: both paths, every operator kind it has.
    let slim = root().join("runtime/embedded/models/lenet-5.slim");
    let bytes = fs::read(&slim).unwrap();
    let m = slimnet_runtime::Model::from_bytes(&bytes).unwrap();
    let (n_in, n_out, count) = (m.input_len(), m.output_len(), 5usize);
    let mut state = 12345u32;
    let mut next = move || {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        state >> 24
    };
    let q: Vec<i8> = (0..n_in * count).map(|_| next() as u8 as i8).collect();
    let f: Vec<f32> = q.iter().map(|&v| f32::from(v) / 64.0).collect();
    let mut arena = vec![0u8; m.arena_len().max(m.arena_len_int8())];
    for integer in [true, false] {
        let input = dir.path().join("inputs.bin");
        let raw: Vec<u8> = if integer {
            q.iter().map(|&v| v as u8).collect()
        } else {
            f.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        fs::write(&input, raw).unwrap();
        let out = run(Command::new(&exe)
            .arg(&slim)
            .arg(&input)
            .arg(if integer { "int8" } else { "f32" })
            .arg(count.to_string()));
        let mut lines = out.lines();
        assert_eq!(
            lines.next().unwrap().split(' ').take(4).collect::<Vec<_>>(),
            ["input", "28", "28", "1"]
        );
        assert!(lines.next().unwrap().starts_with("output 10 zero_point"));
        let c: Vec<f64> = lines
            .map(|l| f64::from(l.parse::<f32>().unwrap()))
            .collect();
        let mut rust = Vec::new();
        for s in 0..count {
            if integer {
                let mut o = vec![0i8; n_out];
                m.run_int8(&q[s * n_in..(s + 1) * n_in], &mut arena, &mut o)
                    .unwrap();
                rust.extend(o.iter().map(|&v| f64::from(v)));
            } else {
                let mut o = vec![0f32; n_out];
                m.run_f32(&f[s * n_in..(s + 1) * n_in], &mut arena, &mut o)
                    .unwrap();
                rust.extend(o.iter().map(|&v| f64::from(v)));
            }
        }
        assert_eq!(c, rust, "integer path: {integer}");
    }
}

#[test]
fn c_verify_detects_and_locates_every_flip_of_the_loaded_blob() {
    let dir = tempfile::tempdir().unwrap();
    let exe = example(dir.path(), "verify");
    let slim = root().join("runtime/embedded/models/lenet-300-100.slim");
    let len = fs::metadata(&slim).unwrap().len() as usize;
    // Every 7th bit: all header bytes, the table, the graph and each weights section get flips.
    let out = run(Command::new(&exe).arg(&slim).arg("7"));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("clean 0"));
    let mut flips = 0;
    for line in lines.by_ref().take_while(|l| !l.starts_with("clean")) {
        let v: Vec<usize> = line
            .split(' ')
            .map(|x| x.parse::<i64>().unwrap() as usize)
            .collect();
        let (bit, code, offset, range) = (v[0], v[1] as i64 as i32, v[2], v[3]);
        assert_eq!(code, -14, "bit {bit} not detected");
        assert!(
            (offset..offset + range).contains(&(bit / 8)),
            "bit {bit}: range {offset}+{range}"
        );
        flips += 1;
    }
    assert_eq!(flips, (len * 8).div_ceil(7));
    assert!(out.ends_with("clean 0\n"), "restored blob verifies: {out}");
}
