//! `slimnet import`, `.tflite` files wherever a model is read, `run --input/--output` on raw tensors and
//! `compress --lossless`, end to end on the TFLite fixtures (`compress/tests/fixtures/tflite/`).

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

mod common;
use common::{fails, ok, s};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compress/tests/fixtures/tflite")
        .join(name)
}

/// An .npy file's raw little-endian data after its (version 1) header.
fn npy_data(path: &Path) -> Vec<u8> {
    let b = fs::read(path).unwrap();
    let len = usize::from(u16::from_le_bytes([b[8], b[9]]));
    b[10 + len..].to_vec()
}

#[test]
fn import_then_run_tensors_gives_tflite_micros_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let slim = dir.path().join("ds.slim");
    let tflite = fixture("ds_cnn.int8.tflite");
    let v: Value =
        serde_json::from_str(&ok(&["import", s(&tflite), "--out", s(&slim), "--json"])).unwrap();
    assert_eq!(v["path"], "integer-only");
    assert_eq!(v["input"], serde_json::json!([49, 10, 1]));
    assert_eq!(v["output"], serde_json::json!([12]));
    assert_eq!(
        v["bytes"].as_u64().unwrap(),
        fs::metadata(&slim).unwrap().len()
    );
    assert!(v["bytes"].as_u64().unwrap() < v["tflite_bytes"].as_u64().unwrap());
    let info: Value = serde_json::from_str(&ok(&["info", s(&slim), "--json"])).unwrap();
    let kinds: Vec<&str> = info["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"DEPTHWISE_CONV_2D") && kinds.contains(&"SOFTMAX"),
        "{kinds:?}"
    );
    // The .slim file and the .tflite itself (imported on the fly) give TFLM's output bytes.
    for model in [&slim, &tflite] {
        let y = dir.path().join("y.npy");
        ok(&[
            "run",
            s(model),
            "--input",
            s(&fixture("ds_cnn.int8.input.npy")),
            "--integer-only",
            "--output",
            s(&y),
        ]);
        assert_eq!(
            npy_data(&y),
            npy_data(&fixture("ds_cnn.int8.output.npy")),
            "{}",
            model.display()
        );
    }
    // The f32 path on a float model: LiteRT's outputs within 1e-5.
    let y = dir.path().join("yf.npy");
    let f = fixture("resnet.f32.tflite");
    ok(&[
        "run",
        s(&f),
        "--input",
        s(&fixture("resnet.f32.input.npy")),
        "--output",
        s(&y),
    ]);
    let floats = |b: Vec<u8>| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (got, want) = (
        floats(npy_data(&y)),
        floats(npy_data(&fixture("resnet.f32.output.npy"))),
    );
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().zip(&want).all(|(a, b)| (a - b).abs() <= 1e-5),
        "f32 outputs differ"
    );
}

#[test]
fn lossless_recoding_reports_sizes_and_keeps_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.slim");
    let tflite = fixture("dsnet.int8.tflite");
    let v: Value = serde_json::from_str(&ok(&[
        "compress",
        s(&tflite),
        "--lossless",
        "--out",
        s(&out),
        "--json",
    ]))
    .unwrap();
    let (bytes, tfl, z) = (
        v["bytes"].as_u64().unwrap(),
        v["tflite_bytes"].as_u64().unwrap(),
        v["tflite_zstd19_bytes"].as_u64().unwrap(),
    );
    assert_eq!(bytes, fs::metadata(&out).unwrap().len());
    assert!(bytes < tfl && bytes < z, "{bytes} vs {tfl} / {z}");
    let y = dir.path().join("y.npy");
    ok(&[
        "run",
        s(&out),
        "--input",
        s(&fixture("dsnet.int8.input.npy")),
        "--integer-only",
        "--output",
        s(&y),
    ]);
    assert_eq!(npy_data(&y), npy_data(&fixture("dsnet.int8.output.npy")));
    // A float model cannot be recoded losslessly.
    let e = fails(&[
        "compress",
        s(&fixture("dsnet.f32.tflite")),
        "--lossless",
        "--out",
        s(&out),
    ]);
    assert!(
        e.contains("dsnet.f32.tflite") && e.contains("float32"),
        "{e}"
    );
}

#[test]
fn bad_imports_and_tensor_runs_are_refused_with_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.slim");
    let npy = fixture("ds_cnn.int8.input.npy");
    // Not a TFLite file.
    let e = fails(&["import", s(&npy), "--out", s(&out)]);
    assert!(
        e.contains("ds_cnn.int8.input.npy") && e.contains("not a TFLite file"),
        "{e}"
    );
    // A truncated one.
    let cut = dir.path().join("cut.tflite");
    let b = fs::read(fixture("ds_cnn.int8.tflite")).unwrap();
    fs::write(&cut, &b[..b.len() / 3]).unwrap();
    let e = fails(&["import", s(&cut), "--out", s(&out)]);
    assert!(e.contains("cut.tflite"), "{e}");
    assert!(!out.exists());
    // --out naming the input.
    let copy = dir.path().join("copy.tflite");
    fs::copy(fixture("ds_cnn.int8.tflite"), &copy).unwrap();
    let e = fails(&["import", s(&copy), "--out", s(&copy)]);
    assert!(e.contains("is also an input"), "{e}");
    assert_eq!(
        fs::read(&copy).unwrap(),
        fs::read(fixture("ds_cnn.int8.tflite")).unwrap()
    );
    // Inputs of the wrong shape or type.
    let y = dir.path().join("y.npy");
    let e = fails(&[
        "run",
        s(&fixture("ds_cnn.int8.tflite")),
        "--input",
        s(&fixture("resnet.int8.input.npy")),
        "--integer-only",
        "--output",
        s(&y),
    ]);
    assert!(
        e.contains("resnet.int8.input.npy") && e.contains("49, 10, 1"),
        "{e}"
    );
    let e = fails(&[
        "run",
        s(&fixture("ds_cnn.f32.tflite")),
        "--input",
        s(&npy),
        "--output",
        s(&y),
    ]);
    assert!(
        e.contains("ds_cnn.int8.input.npy") && e.contains("float32"),
        "{e}"
    );
    assert!(!y.exists());
}
