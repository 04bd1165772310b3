//! The firmware under `runtime/embedded/` runs the compressed LeNet-300-100 and LeNet-5 on emulated Cortex-M cores
//! (QEMU) and must predict, image for image, what the host runtime predicts on the same file and the same test
//! images: the Rust firmware integer-only on a Cortex-M3 (both models), f32 on a Cortex-M4F, and the C firmware
//! (through the C API) on the Cortex-M3. The integer-only images must hold no soft-float routine.
//!
//! Needs Debian's rustc-web, QEMU (`../shared/embedded/setup.sh`) and arm-none-eabi-gcc; `.ci/run` installs them.
//! Without them the test says so and passes, except under CI (`CI=true`), where it fails.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn missing_tools() -> Vec<&'static str> {
    let on_path = |tool: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/rustc").exists() || !Path::new("/usr/bin/cargo").exists() {
        missing.push("Debian's rustc-web (/usr/bin/rustc, /usr/bin/cargo)");
    }
    for tool in [
        "qemu-system-arm",
        "ld.lld",
        "arm-none-eabi-gcc",
        "python3",
        "nm",
        "size",
    ] {
        if !on_path(tool) {
            missing.push(tool);
        }
    }
    missing
}

/// Whether the embedded toolchain is here; without it a test reports itself skipped, except under CI
/// (`CI=true`), where that is a failure.
fn toolchain_present() -> bool {
    let missing = missing_tools();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("embedded toolchain missing: {}", missing.join(", "));
    assert!(std::env::var("CI").is_err(), "{msg}");
    eprintln!("skipped: {msg}");
    false
}

/// What a firmware printed, parsed.
struct Device {
    predictions: Vec<usize>,
    correct: usize,
    images: usize,
    soft_float_symbols: Option<usize>,
    flash_bytes: usize,
}

fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn run(script: &str, args: &[&str]) -> Device {
    let out = Command::new("bash")
        .arg(root().join(script))
        .args(args)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let predictions = field(&stdout, "predictions")
        .unwrap_or_else(|| panic!("no predictions in:\n{stdout}"))
        .bytes()
        .map(|b| usize::from(b - b'0'))
        .collect();
    let (correct, images) = field(&stdout, "correct")
        .and_then(|v| v.split_once('/'))
        .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))
        .unwrap_or_else(|| panic!("no correct=a/b in:\n{stdout}"));
    Device {
        predictions,
        correct,
        images,
        soft_float_symbols: field(&stdout, "soft_float_symbols").map(|v| v.parse().unwrap()),
        flash_bytes: field(&stdout, "flash_bytes").unwrap().parse().unwrap(),
    }
}

fn gunzip(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(root().join("data/mnist").join(name)).unwrap(),
    )
    .read_to_end(&mut out)
    .unwrap();
    out
}

/// The host runtime's predictions and the number correct on the first `n` test images.
fn host(model: &str, n: usize, integer: bool) -> (Vec<usize>, usize) {
    let bytes = std::fs::read(root().join(model)).unwrap();
    let model = slimnet_runtime::Model::from_bytes(&bytes).unwrap();
    let images = gunzip("t10k-images-idx3-ubyte.gz");
    let labels = gunzip("t10k-labels-idx1-ubyte.gz");
    let mut arena = vec![0u8; model.arena_len().max(model.arena_len_int8())];
    let mut correct = 0;
    let predictions = (0..n)
        .map(|i| {
            let pixels = &images[16 + i * 784..16 + (i + 1) * 784];
            let class = if integer {
                model.predict_int8(pixels, &mut arena)
            } else {
                model.predict_u8(pixels, &mut arena)
            }
            .unwrap();
            correct += usize::from(class == usize::from(labels[8 + i]));
            class
        })
        .collect();
    (predictions, correct)
}

#[test]
fn firmware_on_emulated_cortex_m_predicts_what_the_host_runtime_predicts() {
    if !toolchain_present() {
        return;
    }
    const MLP: &str = "runtime/embedded/models/lenet-300-100.slim";
    const CNN: &str = "runtime/embedded/models/lenet-5.slim";
    // 160 images (125 KB) leave the LM3S6965's 256 KB of flash ~33 KB beside the ~75 KB of code and the model
    // (200 left 2 KB once the dense kernels' requantization tables and assembly loops came in; the C firmware,
    // a little larger, no longer linked).
    let mlp_m3: &[&str] = &["--board", "lm3s6965evb", "--images", "160"];
    let mlp_m4f: &[&str] = &["--board", "mps2-an386", "--images", "300"];
    let cnn_m3: &[&str] = &["--model", CNN, "--images", "40"];
    // Prepared on the M4: its weight loop is assembly there (ops::lanes::loops::prepared_run4), which the host's
    // tests cannot run.
    let cnn_m4_prepared: &[&str] = &[
        "--board",
        "mps2-an386",
        "--integer",
        "--prepare",
        "--model",
        CNN,
        "--images",
        "20",
    ];
    // (script, arguments, model, integer path, an integer-only Cortex-M3 image)
    let cases = [
        ("runtime/embedded/run.sh", mlp_m3, MLP, true, true),
        ("runtime/embedded/run.sh", mlp_m4f, MLP, false, false),
        (
            "runtime/embedded/c/run.sh",
            &["--images", "160"][..],
            MLP,
            true,
            true,
        ),
        ("runtime/embedded/run.sh", cnn_m3, CNN, true, true),
        ("runtime/embedded/run.sh", cnn_m4_prepared, CNN, true, false),
    ];
    for (script, args, model, integer, m3_image) in cases {
        let device = run(script, args);
        let (predictions, correct) = host(model, device.images, integer);
        assert_eq!(device.images, predictions.len());
        assert_eq!(
            device.predictions, predictions,
            "{script} {args:?}: the device predicts differently from the host"
        );
        assert_eq!(device.correct, correct, "{script} {args:?}");
        assert!(
            correct * 100 >= device.images * 95,
            "{script}: {correct}/{}",
            device.images
        );
        if m3_image {
            // The integer-only image holds no floating point at all, and fits the LM3S6965's 256 KB of flash.
            assert_eq!(device.soft_float_symbols, Some(0), "{script} {args:?}");
            assert!(
                device.flash_bytes <= 256 * 1024,
                "{script}: {} bytes",
                device.flash_bytes
            );
        }
    }
}

/// Runs a firmware script and returns its stdout (panics with its output when it fails).
fn stdout_of(script: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(root().join(script))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// An .npy file's raw int8 data (version 1 header).
fn npy_int8(path: &Path) -> Vec<i8> {
    let b = fs::read(path).unwrap();
    let len = usize::from(u16::from_le_bytes([b[8], b[9]]));
    b[10 + len..].iter().map(|&v| v as i8).collect()
}

#[test]
fn imported_tflite_models_run_on_the_cortex_m4f_and_m3_as_on_the_host_and_in_tflm() {
    if !toolchain_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixtures = root().join("compress/tests/fixtures/tflite");
    // DS-CNN on both cores: each has its own assembly for the depthwise layers (the M3 without DSP).
    let runs = [
        ("ds_cnn", "mps2-an386"),
        ("resnet", "mps2-an386"),
        ("ds_cnn", "mps2-an385"),
    ];
    for (family, board) in runs {
        let slim = dir.path().join(format!("{family}.slim"));
        let tflite = fixtures.join(format!("{family}.int8.tflite"));
        let status = Command::new(env!("CARGO_BIN_EXE_slimnet"))
            .arg("import")
            .arg(&tflite)
            .arg("--out")
            .arg(&slim)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let inputs = fixtures.join(format!("{family}.int8.input.npy"));
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let args = [
            "--board",
            board,
            "--integer",
            "--model",
            &s(&slim),
            "--inputs",
            &s(&inputs),
        ];
        let out = stdout_of("runtime/embedded/run.sh", &args);
        let hex = field(&out, "outputs").unwrap_or_else(|| panic!("no outputs in:\n{out}"));
        let device: Vec<i8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap() as i8)
            .collect();
        // The host runtime on the same tensors, and TFLite Micro's recorded outputs.
        let bytes = fs::read(&slim).unwrap();
        let m = slimnet_runtime::Model::from_bytes(&bytes).unwrap();
        let x = npy_int8(&inputs);
        let mut arena = vec![0u8; m.arena_len_int8()];
        let mut host = Vec::new();
        for sample in x.chunks_exact(m.input_len()) {
            let mut y = vec![0i8; m.output_len()];
            m.run_int8(sample, &mut arena, &mut y).unwrap();
            host.extend(y);
        }
        assert_eq!(device, host, "{family}: {board} differs from the host");
        let tflm = npy_int8(&fixtures.join(format!("{family}.int8.output.npy")));
        assert_eq!(device, tflm, "{family}: {board} differs from TFLite Micro");
    }
}

#[test]
fn firmware_verifies_the_model_and_reports_a_fault_injected_after_load() {
    if !toolchain_present() {
        return;
    }
    let model = root().join("runtime/embedded/models/lenet-300-100.slim");
    let len = fs::metadata(&model).unwrap().len() as usize;
    // A clean run verifying after every inference passes; a flipped bit in the last weights section, in the
    // section table and in the header's CRC field is caught at the first verify after the flip.
    let clean = stdout_of(
        "runtime/embedded/run.sh",
        &["--images", "6", "--verify-every", "1"],
    );
    assert_eq!(field(&clean, "verify_every"), Some("1"));
    for byte in [len - 3, 30, 13] {
        let bit = (byte * 8 + 5).to_string();
        let out = Command::new("bash")
            .arg(root().join("runtime/embedded/run.sh"))
            .args(["--images", "12", "--verify-every", "4", "--flip-bit", &bit])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "byte {byte}: the fault went unnoticed:\n{text}"
        );
        assert_eq!(field(&text, "fault_detected"), Some("4"), "{text}");
        let offset: usize = field(&text, "region_offset").unwrap().parse().unwrap();
        let region: usize = field(&text, "region_len").unwrap().parse().unwrap();
        assert!(
            (offset..offset + region).contains(&byte),
            "byte {byte}: {text}"
        );
    }
}
