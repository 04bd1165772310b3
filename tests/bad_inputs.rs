//! The catalogue of bad inputs: every case a careless user tried (issue 17) and more, as a table of
//! (case, command, expected exit status, expected message fragment). Each must exit with that status, print one
//! `error:` line that names the file or flag and contains the fragment, never a panic or a backtrace, and leave
//! no output file and no temporary file behind.

mod common;
use common::{idx, quadrants, s, slimnet};
use std::fs;
use std::path::{Path, PathBuf};

/// `(case, command, exit status, fragment of the error line)`. In commands, `{dir}` is the working directory,
/// `{d}` the quadrant dataset, `{m}` a trained model, `{slim}` its `.slim` file, `{out}` an output path that
/// must not exist afterwards; other `{name}`s are the damaged files and directories `fixtures` makes.
const CASES: &[(&str, &str, i32, &str)] = &[
    // Model files.
    ("missing model", "eval {dir}/none.safetensors --data {d}", 1, "none.safetensors: No such file"),
    ("model is a directory", "info {dir}", 1, "directory"),
    ("endless model", "info /dev/zero", 1, "/dev/zero: larger than"),
    ("a FIFO no one writes to", "info {fifo}", 1, "fifo.safetensors"),
    ("data from a FIFO no one writes to", "train --data {fifodata} --model mlp:8 --out {out}", 1, "t10k-labels-idx1-ubyte"),
    ("empty model", "info {empty}", 1, "empty.safetensors"),
    ("junk safetensors", "info {junk}", 1, "not a safetensors"),
    ("slim with bad magic", "info {badmagic}", 1, "bad magic"),
    ("slim with 16 trailing bytes", "info {trailing}", 1, "bytes appended"),
    ("truncated slim", "eval {trunc} --data {d}", 1, "truncated"),
    ("slim with a flipped bit", "eval {flip} --data {d}", 1, "checksum mismatch"),
    ("slim version 1", "info {v1}", 1, "version 1"),
    ("tflite that is not one", "info {badtflite}", 1, "badtflite.tflite"),
    ("normalization std 0 (eval)", "eval {std0} --data {d}", 1, "std 0"),
    ("normalization std 0 (export)", "export {std0} --data {d} --out {out}", 1, "std 0"),
    ("classes 0", "info {classes0}", 1, "0 classes"),
    ("layers not what the spec builds", "info {layers}", 1, "not what `mlp:8` builds"),
    ("foreign file without --arch", "info {nometa}", 1, "pass --arch"),
    ("--arch disagrees with the file", "eval {m} --arch lenet-5 --data {d}", 1, "--arch says"),
    ("model for other images", "eval {m}", 2, "12×12"),
    ("--integer-only on a float model", "eval {m} --integer-only --data {d}", 1, "--integer-only"),
    // Data.
    ("missing data directory", "train --data {dir}/nodata --out {out}", 1, "nodata"),
    ("a data file missing", "train --data {nolabels} --model mlp:8 --out {out}", 1, "missing"),
    ("images file with the labels magic", "train --data {swapped} --model mlp:8 --out {out}", 1, "is this a labels file?"),
    ("truncated images", "train --data {truncdata} --model mlp:8 --out {out}", 1, "truncated"),
    ("corrupt gzip", "train --data {badgz} --model mlp:8 --out {out}", 1, "corrupt gzip"),
    ("images and labels disagree", "train --data {mismatch} --model mlp:8 --out {out}", 1, "labels"),
    ("test label never trained", "train --data {unseen} --model mlp:8 --out {out}", 1, "never occurs"),
    ("--val larger than the data", "train --data {d} --model mlp:8 --val 400 --out {out}", 2, "--val"),
    // Output paths.
    ("export over its input", "export {m} --data {d} --out {m}", 1, "also an input"),
    ("compress over its input", "compress {m} --data {d} --out {m}", 1, "also an input"),
    ("compress over its input, other spelling", "compress {m} --data {d} --out {dir}/./m.safetensors", 1, "also an input"),
    ("import over its input", "import {tflite} --out {tflite}", 1, "also an input"),
    ("run output over its input", "run {slim} --input {npy} --output {npy}", 1, "also an input"),
    ("export to a directory", "export {m} --data {d} --out {dir}", 1, "is a directory"),
    ("compress to a directory", "compress {m} --data {d} --out {dir}", 1, "is a directory"),
    ("compress to a missing directory", "compress {m} --data {d} --out {dir}/no/x.slim", 1, "does not exist"),
    ("--report names --out", "compress {m} --data {d} --out {out} --report {out}", 1, "--report"),
    ("train to a directory", "train --data {d} --model mlp:8 --out {dir}", 1, "is a directory"),
    ("--metrics names --out", "train --data {d} --model mlp:8 --out {out} --metrics {out}", 1, "same file"),
    ("--checkpoint names --out", "train --data {d} --model mlp:8 --out {out} --checkpoint {out}", 1, "same file"),
    ("pipeline with a missing --peers", "pipeline --data {d} --model mlp:8 --epochs 1 --peers {dir}/nopeers.json --out-dir {outdir}", 1, "--peers"),
    ("report from a missing file", "report --from {dir}/none.json --out {outdir}", 1, "--from"),
    ("sensitivity --csv over its model", "sensitivity {slim} --data {d} --csv {slim}", 1, "also an input"),
    ("--predictions in a missing directory", "eval {m} --data {d} --predictions {dir}/no/p.csv", 1, "does not exist"),
    // Numeric flags: clap's status 2, naming the flag and its range.
    ("--threads 0", "--threads 0 info {slim}", 2, "--threads"),
    ("--threads 100000", "--threads 100000 train --out {out}", 2, "per logical core"),
    ("--epochs 0", "train --epochs 0 --out {out}", 2, "--epochs"),
    ("--epochs 10^8", "train --epochs 100000000 --out {out}", 2, "1..=10000"),
    ("--batch-size 0", "train --batch-size 0 --out {out}", 2, "--batch-size"),
    ("--train-limit 0", "train --train-limit 0 --out {out}", 2, "--train-limit"),
    ("--val -1", "train --val=-1 --out {out}", 2, "--val"),
    ("--lr 0", "train --lr 0 --out {out}", 2, "--lr"),
    ("--lr NaN", "train --lr NaN --out {out}", 2, "--lr"),
    ("--dropout 1", "train --dropout 1 --out {out}", 2, "--dropout"),
    ("--momentum 1", "train --optimizer momentum --momentum 1 --out {out}", 2, "--momentum"),
    ("--l2 -1", "train --l2=-1 --out {out}", 2, "--l2"),
    ("--lr-step-every 0", "train --lr-step-every 0 --out {out}", 2, "--lr-step-every"),
    ("--nodes 0", "train --distributed master-worker --nodes 0 --out {out}", 2, "--nodes"),
    ("--nodes without --distributed", "train --nodes 3 --out {out}", 2, "--distributed"),
    ("--staleness with decentralized", "train --distributed decentralized --staleness 2 --out {out}", 2, "--staleness"),
    ("--consensus-step 2", "train --data {d} --model mlp:8 --val 80 --distributed decentralized --consensus-step 2 --out {out}", 2, "--consensus-step"),
    ("bench --runs 0", "bench {slim} --runs 0", 2, "--runs"),
    ("bench --repeats 0", "bench {slim} --repeats 0", 2, "--repeats"),
    ("bench --images 0", "bench {slim} --images 0", 2, "--images"),
    ("export --calibration 0", "export {m} --data {d} --calibration 0 --out {out}", 2, "--calibration"),
    ("compress --sparsity 1.5", "compress {m} --data {d} --sparsity 1.5 --out {out}", 2, "--sparsity"),
    ("compress --bits 0", "compress {m} --data {d} --bits 0 --out {out}", 2, "--bits"),
    ("compress --bits 9", "compress {m} --data {d} --bits 9 --out {out}", 2, "--bits"),
    ("compress --zstd-level 30", "compress {m} --data {d} --zstd-level 30 --out {out}", 2, "--zstd-level"),
    ("compress --prune-rounds 0", "compress {m} --data {d} --prune-rounds 0 --out {out}", 2, "--prune-rounds"),
    ("compress --retrain-lr 0", "compress {m} --data {d} --retrain-lr 0 --out {out}", 2, "--retrain-lr"),
    ("compress --max-accuracy-drop -1", "compress {m} --data {d} --auto --max-accuracy-drop=-1 --out {out}", 2, "--max-accuracy-drop"),
    ("compress --val 10^9", "compress {m} --data {d} --val 1000000000 --out {out}", 2, "--val"),
    ("sensitivity --rates 0.7", "sensitivity {slim} --data {d} --rates 0.7", 2, "--rates"),
    ("sensitivity --repeats 0", "sensitivity {slim} --data {d} --repeats 0", 2, "--repeats"),
    ("sensitivity --sigmas 11", "sensitivity {m} --data {d} --sigmas 11", 2, "--sigmas"),
    ("sensitivity --epsilon 2", "sensitivity {m} --data {d} --analyses flatness --epsilon 2", 2, "--epsilon"),
    ("sensitivity --hessian-iterations 0", "sensitivity {m} --data {d} --hessian-iterations 0", 2, "--hessian-iterations"),
    ("experiment --epochs 0", "experiment depth --epochs 0 --out {outdir}", 2, "--epochs"),
    ("experiment --neurons 0", "experiment depth --neurons 0 --out {outdir}", 2, "--neurons"),
    // Other settings.
    ("unknown architecture", "train --model mlp:10-x --out {out}", 2, "mlp:10-x"),
    ("unknown optimizer", "train --optimizer adamw --out {out}", 2, "--optimizer"),
    ("--resume without a checkpoint", "train --data {d} --model mlp:8 --resume --out {out}", 2, "--resume"),
    ("resume on other data", "train --data {unseen2} --model mlp:8 --epochs 2 --val 80 --lr 0.01 --resume --out {ckpt_out} --checkpoint {ckpt}", 1, "other data"),
    ("resume with another --val", "train --data {d} --model mlp:8 --epochs 2 --val 60 --lr 0.01 --resume --out {ckpt_out} --checkpoint {ckpt}", 1, "--val"),
    ("resume with another --train-limit", "train --data {d} --model mlp:8 --epochs 2 --val 80 --lr 0.01 --train-limit 200 --resume --out {ckpt_out} --checkpoint {ckpt}", 1, "--train-limit"),
    ("resume another network", "train --data {d} --model mlp:16 --epochs 2 --val 80 --lr 0.01 --resume --out {ckpt_out} --checkpoint {ckpt}", 1, "`mlp:8` (4 classes"),
    ("run an image past the file", "run {slim} --idx {d}/t10k-images-idx3-ubyte --index 100000", 1, "100000"),
];

/// Writes the damaged inputs and returns `{name}` → path.
fn fixtures(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut f: Vec<(String, PathBuf)> = Vec::new();
    let mut add = |name: &str, path: PathBuf| f.push((name.to_string(), path));
    let d = dir.join("d");
    fs::create_dir(&d).unwrap();
    quadrants(&d, 400);
    let m = dir.join("m.safetensors");
    let ckpt = dir.join("r.ckpt");
    assert!(train(&d, s(&m), &[]).status.success());
    let r = dir.join("r.safetensors");
    assert!(train(&d, s(&r), &["--checkpoint", s(&ckpt)])
        .status
        .success());
    let slim = dir.join("m.slim");
    let export = ["export", s(&m), "--data", s(&d), "--out", s(&slim)];
    assert!(slimnet(&export).status.success());
    let good = fs::read(&slim).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    };
    let mut b = good.clone();
    b[..4].copy_from_slice(b"XXXX");
    add("badmagic", write("badmagic.slim", &b));
    let mut b = good.clone();
    b.extend([0; 16]);
    add("trailing", write("trailing.slim", &b));
    add("trunc", write("trunc.slim", &good[..good.len() / 2]));
    let mut b = good.clone();
    let mid = b.len() / 2;
    b[mid] ^= 4;
    add("flip", write("flip.slim", &b));
    let mut b = good.clone();
    b[4] = 1;
    let crc = slimnet_runtime::crc32(&b[16..]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    add("v1", write("v1.slim", &b));
    add(
        "badtflite",
        write("badtflite.tflite", b"\x1c\0\0\0TFL3 truncated"),
    );
    add("empty", write("empty.safetensors", b""));
    add(
        "junk",
        write("junk.safetensors", b"\x10\0\0\0\0\0\0\0{\"a\":1}"),
    );
    let model = fs::read(&m).unwrap();
    add(
        "std0",
        write(
            "std0.safetensors",
            &edit_meta(&model, |meta| {
                meta["slimnet.normalization"] = r#"{"mean":0.1,"std":0.0}"#.into();
            }),
        ),
    );
    add(
        "classes0",
        write(
            "classes0.safetensors",
            &edit_net(&model, "\"classes\":4", "\"classes\":0"),
        ),
    );
    add(
        "layers",
        write(
            "layers.safetensors",
            &edit_net(&model, "\"outputs\":8", "\"outputs\":9"),
        ),
    );
    add(
        "nometa",
        write(
            "nometa.safetensors",
            &edit_meta(&model, |meta| {
                *meta = serde_json::json!({});
            }),
        ),
    );
    // Data directories, each a copy of the quadrant set with one defect.
    let variant = |name: &str, edit: &dyn Fn(&Path)| {
        let v = dir.join(name);
        fs::create_dir(&v).unwrap();
        quadrants(&v, 400);
        edit(&v);
        v
    };
    add(
        "nolabels",
        variant("nolabels", &|v| {
            fs::remove_file(v.join("train-labels-idx1-ubyte.gz")).unwrap()
        }),
    );
    add(
        "swapped",
        variant("swapped", &|v| {
            fs::remove_file(v.join("t10k-images-idx3-ubyte")).unwrap();
            fs::copy(
                v.join("t10k-labels-idx1-ubyte"),
                v.join("t10k-images-idx3-ubyte"),
            )
            .unwrap();
        }),
    );
    add(
        "truncdata",
        variant("truncdata", &|v| {
            fs::write(
                v.join("t10k-images-idx3-ubyte"),
                idx(&[400, 12, 12], &[0; 1000]),
            )
            .unwrap();
        }),
    );
    add(
        "badgz",
        variant("badgz", &|v| {
            fs::write(
                v.join("train-images-idx3-ubyte.gz"),
                b"\x1f\x8b\x08\0 not gzip at all",
            )
            .unwrap();
        }),
    );
    add(
        "mismatch",
        variant("mismatch", &|v| {
            fs::write(v.join("t10k-labels-idx1-ubyte"), idx(&[399], &[0; 399])).unwrap();
        }),
    );
    add(
        "unseen",
        variant("unseen", &|v| {
            let mut labels = vec![0u8; 400];
            labels[7] = 9;
            fs::write(v.join("t10k-labels-idx1-ubyte"), idx(&[400], &labels)).unwrap();
        }),
    );
    add(
        "unseen2",
        variant("other", &|v| {
            let mut images = fs::read(v.join("t10k-images-idx3-ubyte")).unwrap();
            images[100] ^= 0xff;
            // Same shapes, other training pixels: only the fingerprint tells.
            let train = common::gz(&images);
            fs::write(v.join("train-images-idx3-ubyte.gz"), train).unwrap();
        }),
    );
    let fifo = |p: &Path| {
        let made = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(made.success());
    };
    fifo(&dir.join("fifo.safetensors"));
    add("fifo", dir.join("fifo.safetensors"));
    add(
        "fifodata",
        variant("fifodata", &|v| {
            fs::remove_file(v.join("t10k-labels-idx1-ubyte")).unwrap();
            fifo(&v.join("t10k-labels-idx1-ubyte"));
        }),
    );
    add("tflite", dir.join("in.tflite"));
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("compress/tests/fixtures/tflite/dsnet.int8.tflite"),
        dir.join("in.tflite"),
    )
    .unwrap();
    add("npy", write("in.npy", &npy_u8(&[2, 12, 12, 1])));
    add("d", d);
    add("m", m);
    add("slim", slim);
    add("ckpt", ckpt);
    add("ckpt_out", dir.join("r.safetensors"));
    add("dir", dir.to_path_buf());
    f
}

/// A safetensors file whose `slimnet.net` metadata has `from` replaced by `to`.
fn edit_net(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    edit_meta(bytes, |meta| {
        let net = meta["slimnet.net"].as_str().unwrap().replace(from, to);
        meta["slimnet.net"] = net.into();
    })
}

/// A safetensors file with its `__metadata__` edited.
fn edit_meta(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(&mut header["__metadata__"]);
    let mut h = serde_json::to_vec(&header).unwrap();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(&bytes[8 + n..]);
    out
}

/// A zero-filled float32 .npy array of `shape` (version 1 header).
fn npy_u8(shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(vec![0u8; 4 * shape.iter().product::<usize>()]);
    out
}

/// Files in `dir` (not below it), by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_bad_input_gets_its_status_and_one_line_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let files = fixtures(dir);
    let before = listing(dir);
    let sums: Vec<(PathBuf, Vec<u8>)> = files
        .iter()
        .filter(|(_, p)| p.is_file())
        .map(|(_, p)| (p.clone(), fs::read(p).unwrap()))
        .collect();
    let mut failures = Vec::new();
    for (i, &(case, command, status, fragment)) in CASES.iter().enumerate() {
        let out = dir.join(format!("out-{i}.bin"));
        let outdir = dir.join(format!("outdir-{i}"));
        let mut text = command
            .replace("{out}", s(&out))
            .replace("{outdir}", s(&outdir));
        for (name, path) in &files {
            text = text.replace(&format!("{{{name}}}"), s(path));
        }
        assert!(!text.contains('{'), "{case}: unknown placeholder in {text}");
        let args: Vec<&str> = text.split_whitespace().collect();
        let o = slimnet(&args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
        let problems = [
            (
                o.status.code() != Some(status),
                format!("exit {:?}, expected {status}", o.status.code()),
            ),
            (
                !line.contains(fragment),
                format!("no {fragment:?} in the error line"),
            ),
            (
                err.contains("panicked")
                    || err.contains("backtrace")
                    || err.contains("internal error"),
                "a panic".into(),
            ),
            (out.exists(), "left an output file".into()),
            (outdir.exists(), "left an output directory".into()),
        ];
        for (bad, what) in problems {
            if bad {
                failures.push(format!("{case} (`{text}`): {what}\n{err}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    // Nothing appeared (no temporaries) and no input changed.
    assert_eq!(listing(dir), before);
    for (path, bytes) in sums {
        assert_eq!(
            fs::read(&path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
    }
}

/// One epoch of `mlp:8` on the quadrant data `d` into `out`, the recipe every test here trains with.
fn train(d: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train", "--data", s(d), "--model", "mlp:8", "--epochs", "1"];
    args.extend(["--val", "80", "--lr", "0.01", "-q", "--out", out]);
    args.extend(extra);
    slimnet(&args)
}

/// A trained model and its data in `dir`: (data, model).
fn trained(dir: &Path) -> (PathBuf, PathBuf) {
    let d = dir.join("d");
    fs::create_dir(&d).unwrap();
    quadrants(&d, 400);
    let m = dir.join("m.safetensors");
    assert!(train(&d, s(&m), &[]).status.success());
    (d, m)
}

#[test]
fn devices_fifos_and_symlinks_are_written_through_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let (d, m) = trained(tmp.path());
    let export = |out: &Path| slimnet(&["export", s(&m), "--data", s(&d), "--out", s(out)]);
    // /dev/null takes the bytes and stays a device; /dev/full's failure is an error naming it.
    assert!(export(Path::new("/dev/null")).status.success());
    assert!(fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    let full = export(Path::new("/dev/full"));
    assert_eq!(full.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&full.stderr).contains("/dev/full"));
    // Training into a device: no OUT.ckpt beside it, the failed final write is an error naming it.
    let t = train(&d, "/dev/full", &[]);
    assert_eq!(t.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&t.stderr).contains("/dev/full"));
    assert!(!Path::new("/dev/full.ckpt").exists());
    // A device node of our own (as root, as CI runs): `mknod n c 1 3` is /dev/null again.
    let node = tmp.path().join("n");
    let made = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status();
    if made.is_ok_and(|s| s.success()) {
        assert!(export(&node).status.success());
        assert!(
            fs::metadata(&node).unwrap().file_type().is_char_device(),
            "the node was replaced"
        );
    }
    // A FIFO: the bytes go to its reader.
    let fifo = tmp.path().join("f");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    assert!(export(&fifo).status.success());
    let got = reader.join().unwrap();
    assert_eq!(&got[..4], b"SLIM");
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    // A symbolic link: its target is replaced, the link stays.
    let target = tmp.path().join("real.slim");
    fs::write(&target, b"old").unwrap();
    let link = tmp.path().join("link.slim");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(export(&link).status.success());
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(&fs::read(&target).unwrap()[..4], b"SLIM");
    // Predictions to /dev/stdout arrive on standard output.
    let o = slimnet(&[
        "eval",
        s(&m),
        "--data",
        s(&d),
        "--predictions",
        "/dev/stdout",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).lines().count() >= 400);
}

#[test]
fn a_failed_write_to_stdout_is_an_error_not_a_panic() {
    let slim = Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/embedded/models/lenet-5.slim");
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_slimnet"))
        .args(["info", s(&slim)])
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: writing to standard output") && !err.contains("internal"),
        "{err}"
    );
}

#[test]
fn temporaries_of_killed_runs_are_cleaned_and_equal_runs_write_equal_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (d, m) = trained(tmp.path());
    // A temporary a `kill -9` left (no process 4194304 exists: above Linux's pid_max).
    let stale = tmp.path().join(".again.safetensors.tmp-4194304");
    fs::write(&stale, b"half a model").unwrap();
    let again = tmp.path().join("again.safetensors");

    assert!(train(&d, s(&again), &[]).status.success());
    assert!(!stale.exists(), "the stale temporary is gone");
    // The same seed and data: the same file, byte for byte (no wall-clock time, sorted metadata).
    assert_eq!(fs::read(&m).unwrap(), fs::read(&again).unwrap());
}

#[test]
fn a_training_label_the_test_set_lacks_is_noted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    fs::create_dir(&d).unwrap();
    quadrants(&d, 400);
    let mut labels: Vec<u8> = (0..400).map(|i| (i % 4) as u8).collect();
    labels[5] = 11;
    fs::write(
        d.join("train-labels-idx1-ubyte.gz"),
        common::gz(&idx(&[400], &labels)),
    )
    .unwrap();
    let out = tmp.path().join("m.safetensors");
    let o = train(&d, s(&out), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("note:") && err.contains("12 classes") && err.contains("never tested"),
        "{err}"
    );
}
