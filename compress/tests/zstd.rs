//! The runtime's dependency-free zstd decoder against the reference library (the `zstd` crate, libzstd): every
//! kind of data at every level decodes to the original, and corrupt frames are refused without panicking.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use slimnet_runtime::zstd_decompress;

/// Data of different shapes: each exercises other parts of the format (raw and RLE blocks, Huffman literals in
/// one and four streams, FSE-coded and predefined sequence tables, repeat offsets, several blocks).
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let text: Vec<u8> =
        "the quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. "
            .bytes()
            .cycle()
            .take(50_000)
            .collect();
    let mut skewed = Vec::new();
    for _ in 0..40_000 {
        let r: f64 = rng.random();
        skewed.push((r * r * r * 40.0) as u8);
    }
    let mut mixed = Vec::new();
    for i in 0..300_000usize {
        mixed.push(if (i / 1000) % 3 == 0 {
            rng.random()
        } else {
            (i % 251) as u8
        });
    }
    let random: Vec<u8> = (0..20_000).map(|_| rng.random()).collect();
    // A bit-packed stream of 5-bit symbols, like the compressor's.
    let symbols: Vec<u32> = (0..30_000)
        .map(|_| (rng.random::<f64>().powi(2) * 32.0) as u32)
        .collect();
    let packed = slimnet_compress::huffman::pack(&symbols, 5);
    vec![
        ("empty", Vec::new()),
        ("one byte", vec![42]),
        ("zeros", vec![0; 100_000]),
        ("text", text),
        ("skewed", skewed),
        ("mixed, several blocks", mixed),
        ("random", random),
        ("bit-packed symbols", packed),
    ]
}

#[test]
fn every_level_decodes_to_the_original() {
    for (name, data) in samples() {
        for level in [1, 3, 9, 19, 22] {
            let frame = zstd::bulk::compress(&data, level).unwrap();
            let mut out = vec![0u8; data.len()];
            zstd_decompress(&frame, &mut out)
                .unwrap_or_else(|e| panic!("{name}, level {level}: {e}"));
            assert!(out == data, "{name}, level {level}: different bytes");
        }
    }
}

#[test]
fn frames_with_a_checksum_decode_and_wrong_sizes_are_refused() {
    let data: Vec<u8> = (0..5000u32).map(|i| (i * i % 97) as u8).collect();
    let mut c = zstd::bulk::Compressor::new(5).unwrap();
    c.include_checksum(true).unwrap();
    let frame = c.compress(&data).unwrap();
    let mut out = vec![0u8; data.len()];
    zstd_decompress(&frame, &mut out).unwrap();
    assert_eq!(out, data);
    let mut short = vec![0u8; data.len() - 1];
    assert!(zstd_decompress(&frame, &mut short).is_err());
    // No declared content size (streaming compression): refused, not guessed.
    let mut streamed = Vec::new();
    {
        let mut e = zstd::stream::write::Encoder::new(&mut streamed, 3).unwrap();
        e.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut e, &data).unwrap();
        e.finish().unwrap();
    }
    assert!(zstd_decompress(&streamed, &mut out).is_err());
}

#[test]
fn corrupt_frames_never_panic() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for (_, data) in samples()
        .into_iter()
        .filter(|(_, d)| !d.is_empty() && d.len() < 60_000)
    {
        let frame = zstd::bulk::compress(&data, 19).unwrap();
        let mut out = vec![0u8; data.len()];
        for _ in 0..300 {
            let mut bad = frame.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bad.len());
                bad[i] ^= 1 << rng.random_range(0..8);
            }
            let _ = zstd_decompress(&bad, &mut out);
        }
        for cut in 0..frame.len().min(200) {
            assert!(zstd_decompress(&frame[..cut], &mut out).is_err());
        }
    }
}
