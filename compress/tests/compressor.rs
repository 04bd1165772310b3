//! The compressor's stages on real (small) training runs: masks hold through retraining, ties hold through
//! centroid fine-tuning, and the whole pipeline writes a file the runtime runs, reproducibly.

use slimnet_compress::cluster::{BitWidth, ClusterInit, SharedLayer, TieProjection};
use slimnet_compress::compressor::{LayerBits, Quiet, Settings};
use slimnet_compress::prune::{MaskProjection, Masks, Sparsity, SparsityTarget};
use slimnet_compress::{compress, evaluate_slim, NumericPath, Preset};
use slimnet_models::train::Silent;
use slimnet_models::{Mnist, NetSpec, Params, Shape, Split, TrainConfig, Trainer};
use std::path::Path;
use std::sync::OnceLock;

fn split() -> &'static Split {
    static SPLIT: OnceLock<Split> = OnceLock::new();
    SPLIT.get_or_init(|| {
        let data =
            Mnist::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")).unwrap();
        let mut s = data.split(300, Some(2000)).unwrap();
        s.test = s.test.slice(0, 1000);
        s
    })
}

fn net() -> NetSpec {
    NetSpec::parse("mlp:32", Shape::image(28, 28), 10, false).unwrap()
}

fn one_epoch(
    net: &NetSpec,
    params: Params,
    projection: &mut dyn slimnet_models::Projection,
) -> Params {
    let config = TrainConfig {
        epochs: 1,
        batch_size: 32,
        lr: 3e-3,
        l2: 1e-3, // a penalty that would move pruned weights if the mask did not hold them
        ..TrainConfig::recipe()
    };
    let s = split();
    let trainer = Trainer {
        net,
        config: &config,
        split: s,
        normalization: slimnet_models::Normalization::of(&s.train),
        checkpoint: None,
        teacher: None,
    };
    trainer
        .run(params, false, projection, &mut Silent)
        .unwrap()
        .params
}

#[test]
fn pruned_weights_stay_zero_through_retraining() {
    let net = net();
    let mut params = Params::init(&net, 1);
    let masks = Masks::magnitude(
        &params,
        &SparsityTarget::Global(Sparsity::new(0.8, "test").unwrap()),
    );
    masks.apply(&mut params);
    let before = params.clone();
    let after = one_epoch(&net, params, &mut MaskProjection { masks: &masks });
    for m in &masks.layers {
        let (b, a) = (
            &before.tensors[m.tensor].data,
            &after.tensors[m.tensor].data,
        );
        let mut moved = 0;
        for ((&k, x), y) in m.keep.iter().zip(b).zip(a) {
            if k {
                moved += usize::from(x != y);
            } else {
                assert_eq!(*y, 0.0, "{}: a pruned weight moved", m.layer);
            }
        }
        assert!(moved > m.kept() / 2, "{}: kept weights must train", m.layer);
    }
}

#[test]
fn centroid_fine_tuning_keeps_weights_tied_and_moves_the_centroids() {
    let net = net();
    let mut params = Params::init(&net, 2);
    let masks = Masks::magnitude(
        &params,
        &SparsityTarget::Global(Sparsity::new(0.5, "test").unwrap()),
    );
    masks.apply(&mut params);
    let bits = BitWidth::new(3, "test").unwrap();
    let mut layers: Vec<SharedLayer> = ["fc1", "fc2"]
        .iter()
        .map(|n| SharedLayer::cluster(&params, &masks, n, bits, ClusterInit::Linear, 0).unwrap())
        .collect();
    for l in &layers {
        l.apply(&mut params);
    }
    let initial: Vec<Vec<f32>> = layers.iter().map(|l| l.centroids.clone()).collect();
    let after = one_epoch(
        &net,
        params,
        &mut TieProjection {
            layers: &mut layers,
        },
    );
    for (l, init) in layers.iter().zip(&initial) {
        let w = &after.tensors[l.tensor].data;
        let mut values = vec![None; l.centroids.len()];
        for (&p, &a) in l.positions.iter().zip(&l.assignment) {
            let v = values[a as usize].get_or_insert(w[p]);
            assert_eq!(*v, w[p], "{}: cluster {a} came untied", l.layer);
        }
        let kept: std::collections::HashSet<usize> = l.positions.iter().copied().collect();
        assert!(
            w.iter()
                .enumerate()
                .all(|(i, v)| kept.contains(&i) || *v == 0.0),
            "{}: a pruned weight moved",
            l.layer
        );
        assert!(
            l.centroids.iter().zip(init).any(|(a, b)| a != b),
            "{}: the centroids must be trained",
            l.layer
        );
    }
}

fn quick_settings(net: &NetSpec) -> Settings {
    Settings {
        prune_rounds: 2,
        retrain_epochs: 1,
        final_epochs: 1,
        finetune_epochs: 1,
        calibration_samples: 200,
        ..Settings::preset(Preset::Slimnet, net)
    }
}

#[test]
fn the_pipeline_writes_a_file_the_runtime_runs_and_reproduces_with_the_seed() {
    let s = split();
    let net = net();
    let model = slimnet_models::Model {
        net: net.clone(),
        normalization: slimnet_models::Normalization::of(&s.train),
        params: one_epoch(
            &net,
            Params::init(&net, 3),
            &mut slimnet_models::train::NoProjection,
        ),
        dataset_sha256: None,
        metadata: Default::default(),
    };
    let settings = Settings {
        sparsity: SparsityTarget::Global(Sparsity::new(0.7, "test").unwrap()),
        bits: LayerBits::parse("4", &net).unwrap(),
        ..quick_settings(&net)
    };
    let a = compress(&model, s, &settings, &mut Quiet).unwrap();
    let r = &a.report;
    let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["float32", "pruned", "clustered", "quantized", "coded"]
    );
    assert_eq!(r.bytes, a.bytes.len());
    assert!(r.ratio > 10.0, "70 % pruned, 4 bits: {}×", r.ratio);
    // The reported accuracies are the runtime's on the written bytes.
    assert_eq!(
        r.accuracy,
        evaluate_slim(&a.bytes, &s.test, NumericPath::F32)
            .unwrap()
            .accuracy
    );
    assert_eq!(
        r.accuracy_integer_only,
        Some(
            evaluate_slim(&a.bytes, &s.test, NumericPath::Integer)
                .unwrap()
                .accuracy
        )
    );
    assert!(
        r.accuracy > r.baseline_accuracy - 0.1,
        "accuracy {} from {}",
        r.accuracy,
        r.baseline_accuracy
    );
    // The per-layer account adds up to the file.
    let sections: usize = r.layers.iter().map(|l| l.section_bytes).sum();
    assert_eq!(sections + r.other_bytes, r.bytes);
    let total: usize = r.layers.iter().map(|l| l.weights).sum();
    let kept: usize = r.layers.iter().map(|l| l.kept).sum();
    assert_eq!(total - kept, (0.7 * total as f64).round() as usize);
    for l in &r.layers {
        assert!(
            l.clusters.unwrap() <= 16 && l.bytes_after_coding <= l.bytes_before_coding,
            "{l:?}"
        );
    }
    // Same seed, same bytes; another seed, another file.
    let b = compress(&model, s, &settings, &mut Quiet).unwrap();
    assert_eq!(a.bytes, b.bytes);
    let c = compress(
        &model,
        s,
        &Settings {
            seed: 9,
            ..settings
        },
        &mut Quiet,
    )
    .unwrap();
    assert_ne!(a.bytes, c.bytes);
}

#[test]
fn skipped_stages_leave_an_f32_file_or_dense_int8() {
    let s = split();
    let net = net();
    let model = slimnet_models::Model {
        net: net.clone(),
        normalization: slimnet_models::Normalization::of(&s.train),
        params: Params::init(&net, 4),
        dataset_sha256: None,
        metadata: Default::default(),
    };
    // No quantization: f32 codebooks, no integer path.
    let f32_only = Settings {
        quantize: false,
        ..quick_settings(&net)
    };
    let r = compress(&model, s, &f32_only, &mut Quiet).unwrap().report;
    assert!(r.accuracy_integer_only.is_none());
    assert!(!r.stages.iter().any(|s| s.name == "quantized"));
    // Nothing but quantization: dense int8, about 4× smaller.
    let int8_only = Settings {
        sparsity: SparsityTarget::PerLayer(Default::default()),
        bits: LayerBits::default(),
        ..quick_settings(&net)
    };
    let r = compress(&model, s, &int8_only, &mut Quiet).unwrap().report;
    let names: Vec<&str> = r.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["float32", "quantized", "coded"]);
    assert!(r.layers.iter().all(|l| l.encoding == "dense int8"));
    assert!(r.ratio > 3.5 && r.ratio < 4.1, "{}", r.ratio);
}

#[test]
fn more_clusters_than_kept_weights_is_refused() {
    let s = split();
    let net = net();
    let model = slimnet_models::Model {
        net: net.clone(),
        normalization: slimnet_models::Normalization::of(&s.train),
        params: Params::init(&net, 5),
        dataset_sha256: None,
        metadata: Default::default(),
    };
    let settings = Settings {
        sparsity: SparsityTarget::parse("fc2=0.9", &net).unwrap(), // 320 → 32 kept
        bits: LayerBits::parse("fc2=6", &net).unwrap(),            // 64 clusters
        ..quick_settings(&net)
    };
    let e = compress(&model, s, &settings, &mut Quiet)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--bits") && e.contains("fc2") && e.contains("32 weights kept"),
        "{e}"
    );
}
