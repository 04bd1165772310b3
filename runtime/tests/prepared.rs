//! Prepared models (`Model::prepare_int8`): the sparse operators decoded once into caller memory give exactly
//! the outputs of the stored streams, with exact memory sizes and clear errors.
#![cfg(feature = "prepare")]

mod common;
use common::*;
use slimnet_runtime::{Error, Model};

fn committed(name: &str) -> Vec<u8> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read(root.join("embedded/models").join(name)).unwrap()
}

/// Int8 inputs that look like images: runs of zeros (the background's zero point) and random strokes.
fn inputs(m: &Model, rng: &mut u64, n: usize) -> Vec<Vec<i8>> {
    let (zp, _) = m.input_quantization();
    (0..n)
        .map(|_| {
            (0..m.input_len())
                .map(|_| {
                    *rng ^= *rng << 13;
                    *rng ^= *rng >> 7;
                    *rng ^= *rng << 17;
                    if *rng % 3 == 0 {
                        (*rng >> 8) as i8
                    } else {
                        zp as i8
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn prepared_lenets_give_the_stored_streams_outputs_with_exact_memory() {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    for name in ["lenet-300-100.slim", "lenet-5.slim"] {
        let bytes = committed(name);
        let stored = Model::from_bytes(&bytes).unwrap();
        let needed = stored.prepared_len_int8();
        assert!(needed > 0, "{name}: sparse operators have a prepared form");
        let mut memory = vec![0u8; needed];
        let mut prepared = Model::from_bytes(&bytes).unwrap();
        assert!(!prepared.is_prepared());
        prepared.prepare_int8(&mut memory).unwrap();
        assert!(prepared.is_prepared());
        let mut a1 = vec![0u8; stored.arena_len_int8()];
        let exact = prepared.arena_len_int8();
        let mut a2 = vec![0u8; exact];
        let mut differs = 0;
        for x in inputs(&stored, &mut rng, 20) {
            let (mut o1, mut o2) = (vec![0i8; 10], vec![0i8; 10]);
            stored.run_int8(&x, &mut a1, &mut o1).unwrap();
            prepared.run_int8(&x, &mut a2, &mut o2).unwrap();
            assert_eq!(o1, o2, "{name}");
            differs += usize::from(o1 != vec![o1[0]; 10]);
        }
        assert!(differs > 0, "{name}: outputs that can differ");
        if name == "lenet-5.slim" {
            // Both poolings are fused into their convolutions: the first convolution's 24 × 24 × 20 output
            // (11,520 bytes) is never written, so the arena is smaller than it.
            assert!(exact < 24 * 24 * 20, "{name}: arena {exact} bytes prepared");
        }
        // The planned arena is exact: one byte less is refused.
        let x = vec![0i8; prepared.input_len()];
        let mut small = vec![0u8; exact - 1];
        let mut out = vec![0i8; 10];
        assert!(matches!(
            prepared.run_int8(&x, &mut small, &mut out),
            Err(Error::BufferTooSmall {
                buffer: "arena",
                ..
            })
        ));
    }
}

#[test]
fn preparing_needs_enough_memory_and_the_integer_path() {
    let bytes = committed("lenet-300-100.slim");
    let mut m = Model::from_bytes(&bytes).unwrap();
    let needed = m.prepared_len_int8();
    let mut short = vec![0u8; needed - 1];
    assert_eq!(
        m.prepare_int8(&mut short),
        Err(Error::BufferTooSmall {
            buffer: "prepared",
            needed,
            provided: needed - 1
        })
    );
    assert!(
        !m.is_prepared(),
        "a failed prepare leaves the model running from its streams"
    );
    // A file without the integer path has nothing to prepare.
    let f32_only = tiny_f32(true);
    let mut m = Model::from_bytes(&f32_only).unwrap();
    assert_eq!(m.prepare_int8(&mut []), Err(Error::PathUnavailable));
    // Dense int8 operators run from the file as they are: no prepared form.
    let dense = tiny_int();
    let m = Model::from_bytes(&dense).unwrap();
    assert_eq!(m.prepared_len_int8(), 0);
}
