//! Write → read → run: models trained with candle, exported by this crate, run by the runtime, and compared with
//! candle's own evaluation of the same weights (parity), across the f32 and integer-only paths and every encoding.

use slimnet_compress::cluster::{BitWidth, ClusterInit, SharedLayer};
use slimnet_compress::export::{build, fold_batch_norm, Storage};
use slimnet_compress::prune::{Masks, Sparsity, SparsityTarget};
use slimnet_compress::slim::CoderChoice;
use slimnet_compress::{evaluate_slim, export, DenseEncoding, NumericPath};
use slimnet_models::fit::{fit, FitRequest};
use slimnet_models::{net, train::Silent, Dataset, Mnist, Model, TrainConfig};
use std::path::Path;
use std::sync::OnceLock;

fn mnist() -> &'static Mnist {
    static DATA: OnceLock<Mnist> = OnceLock::new();
    DATA.get_or_init(|| {
        Mnist::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")).unwrap()
    })
}

fn quick(arch: &str, batch_norm: bool) -> Model {
    let req = FitRequest {
        arch: arch.into(),
        batch_norm,
        config: TrainConfig {
            epochs: 2,
            batch_size: 32,
            lr: 3e-3,
            ..TrainConfig::recipe()
        },
        val: 500,
        train_limit: Some(3000),
        checkpoint: None,
        resume: false,
    };
    fit(mnist(), &req, &mut Silent).unwrap().model
}

fn test_slice() -> Dataset {
    mnist().test.slice(0, 2000)
}

/// candle's predictions for the test slice.
fn candle_predictions(model: &Model, data: &Dataset) -> Vec<u32> {
    let t = net::constants(&model.params).unwrap();
    let idx: Vec<usize> = (0..data.count).collect();
    let mut out = Vec::new();
    for c in idx.chunks(500) {
        let (x, _) = net::batch(&model.net, data, &model.normalization, c).unwrap();
        out.extend(
            net::argmax(&net::forward(&model.net, &t, &x, net::Mode::Eval).unwrap().0).unwrap(),
        );
    }
    out
}

fn agreement(a: &[u16], b: &[u32]) -> f64 {
    a.iter()
        .zip(b)
        .filter(|(x, y)| u32::from(**x) == **y)
        .count() as f64
        / a.len() as f64
}

#[test]
fn f32_runtime_matches_candle_and_int8_stays_close() {
    let data = test_slice();
    for (arch, bn) in [("lenet-300-100", false), ("cnn:c6k5-p2-c8k3-p2-f32", true)] {
        let model = quick(arch, bn);
        let reference = candle_predictions(&model, &data);
        let f32_file = export(&model, DenseEncoding::F32, &mnist().train, 500)
            .unwrap()
            .to_bytes()
            .unwrap();
        let e = evaluate_slim(&f32_file, &data, NumericPath::F32).unwrap();
        assert!(e.accuracy > 0.85, "{arch}: trained to {}", e.accuracy);
        assert!(
            agreement(&e.predictions, &reference) >= 0.999,
            "{arch}: f32 runtime vs candle"
        );

        let int8 = export(&model, DenseEncoding::Int8, &mnist().train, 1000)
            .unwrap()
            .to_bytes()
            .unwrap();
        let f = evaluate_slim(&int8, &data, NumericPath::F32).unwrap();
        let i = evaluate_slim(&int8, &data, NumericPath::Integer).unwrap();
        assert!(
            (f.accuracy - e.accuracy).abs() < 0.01,
            "{arch}: int8 weights, f32 path {} vs {}",
            f.accuracy,
            e.accuracy
        );
        assert!(
            (i.accuracy - f.accuracy).abs() < 0.01,
            "{arch}: integer {} vs f32 {}",
            i.accuracy,
            f.accuracy
        );
        let agree = agreement(&i.predictions, &reference);
        // Weakly trained models have many near-ties that int8 rounding flips; accuracy is what must hold.
        assert!(agree > 0.93, "{arch}: integer path agrees with candle on {agree}; accuracies f32 {} int8-f32 {} integer {}", e.accuracy, f.accuracy, i.accuracy);
        assert!(int8.len() * 3 < f32_file.len(), "int8 is about 4× smaller");
    }
}

/// Magnitude pruning to 85 % and 4-bit weight sharing, without retraining: the file and the dense weights it
/// stands for (one vector per layer).
fn sparse_mlp(model: &Model, coder: CoderChoice, integer: bool) -> (Vec<u8>, Vec<Vec<f32>>) {
    let folded = fold_batch_norm(model).unwrap();
    let target = SparsityTarget::Global(Sparsity::new(0.85, "test").unwrap());
    let masks = Masks::magnitude(&folded.params, &target);
    let names: Vec<&str> = model.net.layers.iter().filter_map(|l| l.name()).collect();
    let storage: Vec<Storage> = names
        .iter()
        .map(|name| {
            let bits = BitWidth::new(4, "test").unwrap();
            let l =
                SharedLayer::cluster(&folded.params, &masks, name, bits, ClusterInit::Linear, 0)
                    .unwrap();
            Storage::Shared {
                positions: l.positions,
                assignment: l.assignment,
                centroids: l.centroids,
                index_bits: 4,
            }
        })
        .collect();
    let built = build(
        model,
        &folded,
        &storage,
        integer,
        coder,
        &mnist().train,
        500,
    )
    .unwrap();
    let dense = names
        .iter()
        .map(|n| {
            built
                .effective
                .params
                .get(&format!("{n}.weight"))
                .unwrap()
                .data
                .clone()
        })
        .collect();
    (built.file.to_bytes().unwrap(), dense)
}

#[test]
fn sparse_shared_layers_run_from_their_streams_and_match_the_dense_equivalent() {
    let model = quick("lenet-300-100", false);
    let data = test_slice();
    let (packed, dense) = sparse_mlp(&model, CoderChoice::Packed, true);
    let (huff, _) = sparse_mlp(&model, CoderChoice::Huffman, true);
    let (zstd, _) = sparse_mlp(&model, CoderChoice::Zstd { level: 19 }, true);
    assert!(
        huff.len() < packed.len(),
        "Huffman {} vs bit-packed {}",
        huff.len(),
        packed.len()
    );

    // The dense equivalent, evaluated by candle.
    let mut m = model.clone();
    for (name, d) in ["fc1", "fc2", "fc3"].iter().zip(&dense) {
        m.params.get_mut(&format!("{name}.weight")).unwrap().data = d.clone();
    }
    let reference = candle_predictions(&m, &data);
    let packed_f32 = evaluate_slim(&packed, &data, NumericPath::F32).unwrap();
    for bytes in [&packed, &huff, &zstd] {
        let f = evaluate_slim(bytes, &data, NumericPath::F32).unwrap();
        // Lossless codings: the same weights, the same predictions.
        assert_eq!(f.predictions, packed_f32.predictions);
        assert!(agreement(&f.predictions, &reference) >= 0.999);
        let i = evaluate_slim(bytes, &data, NumericPath::Integer).unwrap();
        assert!(
            (i.accuracy - f.accuracy).abs() < 0.01,
            "integer {} vs f32 {}",
            i.accuracy,
            f.accuracy
        );
    }
    // Huffman streams decoded into the arena instead of on the fly: identical logits on both paths.
    let m = slimnet_runtime::Model::from_bytes(&huff).unwrap();
    let mut arena_mode = m.clone();
    arena_mode.set_stream_decoding(slimnet_runtime::StreamDecoding::Arena);
    let mut a1 = vec![0u8; m.arena_len().max(m.arena_len_int8())];
    let mut a2 = vec![0u8; arena_mode.arena_len().max(arena_mode.arena_len_int8())];
    for i in 0..50 {
        let img = data.image(i);
        let (mut f1, mut f2) = ([0f32; 10], [0f32; 10]);
        m.run_u8(img, &mut a1, &mut f1).unwrap();
        arena_mode.run_u8(img, &mut a2, &mut f2).unwrap();
        assert_eq!(f1, f2);
        let (mut q1, mut q2) = ([0i8; 10], [0i8; 10]);
        m.run_u8_int8(img, &mut a1, &mut q1).unwrap();
        arena_mode.run_u8_int8(img, &mut a2, &mut q2).unwrap();
        assert_eq!(q1, q2);
    }
    // Bit-packed and Huffman streams are the same weights: identical predictions on both paths.
    for path in [NumericPath::F32, NumericPath::Integer] {
        let a = evaluate_slim(&packed, &data, path).unwrap().predictions;
        let b = evaluate_slim(&huff, &data, path).unwrap().predictions;
        assert_eq!(a, b);
    }
}

#[test]
fn a_written_sparse_file_rejects_every_bit_flip_and_truncation() {
    let model = quick("mlp:8", false);
    let run = |b: &[u8]| -> Result<(), slimnet_runtime::Error> {
        let m = slimnet_runtime::Model::from_bytes(b)?;
        let mut arena = vec![0u8; m.arena_len().max(m.arena_len_int8())];
        m.predict_u8(&[9u8; 784], &mut arena)?;
        m.predict_int8(&[9u8; 784], &mut arena)?;
        Ok(())
    };
    for coder in [CoderChoice::Huffman, CoderChoice::Zstd { level: 19 }] {
        let (bytes, _) = sparse_mlp(&model, coder, true);
        assert!(run(&bytes).is_ok());
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(run(&b).is_err(), "{coder:?}: bit {i}");
        }
        for len in 0..bytes.len() {
            assert!(run(&bytes[..len]).is_err(), "{coder:?}: length {len}");
        }
        // Corruption that the CRC does not catch (the CRC re-sealed): zstd streams are only checked when a run
        // decodes them, which must then fail cleanly or run, never panic.
        for i in 24..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x5A;
            let crc = slimnet_runtime::crc32(&b[16..]);
            b[12..16].copy_from_slice(&crc.to_le_bytes());
            let _ = run(&b);
        }
    }
}
