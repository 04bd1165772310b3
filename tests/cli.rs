//! End-to-end runs of the `slimnet` binary on small slices of the bundled MNIST and on hand-made datasets.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

mod common;
use common::{fails, gz, idx, ok, quadrants, s, slimnet};

/// A quick model: LeNet-300-100 on 2,000 MNIST images, one epoch.
fn quick_model(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--train-limit",
        "2000",
        "--val",
        "1000",
        "--out",
        s(&out),
        "-q",
    ];
    args.extend_from_slice(extra);
    ok(&args);
    out
}

#[test]
fn train_eval_info_on_a_slice_of_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("m.csv");
    let model = quick_model(dir.path(), "m.safetensors", &["--metrics", s(&metrics)]);
    assert!(model.exists());
    assert!(dir.path().join("m.safetensors.ckpt").exists());
    let csv = fs::read_to_string(&metrics).unwrap();
    assert!(
        csv.starts_with("epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,lr\n1,"),
        "{csv}"
    );

    let v: Value = serde_json::from_str(&ok(&["eval", s(&model), "--json"])).unwrap();
    let acc = v["accuracy"].as_f64().unwrap();
    // One short epoch on 2,000 images with dropout: far above chance (10 %), far from converged.
    assert!(acc > 0.6 && acc <= 1.0, "{acc}");
    assert_eq!(v["samples"], 10_000);
    assert!(v["loss"].as_f64().unwrap() > 0.0);

    let text = ok(&["eval", s(&model)]);
    assert!(
        text.contains("confusion matrix") && text.contains("per class"),
        "{text}"
    );

    let info = ok(&["info", s(&model)]);
    assert!(
        info.contains("266,610") && info.contains("1,066,440") && info.contains("slimnet.metrics"),
        "{info}"
    );
    let j: Value = serde_json::from_str(&ok(&["info", s(&model), "--json"])).unwrap();
    assert_eq!(j["parameters"], 266_610);
    assert!(
        j["metadata"]["slimnet.dataset_sha256"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
}

#[test]
fn same_seed_gives_the_same_model_and_resume_continues() {
    let dir = tempfile::tempdir().unwrap();
    let a = quick_model(dir.path(), "a.safetensors", &["--dropout", "0.1"]);
    let b = quick_model(dir.path(), "b.safetensors", &["--dropout", "0.1"]);
    let ta = safetensors_tensors(&a);
    assert!(
        ta == safetensors_tensors(&b),
        "same seed, different weights"
    );
    let c = quick_model(
        dir.path(),
        "c.safetensors",
        &["--dropout", "0.1", "--seed", "2"],
    );
    assert!(ta != safetensors_tensors(&c), "other seed, same weights");

    // Resume a one-epoch run to two epochs: same weights as two epochs straight (with a schedule that does not
    // depend on the epoch count; cosine would stretch when --epochs grows).
    let metrics = dir.path().join("r.json");
    let common = [
        "--train-limit",
        "2000",
        "--val",
        "1000",
        "--schedule",
        "constant",
        "--select",
        "last",
        "-q",
    ];
    let two = dir.path().join("two.safetensors");
    ok(&[&["train", "--epochs", "2", "--out", s(&two)][..], &common].concat());
    let r = dir.path().join("r.safetensors");
    ok(&[&["train", "--epochs", "1", "--out", s(&r)][..], &common].concat());
    ok(&[
        &[
            "train",
            "--epochs",
            "2",
            "--out",
            s(&r),
            "--resume",
            "--metrics",
            s(&metrics),
        ][..],
        &common,
    ]
    .concat());
    let history: Value = serde_json::from_str(&fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert!(
        safetensors_tensors(&r) == safetensors_tensors(&two),
        "resumed run differs"
    );
}

/// Name → raw bytes of every tensor (metadata excluded: it records timings).
fn safetensors_tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.data().to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn pytorch_style_files_load_with_arch() {
    let dir = tempfile::tempdir().unwrap();
    let model = quick_model(dir.path(), "m.safetensors", &[]);
    // Re-save the tensors as an nn.Sequential state_dict would name them, without metadata.
    let bytes = fs::read(&model).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let rename = [("fc1", "net.1"), ("fc2", "net.3"), ("fc3", "net.5")];
    let views: Vec<(String, safetensors::tensor::TensorView)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| {
            let (layer, rest) = n.split_once('.').unwrap();
            let new = rename.iter().find(|(a, _)| *a == layer).unwrap().1;
            (format!("{new}.{rest}"), t)
        })
        .collect();
    let torch = dir.path().join("torch.safetensors");
    fs::write(&torch, safetensors::serialize(views, None).unwrap()).unwrap();

    let err = fails(&["eval", s(&torch), "--json"]);
    assert!(
        err.contains("torch.safetensors") && err.contains("--arch"),
        "{err}"
    );
    let ours: Value = serde_json::from_str(&ok(&["eval", s(&model), "--json"])).unwrap();
    let theirs: Value = serde_json::from_str(&ok(&[
        "eval",
        s(&torch),
        "--arch",
        "lenet-300-100",
        "--json",
    ]))
    .unwrap();
    // Same weights; the trained model's own normalization differs slightly from MNIST's usual constants.
    assert!(
        (ours["accuracy"].as_f64().unwrap() - theirs["accuracy"].as_f64().unwrap()).abs() < 0.02
    );
    let err = fails(&["eval", s(&torch), "--arch", "lenet-5"]);
    assert!(
        err.contains("torch.safetensors") && err.contains("conv1.weight"),
        "{err}"
    );
}

/// The quadrant dataset (400 images of 12×12) in `dir/quad`, and a small CNN trained on it: (data, model).
fn quadrant_model(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("quad");
    fs::create_dir(&data).unwrap();
    quadrants(&data, 400);
    let model = dir.join("q.safetensors");
    ok(&[
        "train",
        "--data",
        s(&data),
        "--model",
        "cnn:c4k3-p2-f16",
        "--epochs",
        "3",
        "--val",
        "80",
        "--lr",
        "0.01",
        "--out",
        s(&model),
        "-q",
    ]);
    (data, model)
}

#[test]
fn any_idx_dataset_works_with_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = quadrant_model(dir.path());
    let v: Value =
        serde_json::from_str(&ok(&["eval", s(&model), "--data", s(&data), "--json"])).unwrap();
    assert!(v["accuracy"].as_f64().unwrap() > 0.9, "{v}");
    assert_eq!(v["per_class_accuracy"].as_array().unwrap().len(), 4);
    // The 12×12 model refuses 28×28 MNIST with a reason.
    let err = fails(&["eval", s(&model)]);
    assert!(err.contains("28×28") && err.contains("12×12"), "{err}");
}

#[test]
fn bad_input_gets_one_line_naming_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let o = s(&out);
    let data = dir.path().join("d");
    fs::create_dir(&data).unwrap();
    quadrants(&data, 40);
    let d = s(&data);

    assert!(fails(&[
        "train",
        "--data",
        s(&dir.path().join("missing")),
        "--out",
        o
    ])
    .contains("missing"));
    assert!(fails(&["train", "--model", "mlp:10-x", "--out", o]).contains("mlp:10-x"));
    assert!(fails(&["train", "--optimizer", "adamw", "--out", o]).contains("--optimizer"));
    assert!(fails(&["train", "--lr", "0", "--out", o]).contains("--lr"));
    assert!(fails(&["train", "--lr", "-0.1", "--out", o]).contains("--lr"));
    assert!(fails(&["train", "--schedule", "warmup", "--out", o]).contains("--schedule"));
    assert!(fails(&["train", "--data", d, "--val", "40", "--out", o]).contains("--val 40"));
    assert!(fails(&["train", "--resume", "--out", o]).contains("--resume"));
    let e = fails(&[
        "train",
        "--out",
        s(&dir.path().join("no/such/m.safetensors")),
    ]);
    assert!(e.contains("no/such") && e.contains("does not exist"), "{e}");
    // An I/O error is reported once, not repeated by its cause.
    let e = fails(&["eval", s(&dir.path().join("none.safetensors"))]);
    assert_eq!(e.matches("No such file").count(), 1, "{e}");

    // Truncated, foreign and mismatched files.
    fs::write(
        data.join("t10k-images-idx3-ubyte"),
        idx(&[40, 12, 12], &[0; 100]),
    )
    .unwrap();
    let e = fails(&["train", "--data", d, "--out", o]);
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("truncated"),
        "{e}"
    );
    fs::write(
        data.join("t10k-images-idx3-ubyte"),
        b"PK\x03\x04 a zip file",
    )
    .unwrap();
    let e = fails(&["train", "--data", d, "--out", o]);
    assert!(
        e.contains("t10k-images-idx3-ubyte") && e.contains("not an IDX file"),
        "{e}"
    );
    fs::write(
        data.join("t10k-images-idx3-ubyte"),
        idx(&[39, 12, 12], &[0; 39 * 144]),
    )
    .unwrap();
    let e = fails(&["train", "--data", d, "--out", o]);
    assert!(e.contains("39 images") && e.contains("40 labels"), "{e}");

    let e = fails(&["eval", s(&dir.path().join("none.safetensors"))]);
    assert!(e.contains("none.safetensors"), "{e}");
    let junk = dir.path().join("junk.safetensors");
    fs::write(&junk, b"\x10\0\0\0\0\0\0\0{\"a\":1}").unwrap();
    let e = fails(&["info", s(&junk)]);
    assert!(
        e.contains("junk.safetensors") && e.contains("not a safetensors"),
        "{e}"
    );
    assert!(!out.exists(), "a failed run must not leave a model behind");
}

#[test]
fn tampered_bundled_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    for f in fs::read_dir(&root).unwrap() {
        let f = f.unwrap().path();
        fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    // Swap the test labels for other valid labels: the IDX is well formed, only the checksum catches it.
    fs::write(
        dir.path().join("t10k-labels-idx1-ubyte.gz"),
        gz(&idx(&[10_000], &[3; 10_000])),
    )
    .unwrap();
    let e = fails(&[
        "train",
        "--data",
        s(dir.path()),
        "--out",
        s(&dir.path().join("m.safetensors")),
    ]);
    assert!(
        e.contains("t10k-labels-idx1-ubyte.gz") && e.contains("SHA256SUMS"),
        "{e}"
    );
}

#[test]
fn pipeline_trains_and_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&[
        "pipeline",
        "--epochs",
        "1",
        "--train-limit",
        "1500",
        "--val",
        "500",
        "--prune-rounds",
        "2",
        "--retrain-epochs",
        "1",
        "--final-epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--out-dir",
        s(dir.path()),
        "-q",
    ]);
    for row in [
        "| float32 |",
        "| pruned |",
        "| clustered |",
        "| quantized |",
        "| coded |",
        "| fc1 |",
    ] {
        assert!(out.contains(row), "{row}: {out}");
    }
    let model = dir.path().join("lenet-300-100.safetensors");
    assert!(model.exists());
    assert!(dir.path().join("lenet-300-100.slim").exists());
    let report: Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join("lenet-300-100.json")).unwrap())
            .unwrap();
    assert_eq!(report["dense_f32_bytes"], 1_066_440);
    let again = ok(&[
        "pipeline",
        "--model-file",
        s(&model),
        "--out-dir",
        s(dir.path()),
        "--train-limit",
        "1500",
        "--val",
        "500",
        "--prune-rounds",
        "1",
        "--retrain-epochs",
        "1",
        "--final-epochs",
        "1",
        "--finetune-epochs",
        "0",
        "--skip",
        "quantize",
        "-q",
    ]);
    assert!(
        again.contains("| coded |") && !again.contains("| quantized |"),
        "{again}"
    );
}

#[test]
fn export_eval_run_info_on_slim_files() {
    let dir = tempfile::tempdir().unwrap();
    let model = quick_model(dir.path(), "m.safetensors", &[]);
    let candle: Value = serde_json::from_str(&ok(&["eval", s(&model), "--json"])).unwrap();
    for encoding in ["f32", "int8"] {
        let slim = dir.path().join(format!("m-{encoding}.slim"));
        let out = ok(&[
            "export",
            s(&model),
            "--encoding",
            encoding,
            "--out",
            s(&slim),
        ]);
        assert!(out.contains("bytes"), "{out}");
        let v: Value = serde_json::from_str(&ok(&["eval", s(&slim), "--json"])).unwrap();
        assert_eq!(v["samples"], 10_000);
        // Same keys as for safetensors; the f32 path's loss matches candle's.
        let (l, cl) = (
            v["loss"].as_f64().unwrap(),
            candle["loss"].as_f64().unwrap(),
        );
        assert!(
            (l - cl).abs() < if encoding == "f32" { 1e-3 } else { 0.02 },
            "{encoding}: loss {l} vs {cl}"
        );
        let (a, c) = (
            v["accuracy"].as_f64().unwrap(),
            candle["accuracy"].as_f64().unwrap(),
        );
        let tolerance = if encoding == "f32" { 0.001 } else { 0.01 };
        assert!(
            (a - c).abs() <= tolerance,
            "{encoding}: runtime {a} vs candle {c}"
        );
        let info: Value = serde_json::from_str(&ok(&["info", s(&slim), "--json"])).unwrap();
        // LeNet-300-100 as a graph: three FULLY_CONNECTED operators (the flatten is free), NHWC input.
        let ops = info["operators"].as_array().unwrap();
        let kinds: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["FULLY_CONNECTED"; 3]);
        assert_eq!(info["input"], serde_json::json!([28, 28, 1]));
        assert_eq!(info["output"], serde_json::json!([10]));
        assert_eq!(
            info["bytes"].as_u64().unwrap(),
            fs::metadata(&slim).unwrap().len()
        );
    }
    let int8 = dir.path().join("m-int8.slim");
    let i: Value =
        serde_json::from_str(&ok(&["eval", s(&int8), "--integer-only", "--json"])).unwrap();
    assert_eq!(i["path"], "integer-only");
    assert!(i["loss"].is_null(), "int8 logits carry no scale: no loss");
    let f32_slim = dir.path().join("m-f32.slim");
    let e = fails(&["eval", s(&f32_slim), "--integer-only"]);
    assert!(
        e.contains("m-f32.slim") && e.contains("numeric path"),
        "{e}"
    );

    // One image from an IDX file: the label file beside it gives the true class.
    let images = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist/t10k-images-idx3-ubyte.gz");
    let r: Value = serde_json::from_str(&ok(&[
        "run",
        s(&int8),
        "--idx",
        s(&images),
        "--index",
        "0",
        "--json",
    ]))
    .unwrap();
    assert_eq!(r["label"], 7);
    assert_eq!(r["scores"].as_array().unwrap().len(), 10);
    let text = ok(&[
        "run",
        s(&int8),
        "--idx",
        s(&images),
        "--index",
        "0",
        "--integer-only",
    ]);
    assert!(
        text.starts_with("class ") && text.contains("(label 7)"),
        "{text}"
    );
    assert!(
        fails(&["run", s(&int8), "--idx", s(&images), "--index", "10000"])
            .contains("--index 10000")
    );

    // A PNG of the same image gives the same class.
    let png_path = dir.path().join("seven.png");
    {
        let (arr, _) = slim_test_image();
        let f = fs::File::create(&png_path).unwrap();
        let mut enc = png::Encoder::new(f, 28, 28);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap().write_image_data(&arr).unwrap();
    }
    let p: Value =
        serde_json::from_str(&ok(&["run", s(&int8), "--png", s(&png_path), "--json"])).unwrap();
    assert_eq!(p["class"], r["class"]);

    // Corrupt and foreign files: one line naming the file.
    let mut bytes = fs::read(&int8).unwrap();
    bytes[100] ^= 1;
    let bad = dir.path().join("bad.slim");
    fs::write(&bad, &bytes).unwrap();
    for cmd in [
        vec!["eval", s(&bad)],
        vec!["info", s(&bad)],
        vec!["run", s(&bad), "--png", s(&png_path)],
    ] {
        let e = fails(&cmd);
        assert!(e.contains("bad.slim") && e.contains("checksum"), "{e}");
    }
    let e = fails(&["run", s(&model), "--png", s(&png_path)]);
    assert!(
        e.contains("m.safetensors") && e.contains("bad magic"),
        "{e}"
    );
}

/// The first MNIST test image's pixels.
fn slim_test_image() -> (Vec<u8>, u8) {
    let mut raw = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(
        fs::File::open(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist/t10k-images-idx3-ubyte.gz"),
        )
        .unwrap(),
    )
    .read_to_end(&mut raw)
    .unwrap();
    (raw[16..16 + 784].to_vec(), 7)
}

/// Flags that make `compress` quick: small retraining on 2,000 images.
const QUICK_COMPRESS: [&str; 14] = [
    "--train-limit",
    "2000",
    "--val",
    "500",
    "--prune-rounds",
    "2",
    "--retrain-epochs",
    "1",
    "--final-epochs",
    "1",
    "--finetune-epochs",
    "1",
    "--calibration",
    "200",
];

#[test]
fn compress_writes_a_slim_file_that_runs_at_the_reported_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let model = quick_model(dir.path(), "m.safetensors", &[]);
    let out = dir.path().join("m.slim");
    let report = dir.path().join("m.json");
    let mut args = vec![
        "compress",
        s(&model),
        "--out",
        s(&out),
        "--json",
        "--report",
        s(&report),
    ];
    args.extend_from_slice(&QUICK_COMPRESS);
    let stdout = ok(&args);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v,
        serde_json::from_str::<Value>(&fs::read_to_string(&report).unwrap()).unwrap()
    );
    let bytes = fs::read(&out).unwrap();
    assert_eq!(v["bytes"].as_u64().unwrap() as usize, bytes.len());
    assert_eq!(v["dense_f32_bytes"], 1_066_440);
    assert!(v["ratio"].as_f64().unwrap() > 40.0, "{}", v["ratio"]);
    let names: Vec<&str> = v["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["float32", "pruned", "clustered", "quantized", "coded"]
    );
    for st in v["stages"].as_array().unwrap() {
        assert!(
            st["bytes"].as_u64().unwrap() > 0 && st["accuracy"].as_f64().unwrap() > 0.5,
            "{st}"
        );
    }
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for key in [
        "kept_percent",
        "index_bits",
        "position_bits",
        "codebook_bytes",
        "bytes_before_coding",
        "bytes_after_coding",
        "section_bytes",
        "ratio",
    ] {
        assert!(layers.iter().all(|l| !l[key].is_null()), "{key}");
    }
    // The runtime, run on the written file by `slimnet eval`, reads the same accuracies.
    let e: Value = serde_json::from_str(&ok(&["eval", s(&out), "--json"])).unwrap();
    assert_eq!(e["accuracy"], v["accuracy"]);
    let e: Value =
        serde_json::from_str(&ok(&["eval", s(&out), "--json", "--integer-only"])).unwrap();
    assert_eq!(e["accuracy"], v["accuracy_integer_only"]);
    assert!(ok(&["info", s(&out)]).contains("sparse shared"));
    // Reproducible with the seed.
    let again = dir.path().join("again.slim");
    let mut args = vec![
        "compress",
        s(&model),
        "--out",
        s(&again),
        "-q",
        "--seed",
        "1",
    ];
    args.extend_from_slice(&QUICK_COMPRESS);
    let table = ok(&args);
    assert!(table.contains("| **total** |"), "{table}");
    assert_eq!(fs::read(&again).unwrap(), bytes);
}

#[test]
fn compress_refuses_bad_settings_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = quick_model(dir.path(), "m.safetensors", &[]);
    let out = dir.path().join("never.slim");
    let cases: [(&[&str], &str); 7] = [
        (&["--bits", "9"], "bits must be in 1..=8"),
        (&["--bits", "fc1=0"], "bits must be in 1..=8"),
        (&["--sparsity", "1.0"], "sparsity must be in [0, 1)"),
        (&["--sparsity", "fc9=0.5"], "no layer `fc9`"),
        (&["--preset", "tiny"], "not a preset"),
        (&["--cluster-init", "magic"], "not an initialization"),
        (
            &["--sparsity", "fc3=0.99", "--bits", "fc3=8"],
            "only 10 weights kept",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["compress", s(&model), "--out", s(&out), "-q"];
        args.extend_from_slice(&QUICK_COMPRESS);
        args.extend_from_slice(extra);
        let err = fails(&args);
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(!out.exists());
    }
    // A .slim file where a trained model is needed, and an output directory that does not exist.
    let slim = dir.path().join("m.slim");
    ok(&["export", s(&model), "--out", s(&slim)]);
    let err = fails(&["compress", s(&slim), "--out", s(&out)]);
    assert!(err.contains("m.slim"), "{err}");
    let err = fails(&["compress", s(&model), "--out", "/nonexistent/x.slim"]);
    assert!(err.contains("does not exist"), "{err}");
    // A collapse of accuracy is not an error, but it is said plainly, with its stage, even with -q.
    let collapsed = dir.path().join("collapsed.slim");
    let args = [
        "compress",
        s(&model),
        "--out",
        s(&collapsed),
        "-q",
        "--train-limit",
        "2000",
        "--val",
        "500",
        "--prune-rounds",
        "1",
        "--retrain-epochs",
        "0",
        "--final-epochs",
        "0",
        "--sparsity",
        "0.9995",
        "--skip",
        "cluster",
    ];
    let out = slimnet(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: accuracy collapsed after pruning"),
        "{err}"
    );
}

#[test]
fn compress_handles_convolutions_on_any_idx_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = quadrant_model(dir.path());
    let out = dir.path().join("q.slim");
    let v: Value = serde_json::from_str(&ok(&[
        "compress",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--json",
        "--val",
        "80",
        "--sparsity",
        "0.6",
        "--bits",
        "conv1=3,fc1=4,fc2=3",
        "--prune-rounds",
        "1",
        "--retrain-epochs",
        "2",
        "--final-epochs",
        "2",
        "--finetune-epochs",
        "1",
    ]))
    .unwrap();
    assert!(v["accuracy"].as_f64().unwrap() > 0.9, "{v}");
    assert!(v["accuracy_integer_only"].as_f64().unwrap() > 0.9, "{v}");
    assert_eq!(v["layers"][0]["encoding"], "sparse shared");
    let e: Value =
        serde_json::from_str(&ok(&["eval", s(&out), "--data", s(&data), "--json"])).unwrap();
    assert_eq!(e["accuracy"], v["accuracy"]);
}

#[test]
fn sensitivity_measures_every_analysis_and_writes_tables_csv_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = quadrant_model(dir.path());
    let plots = dir.path().join("plots");
    let csv = dir.path().join("s.csv");
    let v: Value = serde_json::from_str(&ok(&[
        "sensitivity",
        s(&model),
        "--data",
        s(&data),
        "--samples",
        "200",
        "--repeats",
        "2",
        "--sigmas",
        "0,0.1,2",
        "--sparsities",
        "0.5,0.9",
        "--quantize-bits",
        "2,8",
        "--cluster-bits",
        "1,6",
        "--flatness-samples",
        "100",
        "--hessian-iterations",
        "5",
        "--plots",
        s(&plots),
        "--csv",
        s(&csv),
        "--json",
    ]))
    .unwrap();
    let base = v["accuracy"].as_f64().unwrap();
    assert!(base > 0.9, "{v}");
    let curves = v["curves"].as_array().unwrap();
    let kinds = [
        "noise-additive",
        "noise-multiplicative",
        "prune",
        "quantize",
        "cluster",
    ];
    for kind in kinds {
        let targets: Vec<&str> = curves
            .iter()
            .filter(|c| c["analysis"] == kind)
            .map(|c| c["target"].as_str().unwrap())
            .collect();
        assert_eq!(targets, ["conv1", "fc1", "fc2", "model"], "{kind}");
        let svg = fs::read_to_string(plots.join(format!("sensitivity-{kind}.svg"))).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let png = fs::read(plots.join(format!("sensitivity-{kind}.png"))).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
    }
    // 8-bit quantization changes little; 2σ of noise on the whole model more than on one layer, on average.
    let point = |kind: &str, target: &str, i: usize| {
        curves
            .iter()
            .find(|c| c["analysis"] == kind && c["target"] == target)
            .unwrap()["points"][i]["accuracy"]["mean"]
            .as_f64()
            .unwrap()
    };
    assert!((point("quantize", "model", 1) - base).abs() < 0.05);
    // σ = 0 is the unperturbed model, exactly.
    for kind in ["noise-additive", "noise-multiplicative"] {
        assert_eq!(point(kind, "model", 0), base);
    }
    assert!(point("noise-additive", "model", 2) < base);
    assert_eq!(v["flatness"].as_array().unwrap().len(), 4);
    assert!(
        v["flatness"][3]["top_eigenvalue"].as_f64().unwrap() > 0.0,
        "{v}"
    );
    let text = fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("analysis,target,parameter,x,accuracy_mean"));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("prune,")).count(),
        8,
        "{text}"
    );
    // The readable tables.
    let out = ok(&[
        "sensitivity",
        s(&model),
        "--data",
        s(&data),
        "--analyses",
        "prune",
        "--sparsities",
        "0.5",
        "-q",
    ]);
    assert!(out.contains("prune: test accuracy (%) by sparsity") && out.contains("| model |"));
}

#[test]
fn sensitivity_injects_bit_flips_into_the_slim_file_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = quadrant_model(dir.path());
    let slim = dir.path().join("q.slim");
    ok(&["export", s(&model), "--out", s(&slim), "--data", s(&data)]);
    let v: Value = serde_json::from_str(&ok(&[
        "sensitivity",
        s(&slim),
        "--data",
        s(&data),
        "--rates",
        "1e-6,0.05",
        "--repeats",
        "3",
        "--json",
    ]))
    .unwrap();
    let curves = v["curves"].as_array().unwrap();
    assert!(curves.iter().all(|c| c["analysis"] == "bitflip"));
    let model_curve = curves.iter().find(|c| c["target"] == "model").unwrap();
    // At 1e-6 over a few kilobytes nothing is flipped: the accuracy is the file's own.
    assert_eq!(
        model_curve["points"][0]["accuracy"]["mean"]
            .as_f64()
            .unwrap(),
        v["accuracy"].as_f64().unwrap()
    );
    let p = &model_curve["points"][1];
    assert!(p["refused"].as_f64().unwrap() > 0.0 || p["accuracy"]["mean"].as_f64().unwrap() < 0.9);
    // After load, `verify` catches every damaged draw, in the stored weights and anywhere in the file.
    assert_eq!(p["faulty"], 3);
    assert_eq!(p["detected"].as_f64(), Some(1.0));
    assert!(model_curve["points"][0].get("detected").is_none());
    let file_curve = curves.iter().find(|c| c["target"] == "file").unwrap();
    assert_eq!(file_curve["points"][1]["detected"].as_f64(), Some(1.0));
    let text = ok(&[
        "sensitivity",
        s(&slim),
        "--data",
        s(&data),
        "--rates",
        "0.05",
        "--repeats",
        "2",
    ]);
    assert!(text.contains("`verify` detected"), "{text}");
    for (args, expect) in [
        (vec!["--analyses", "noise"], "needs a safetensors model"),
        (vec!["--analyses", "bogus"], "unknown analysis"),
        (vec!["--rates", "0.7"], "--rates"),
    ] {
        let mut all = vec!["sensitivity", s(&slim), "--data", s(&data)];
        all.extend(args);
        let err = fails(&all);
        assert!(err.contains(expect), "{err}");
    }
    let err = fails(&[
        "sensitivity",
        s(&model),
        "--data",
        s(&data),
        "--sigmas",
        "11",
    ]);
    assert!(err.contains("--sigmas") && err.contains("[0, 10]"), "{err}");
    let err = fails(&[
        "sensitivity",
        s(&model),
        "--data",
        s(&data),
        "--analyses",
        "bitflip",
    ]);
    assert!(err.contains("--slim"), "{err}");
}

#[test]
fn report_puts_runs_and_peers_on_one_pareto_front() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = quadrant_model(dir.path());
    let json = dir.path().join("run.json");
    ok(&[
        "compress",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&dir.path().join("q.slim")),
        "--report",
        s(&json),
        "--val",
        "80",
        "--sparsity",
        "0.5",
        "--bits",
        "3",
        "--prune-rounds",
        "1",
        "--retrain-epochs",
        "1",
        "--final-epochs",
        "0",
        "--finetune-epochs",
        "0",
        "-q",
    ]);
    let peers = dir.path().join("peers/mine");
    fs::create_dir_all(&peers).unwrap();
    fs::write(
        peers.join("results.json"),
        r#"{"models": [{"model": "quad", "big": {"bytes": 999999, "accuracy": 0.5},
            "small": {"file_bytes": 10, "accuracy": 0.25}}]}"#,
    )
    .unwrap();
    let out = dir.path().join("report");
    let v: Value = serde_json::from_str(&ok(&[
        "report",
        "--from",
        s(&json),
        "--peers",
        s(&peers.join("results.json")),
        "--model-name",
        "quad",
        "--out",
        s(&out),
        "--json",
    ]))
    .unwrap();
    let entries = v["entries"].as_array().unwrap();
    let sources: Vec<&str> = entries
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert!(
        sources.contains(&"slimnet") && sources.contains(&"mine") && sources.contains(&"baseline")
    );
    // The 10-byte peer entry is the smallest: on the front; the big, poor one is not.
    assert_eq!(entries[0]["bytes"], 10);
    assert_eq!(entries[0]["pareto"], true);
    let big = entries.iter().find(|e| e["label"] == "big").unwrap();
    assert_eq!(big["pareto"], false);
    let svg = fs::read_to_string(out.join("report.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Pareto front"));
    assert!(fs::read_to_string(out.join("report.md"))
        .unwrap()
        .contains("| ★ |"));
    let err = fails(&["report", "--out", s(&out)]);
    assert!(err.contains("nothing to report"), "{err}");
    let err = fails(&["report", "--from", s(&model), "--out", s(&out)]);
    assert!(err.contains("not JSON"), "{err}");
}

#[test]
fn compress_auto_respects_its_budget_on_a_small_model() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = quadrant_model(dir.path());
    let out = dir.path().join("auto.slim");
    let v: Value = serde_json::from_str(&ok(&[
        "compress",
        s(&model),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--auto",
        "--max-accuracy-drop",
        "2",
        "--val",
        "80",
        "--prune-rounds",
        "1",
        "--retrain-epochs",
        "2",
        "--final-epochs",
        "1",
        "--finetune-epochs",
        "1",
        "--json",
    ]))
    .unwrap();
    let auto = &v["auto"];
    let chosen = &auto["attempts"][auto["chosen"].as_u64().unwrap() as usize];
    assert_eq!(chosen["within_budget"], true, "{auto}");
    assert!(chosen["val_drop"].as_f64().unwrap() <= 2.0);
    assert_eq!(chosen["bytes"], v["bytes"]);
    // The smallest of the plans within the budget.
    for a in auto["attempts"].as_array().unwrap() {
        if a["within_budget"] == true {
            assert!(a["bytes"].as_u64() >= chosen["bytes"].as_u64());
        }
    }
    assert_eq!(auto["curves"].as_array().unwrap().len(), 3);
    let e: Value =
        serde_json::from_str(&ok(&["eval", s(&out), "--data", s(&data), "--json"])).unwrap();
    assert_eq!(e["accuracy"], v["accuracy"]);
    let o = slimnet(&[
        "compress",
        s(&model),
        "--out",
        s(&out),
        "--auto",
        "--sparsity",
        "0.5",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("'--auto' cannot be used with '--sparsity"),
        "{err}"
    );
}

/// `bench` times every path of the committed compressed LeNet-300-100, prepared too, on test images and on noise.
#[test]
fn bench_times_each_path_on_images_and_on_noise() {
    let slim = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/runtime/embedded/models/lenet-300-100.slim"
    );
    for extra in [&["--images", "3"][..], &["--noise"][..]] {
        let mut args = vec!["bench", slim, "--runs", "20", "--repeats", "1", "--json"];
        args.extend_from_slice(extra);
        let out: serde_json::Value = serde_json::from_str(ok(&args).trim()).unwrap();
        let paths: Vec<&str> = out["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                assert!(p["latency_us"].as_f64().unwrap() > 0.0, "{p}");
                p["path"].as_str().unwrap()
            })
            .collect();
        assert_eq!(
            paths,
            ["f32", "integer-only", "integer-only prepared"],
            "{extra:?}"
        );
    }
}
