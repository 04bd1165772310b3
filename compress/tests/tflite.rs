//! TFLite import against TFLite itself: the fixtures (`tests/fixtures/tflite/`, made by `make_fixtures.py`
//! with the TFLite converter) run in slimnet's runtime give, on the int8 models, the very output bytes TFLite
//! Micro's reference kernels gave on the same inputs, and on the float models LiteRT's outputs within 1e-5.

use slimnet_compress::tflite;
use slimnet_runtime::Model;
use std::path::PathBuf;

const FAMILIES: [&str; 5] = ["ds_cnn", "resnet", "dsnet", "autoencoder", "lenet5"];

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tflite")
        .join(name)
}

/// An .npy file's shape and values.
fn npy<T: npyz::Deserialize>(name: &str) -> (Vec<u64>, Vec<T>) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().to_vec();
    (shape, f.into_vec().unwrap())
}

fn slim(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    tflite::import(&bytes)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .to_bytes()
        .unwrap()
}

#[test]
fn int8_models_give_tflite_micros_output_bytes() {
    for family in FAMILIES {
        let bytes = slim(&format!("{family}.int8.tflite"));
        let m = Model::from_bytes(&bytes).unwrap();
        assert!(m.has_integer() && !m.has_f32());
        let (shape, x) = npy::<i8>(&format!("{family}.int8.input.npy"));
        let (_, want) = npy::<i8>(&format!("{family}.int8.output.npy"));
        let (n, n_in, n_out) = (shape[0] as usize, m.input_len(), m.output_len());
        assert_eq!((x.len(), want.len()), (n * n_in, n * n_out), "{family}");
        let mut arena = vec![0u8; m.arena_len_int8()];
        let mut equal = 0;
        for s in 0..n {
            let mut out = vec![0i8; n_out];
            m.run_int8(&x[s * n_in..(s + 1) * n_in], &mut arena, &mut out)
                .unwrap();
            let w = &want[s * n_out..(s + 1) * n_out];
            equal += out.iter().zip(w).filter(|(a, b)| a == b).count();
        }
        assert_eq!(
            equal,
            n * n_out,
            "{family}: {equal} of {} output bytes equal TFLM's",
            n * n_out
        );
    }
}

#[test]
fn float_models_give_litert_outputs() {
    for family in FAMILIES {
        let bytes = slim(&format!("{family}.f32.tflite"));
        let m = Model::from_bytes(&bytes).unwrap();
        assert!(m.has_f32() && !m.has_integer());
        let (shape, x) = npy::<f32>(&format!("{family}.f32.input.npy"));
        let (_, want) = npy::<f32>(&format!("{family}.f32.output.npy"));
        let (n, n_in, n_out) = (shape[0] as usize, m.input_len(), m.output_len());
        let mut arena = vec![0u8; m.arena_len()];
        let mut worst = 0f32;
        for s in 0..n {
            let mut out = vec![0f32; n_out];
            m.run_f32(&x[s * n_in..(s + 1) * n_in], &mut arena, &mut out)
                .unwrap();
            let w = &want[s * n_out..(s + 1) * n_out];
            let scale = w.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
            for (a, b) in out.iter().zip(w) {
                worst = worst.max((a - b).abs() / scale);
            }
        }
        assert!(worst <= 1e-5, "{family}: relative error {worst}");
    }
}

#[test]
fn lossless_recoding_keeps_every_output_byte_and_shrinks_the_file() {
    use slimnet_compress::slim::CoderChoice;
    for family in FAMILIES {
        let tfl = std::fs::read(fixture(&format!("{family}.int8.tflite"))).unwrap();
        let mut file = tflite::import(&tfl).unwrap();
        let dense = file.to_bytes().unwrap();
        let report =
            slimnet_compress::lossless::recode(&mut file, CoderChoice::Smallest { zstd_level: 19 })
                .unwrap();
        let recoded = file.to_bytes().unwrap();
        assert!(
            recoded.len() <= dense.len(),
            "{family}: {} > {}",
            recoded.len(),
            dense.len()
        );
        assert!(report
            .iter()
            .all(|r| r.bytes_after <= r.bytes_before && r.kept <= r.weights));
        let (a, b) = (
            Model::from_bytes(&dense).unwrap(),
            Model::from_bytes(&recoded).unwrap(),
        );
        let (shape, x) = npy::<i8>(&format!("{family}.int8.input.npy"));
        let (n, n_in, n_out) = (shape[0] as usize, a.input_len(), a.output_len());
        let (mut ar_a, mut ar_b) = (vec![0u8; a.arena_len_int8()], vec![0u8; b.arena_len_int8()]);
        for s in 0..n {
            let (mut ya, mut yb) = (vec![0i8; n_out], vec![0i8; n_out]);
            a.run_int8(&x[s * n_in..(s + 1) * n_in], &mut ar_a, &mut ya)
                .unwrap();
            b.run_int8(&x[s * n_in..(s + 1) * n_in], &mut ar_b, &mut yb)
                .unwrap();
            assert_eq!(ya, yb, "{family}, sample {s}");
        }
    }
}
