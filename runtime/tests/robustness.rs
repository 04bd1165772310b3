//! No input bytes can make the runtime panic: every single-bit flip and every truncation of real files is an
//! `Err`, and each error path of the reader is reached by a targeted corruption.

mod common;
use common::*;
use slimnet_runtime::{Error, Model, Section};

/// Loads and, if it loads, runs: must never panic.
fn load_and_run(bytes: &[u8]) -> Result<(), Error> {
    let m = Model::from_bytes(bytes)?;
    let mut arena = vec![0u8; m.arena_len().max(m.arena_len_int8())];
    let pixels = vec![77u8; m.input_len()];
    if m.has_f32() {
        let mut out = vec![0f32; m.classes()];
        m.run_u8(&pixels, &mut arena, &mut out)?;
    }
    if m.has_integer() {
        let mut out = vec![0i8; m.classes()];
        if m.has_input_table() {
            m.run_u8_int8(&pixels, &mut arena, &mut out)?;
        }
        let tensor = vec![-3i8; m.input_len()];
        m.run_int8(&tensor, &mut arena, &mut out)?;
    }
    Ok(())
}

/// Files of every operator: the hand-built ones and, from the fuzz corpus, TFLite fixtures imported by
/// `slimnet import` (DS-CNN: CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX; ResNet:
/// ADD; LeNet-5: MAX_POOL_2D; int8 and f32) and the firmware's compressed LeNets (sparse, Huffman).
fn samples() -> Vec<Vec<u8>> {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/slim");
    let mut files = vec![tiny_f32(false), tiny_f32(true), tiny_int()];
    for name in [
        "ds_cnn-int8.slim",
        "ds_cnn-f32.slim",
        "resnet-int8.slim",
        "lenet5-int8.slim",
        "dsnet-int8.slim",
        "mlp-huffman.slim",
    ] {
        files.push(std::fs::read(corpus.join(name)).unwrap());
    }
    files
}

#[test]
fn every_single_bit_flip_is_rejected() {
    for bytes in samples() {
        assert!(load_and_run(&bytes).is_ok());
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            assert!(
                load_and_run(&b).is_err(),
                "bit {i} flipped and still accepted"
            );
        }
    }
}

#[test]
fn every_truncation_is_rejected() {
    for bytes in samples() {
        for len in 0..bytes.len() {
            assert!(
                load_and_run(&bytes[..len]).is_err(),
                "truncated to {len} and still accepted"
            );
        }
    }
}

#[test]
fn every_bit_flip_with_a_fixed_crc_still_never_panics() {
    // Past the checksum, the structural checks face the corruption on their own: every bit of files up to
    // 30,000 bits, an evenly spaced 30,000 of larger ones (each flip loads and runs the model).
    for bytes in samples() {
        let step = (bytes.len() * 8).div_ceil(30_000);
        for i in (128..bytes.len() * 8).step_by(step) {
            let mut b = bytes.clone();
            b[i / 8] ^= 1 << (i % 8);
            reseal(&mut b);
            let _ = load_and_run(&b);
            if i % 4 == 0 {
                prepare_and_run(&b);
            }
        }
    }
}

/// A file that loads, prepared (`Model::prepare_int8`) and run: errors allowed, panics not; a prepared run that
/// succeeds gives the stored streams' outputs.
fn prepare_and_run(bytes: &[u8]) {
    let Ok(m) = Model::from_bytes(bytes) else {
        return;
    };
    if !m.has_integer() || m.prepared_len_int8() == 0 {
        return;
    }
    let mut memory = vec![0u8; m.prepared_len_int8()];
    let mut p = m.clone();
    if p.prepare_int8(&mut memory).is_err() {
        return;
    }
    let tensor = vec![-3i8; m.input_len()];
    let (mut a1, mut a2) = (vec![0u8; m.arena_len_int8()], vec![0u8; p.arena_len_int8()]);
    let (mut o1, mut o2) = (vec![0i8; m.classes()], vec![0i8; m.classes()]);
    let r1 = m.run_int8(&tensor, &mut a1, &mut o1);
    let r2 = p.run_int8(&tensor, &mut a2, &mut o2);
    if r1.is_ok() && r2.is_ok() {
        assert_eq!(o1, o2, "prepared and stored outputs differ");
    }
}

fn edited(f: impl FnOnce(&mut Vec<u8>)) -> Result<(), Error> {
    let mut b = tiny_f32(false);
    f(&mut b);
    reseal(&mut b);
    load_and_run(&b)
}

#[test]
fn each_reader_error_is_reachable() {
    assert_eq!(
        load_and_run(b"PK\x03\x04 this is a zip file, not a model"),
        Err(Error::BadMagic)
    );
    assert!(matches!(
        load_and_run(b"SL"),
        Err(Error::Truncated {
            section: Section::Header,
            ..
        })
    ));
    assert_eq!(edited(|b| b[4] = 1), Err(Error::UnsupportedVersion(1)));
    assert!(format!("{}", Error::UnsupportedVersion(1)).contains("slimnet compress"));
    let mut b = tiny_f32(false);
    b[40] ^= 0xff;
    assert!(matches!(
        load_and_run(&b),
        Err(Error::ChecksumMismatch { .. })
    ));
    let mut b = tiny_f32(false);
    b.extend([0; 16]);
    assert_eq!(
        load_and_run(&b),
        Err(Error::LengthMismatch {
            declared: b.len() - 16,
            actual: b.len()
        })
    );
    assert!(matches!(
        edited(|b| b[6] = 0),
        Err(Error::InvalidValue { field: "flags", .. })
    ));
    // Section 1's offset made unaligned.
    assert_eq!(
        edited(|b| b[24 + 12 + 4] += 1),
        Err(Error::BadSection { index: 1 })
    );
    // Graph at 60: a 20-byte head, 4 tensors of 16 bytes, then the operators (12 bytes each, no parameters).
    let (tensors, ops) = (60 + 20, 60 + 20 + 64);
    let fc1 = ops + 12;
    // Tensor 2 (fc1's output) made 5 long: its weights are 3×4, not 5×4.
    assert_eq!(
        edited(|b| b[tensors + 2 * 16 + 4] = 5),
        Err(Error::ShapeMismatch {
            op: 1,
            expected: 20,
            found: 12
        })
    );
    // A rank of 5, a zero dimension.
    for (at, v) in [(tensors, 5u8), (tensors + 4, 0)] {
        assert!(matches!(
            edited(|b| b[at] = v),
            Err(Error::InvalidValue {
                field: "shape",
                section: Section::Tensor(0),
                ..
            })
        ));
    }
    // Unknown operator.
    assert!(matches!(
        edited(|b| b[fc1] = 9),
        Err(Error::InvalidValue {
            field: "operator code",
            section: Section::Operator(1),
            ..
        })
    ));
    // A weighted operator pointing at the graph section.
    assert!(matches!(
        edited(|b| b[fc1 + 10] = 0),
        Err(Error::InvalidValue {
            field: "weights section index",
            ..
        })
    ));
    // fc2 reading its own output: not computed yet.
    assert!(matches!(
        edited(|b| b[fc1 + 12 + 4] = 3),
        Err(Error::InvalidValue {
            field: "input tensor not yet computed",
            ..
        })
    ));
    // fc1 writing the input tensor.
    assert!(matches!(
        edited(|b| b[fc1 + 8] = 0),
        Err(Error::InvalidValue {
            field: "output tensor",
            ..
        })
    ));
    // An activation range upside down.
    assert!(matches!(
        edited(|b| (b[fc1 + 2], b[fc1 + 3]) = (100, 0)),
        Err(Error::InvalidValue {
            field: "activation range",
            ..
        })
    ));
    // fc2's first position symbol made 3 (a filler) → the weights run out of place.
    let mut b = tiny_f32(false);
    let n = b.len();
    b[n - 8] = 0b1101_0100; // 11 01 01: filler, then positions 4 and 6 (past the 2×3 matrix)
    reseal(&mut b);
    assert_eq!(load_and_run(&b), Err(Error::CorruptStream { op: 2 }));
    // Trailing bytes in a layer section: extend the file and the section.
    let e = edited(|b| {
        b.extend([0; 4]);
        let len = b.len() as u32;
        b[8..12].copy_from_slice(&len.to_le_bytes());
        let l2 = 24 + 12 * 2 + 8;
        let old = u32::from_le_bytes(b[l2..l2 + 4].try_into().unwrap());
        b[l2..l2 + 4].copy_from_slice(&(old + 4).to_le_bytes());
    });
    assert!(
        matches!(
            e,
            Err(Error::InvalidValue {
                field: "trailing bytes",
                ..
            })
        ),
        "{e:?}"
    );
}

#[test]
fn errors_display_one_readable_line() {
    let e = Error::Truncated {
        section: Section::Weights(2),
        needed: 10,
        available: 4,
    };
    assert_eq!(
        format!("{e}"),
        "truncated weights of operator 2: needs 10 bytes, 4 available"
    );
    assert_eq!(
        format!("{}", Error::BadMagic),
        "not a .slim file (bad magic)"
    );
}

#[test]
fn load_fills_in_place_and_a_failed_load_leaves_an_empty_model() {
    let good = tiny_int();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut m = Model::EMPTY;
    let (pixels, mut out) = ([77u8; 4], [0i8; 2]);
    assert_eq!(
        m.run_u8_int8(&pixels, &mut [0u8; 64], &mut out),
        Err(Error::PathUnavailable)
    );
    m.load(&good).unwrap();
    let mut arena = vec![0u8; m.arena_len_int8()];
    m.run_u8_int8(&pixels, &mut arena, &mut out).unwrap();
    let expected = out;
    assert!(m.load(&bad).is_err());
    assert_eq!((m.op_count(), m.input_len(), m.output_len()), (0, 0, 0));
    assert_eq!(
        m.run_u8_int8(&pixels, &mut arena, &mut out),
        Err(Error::PathUnavailable)
    );
    // The same storage takes a model again, and runs it as `from_bytes` does.
    m.load(&good).unwrap();
    m.run_u8_int8(&pixels, &mut arena, &mut out).unwrap();
    assert_eq!(out, expected);
    let mut again = [0i8; 2];
    Model::from_bytes(&good)
        .unwrap()
        .run_u8_int8(&pixels, &mut arena, &mut again)
        .unwrap();
    assert_eq!(again, expected);
}
