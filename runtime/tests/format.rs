//! Files built by hand from FORMAT.md load and compute what the specification says.

mod common;
use common::*;
use slimnet_runtime::{Encoding, Error, Model, OpKind, StreamCoding};

fn coding(huffman: bool) -> StreamCoding {
    if huffman {
        StreamCoding::Huffman
    } else {
        StreamCoding::Packed
    }
}

#[test]
fn hand_built_f32_file_computes_the_specified_logits() {
    for (ph, ih) in [(false, false), (true, true), (true, false), (false, true)] {
        let bytes = tiny_f32_coded(ph, ih);
        let m = Model::from_bytes(&bytes).unwrap();
        assert_eq!((m.input_len(), m.classes()), (4, 2));
        assert!(m.has_f32() && !m.has_integer());
        let mut arena = vec![0u8; m.arena_len()];
        for p in [[0u8, 0, 0, 0], [3, 1, 4, 1], [200, 7, 9, 255], [1, 2, 3, 4]] {
            let mut out = [0f32; 2];
            m.run_u8(&p, &mut arena, &mut out).unwrap();
            let want = tiny_expected(p);
            for (a, b) in out.iter().zip(want) {
                assert!((a - b).abs() < 1e-3, "{p:?}: {out:?} vs {want:?}");
            }
            let f: Vec<f32> = p.iter().map(|&v| f32::from(v)).collect();
            m.run_f32(&f, &mut arena, &mut out).unwrap();
            assert!((out[0] - want[0]).abs() < 1e-3);
            let predicted = m.predict_u8(&p, &mut arena).unwrap();
            assert_eq!(predicted, usize::from(want[1] > want[0]));
        }
        let fc2 = m.operator(2).unwrap();
        assert_eq!(
            (
                fc2.kind,
                fc2.encoding,
                fc2.weights_kept,
                fc2.position_coding,
                fc2.index_coding
            ),
            (
                OpKind::FullyConnected,
                Some(Encoding::Sparse),
                Some(3),
                Some(coding(ph)),
                Some(coding(ih))
            )
        );
    }
}

#[test]
fn hand_built_integer_file_requantizes_as_specified() {
    let bytes = tiny_int();
    let m = Model::from_bytes(&bytes).unwrap();
    assert!(m.has_integer() && !m.has_f32());
    let mut arena = vec![0u8; m.arena_len_int8()];
    for p in [
        [128u8, 128, 128, 128],
        [130, 129, 140, 128],
        [255, 255, 255, 255],
        [0, 0, 0, 0],
    ] {
        let mut out = [0i8; 2];
        m.run_u8_int8(&p, &mut arena, &mut out).unwrap();
        // x − zp_in = (p − 128) + 128 = p; acc = bias + Σ w·p; y = round(acc / 4), clamped.
        let x = p.map(i64::from);
        let acc0 = 8 + x[0] + 2 * x[1] + 3 * x[2] + 4 * x[3];
        let acc1 = -4 - x[0] + x[3];
        let want = [acc0, acc1].map(|a| ((a as f64 / 4.0).round() as i64).clamp(-128, 127) as i8);
        assert_eq!(out, want, "{p:?}");
    }
    // The f32 path is not in this file.
    assert_eq!(
        m.run_u8(&[0; 4], &mut [0; 64], &mut [0.0; 2]),
        Err(Error::PathUnavailable)
    );
}

#[test]
fn arena_sizes_are_exact() {
    let bytes = tiny_f32(false);
    let m = Model::from_bytes(&bytes).unwrap();
    // The input (4 values, which RESHAPE shares) and fc1's 3 live together; fc2's 2 take the input's place.
    assert_eq!(m.arena_len(), 4 * (4 + 3));
    let mut small = vec![0u8; m.arena_len() - 1];
    let mut out = [0f32; 2];
    assert!(matches!(
        m.run_u8(&[0; 4], &mut small, &mut out),
        Err(Error::BufferTooSmall {
            buffer: "arena",
            ..
        })
    ));
    assert!(matches!(
        m.run_u8(&[0; 3], &mut [0; 64], &mut out),
        Err(Error::BufferTooSmall {
            buffer: "input",
            ..
        })
    ));
    assert!(matches!(
        m.run_u8(&[0; 4], &mut [0; 64], &mut [0.0; 1]),
        Err(Error::BufferTooSmall {
            buffer: "output",
            ..
        })
    ));
}

/// Writes the hand-built files as fuzzing seeds when `SLIMNET_WRITE_CORPUS=DIR` is set (see runtime/fuzz/).
#[test]
fn write_fuzz_seeds_on_request() {
    if let Some(dir) = std::env::var_os("SLIMNET_WRITE_CORPUS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("tiny-packed.slim"), tiny_f32(false)).unwrap();
        std::fs::write(dir.join("tiny-huffman.slim"), tiny_f32(true)).unwrap();
        std::fs::write(dir.join("tiny-int.slim"), tiny_int()).unwrap();
    }
}

#[cfg(feature = "arena-decoding")]
#[test]
fn huffman_streams_decoded_into_the_arena_give_the_same_logits() {
    use slimnet_runtime::StreamDecoding;
    let bytes = tiny_f32(true);
    let streaming = Model::from_bytes(&bytes).unwrap();
    let mut decoded = streaming.clone();
    decoded.set_stream_decoding(StreamDecoding::Arena);
    // fc2 keeps 3 weights (3 position symbols, no fillers): a byte per position symbol and per index, 6 bytes
    // (8 aligned) of scratch while fc2 runs. The plan puts them where the input was (dead by then: fc1 read it),
    // beside fc1's 12 bytes and fc2's 8: the arena stays 28 bytes.
    assert_eq!((streaming.arena_len(), decoded.arena_len()), (28, 28));
    let mut a1 = vec![0u8; streaming.arena_len()];
    let mut a2 = vec![0u8; decoded.arena_len()];
    for p in [[0u8, 0, 0, 0], [3, 1, 4, 1], [200, 7, 9, 255]] {
        let (mut o1, mut o2) = ([0f32; 2], [0f32; 2]);
        streaming.run_u8(&p, &mut a1, &mut o1).unwrap();
        decoded.run_u8(&p, &mut a2, &mut o2).unwrap();
        assert_eq!(o1, o2);
    }
    // Bit-packed streams run in place in either mode: no extra arena.
    let packed = tiny_f32(false);
    let mut m = Model::from_bytes(&packed).unwrap();
    let before = m.arena_len();
    m.set_stream_decoding(StreamDecoding::Arena);
    assert_eq!(m.arena_len(), before);
}
