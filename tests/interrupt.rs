//! Interrupted work: `kill -9` at several moments of `train`, `compress`, `import` and `export` leaves either no
//! output file or a complete valid one; the next successful run leaves no temporary file; and `train --resume`
//! after a kill ends with the same weights, byte for byte, as a run never interrupted.

mod common;
use common::{quadrants, s, slimnet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_slimnet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Starts `args`, sends SIGKILL after `delay` (or once `until` exists), and says whether it was still running.
fn kill_after(args: &[&str], delay: Duration, until: Option<&Path>) -> bool {
    let mut child = spawn(args);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let due = match until {
            Some(p) => p.exists(),
            None => start.elapsed() >= delay,
        };
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if due {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    true
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Temporary files (`.NAME.tmp-PID`) in `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
        .collect()
}

/// `out` is absent or loads: `info` accepts it.
fn absent_or_valid(out: &Path, what: &str) {
    if out.exists() {
        let o = slimnet(&["info", s(out)]);
        assert!(
            o.status.success(),
            "{what}: a partial {}:\n{}",
            out.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn data(dir: &Path) -> PathBuf {
    let d = dir.join("d");
    fs::create_dir(&d).unwrap();
    quadrants(&d, 2000);
    d
}

#[test]
fn killed_training_leaves_no_partial_file_and_resumes_to_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = data(dir);
    let recipe = |out: &Path, epochs: &str| -> Vec<String> {
        [
            "train",
            "--data",
            s(&d),
            "--model",
            "mlp:256-128",
            "--epochs",
            epochs,
            "--val",
            "200",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain(["--out".to_string(), s(out).to_string(), "-q".to_string()])
        .collect()
    };
    let whole = dir.join("whole.safetensors");
    let started = Instant::now();
    assert!(slimnet(&argv(&recipe(&whole, "4"))).status.success());
    let run_time = started.elapsed();
    // Kills at a few moments of a run (fractions of an uninterrupted run's time), the output checked each time.
    let out = dir.join("cut.safetensors");
    for frac in [0.05, 0.3, 0.6, 0.95] {
        kill_after(&argv(&recipe(&out, "4")), run_time.mul_f64(frac), None);
        absent_or_valid(&out, &format!("train killed at {frac} of its run"));
        let _ = fs::remove_file(&out);
    }
    // Killed once the first epoch's checkpoint exists, then resumed: the same bytes as the uninterrupted run.
    let ckpt = dir.join("cut.safetensors.ckpt");
    let _ = fs::remove_file(&ckpt);
    let killed = kill_after(&argv(&recipe(&out, "4")), Duration::ZERO, Some(&ckpt));
    assert!(killed, "training ended before it could be killed");
    assert!(!out.exists(), "no model before the run ends");
    let mut resume = recipe(&out, "4");
    resume.push("--resume".into());
    assert!(slimnet(&argv(&resume)).status.success());
    assert_eq!(
        fs::read(&out).unwrap(),
        fs::read(&whole).unwrap(),
        "resumed ≠ uninterrupted"
    );
    assert!(temporaries(dir).is_empty(), "{:?}", temporaries(dir));
}

#[test]
fn killed_compress_import_and_export_leave_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = data(dir);
    let m = dir.join("m.safetensors");
    let train = [
        "train",
        "--data",
        s(&d),
        "--model",
        "mlp:64",
        "--epochs",
        "2",
        "--val",
        "200",
        "-q",
        "--out",
        s(&m),
    ];
    assert!(slimnet(&train).status.success());
    let out = dir.join("m.slim");
    let compress = [
        "compress",
        s(&m),
        "--data",
        s(&d),
        "--val",
        "200",
        "--retrain-epochs",
        "1",
        "--final-epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--out",
        s(&out),
        "-q",
    ];
    let started = Instant::now();
    assert!(slimnet(&compress).status.success());
    let run_time = started.elapsed();
    fs::remove_file(&out).unwrap();
    let tflite = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compress/tests/fixtures/tflite/resnet.int8.tflite");
    let imported = dir.join("resnet.slim");
    let import = ["import", s(&tflite), "--out", s(&imported)];
    let exported = dir.join("dense.slim");
    let export = ["export", s(&m), "--data", s(&d), "--out", s(&exported)];
    for (what, args, target, time) in [
        ("compress", &compress[..], &out, run_time),
        ("import", &import[..], &imported, Duration::from_millis(40)),
        ("export", &export[..], &exported, Duration::from_millis(300)),
    ] {
        for frac in [0.0, 0.1, 0.4, 0.7, 0.9, 1.0] {
            kill_after(args, time.mul_f64(frac), None);
            absent_or_valid(target, &format!("{what} killed at {frac} of its run"));
        }
        // The next successful run leaves no temporary file behind.
        assert!(slimnet(args).status.success(), "{what}");
        absent_or_valid(target, what);
        assert!(
            temporaries(dir).is_empty(),
            "{what}: {:?}",
            temporaries(dir)
        );
    }
}
