//! `slimnet bench`: batch-1 latency of a `.slim` file in the runtime, one thread, as users of LiteRT's
//! `benchmark_model` would measure it. The median of many calls is reported for each path, and for a file with
//! sparse operators also for the integer path prepared (`Model::prepare_int8`). The calls cycle through the first
//! `--images` test images: some kernels' cost depends on the input (the prepared FULLY_CONNECTED of AVX-512 VNNI
//! hosts skips inputs at their zero point, as a digit's background is), so one image would say little; `--noise`
//! times random pixels instead, the worst case of such kernels.

use anyhow::Result;
use serde_json::json;
use slimnet_runtime::Model;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

/// `slimnet bench` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The .slim model.
    pub model: PathBuf,
    /// Timed calls per repeat.
    #[arg(long, value_parser = crate::limits::count(crate::limits::RUNS), default_value_t = 2000, value_name = "N")]
    pub runs: usize,
    /// Repeats: the reported figure is the median of the repeats' medians.
    #[arg(long, value_parser = crate::limits::count(crate::limits::REPEATS), default_value_t = 5, value_name = "N")]
    pub repeats: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Decode Huffman-coded sparse streams into the arena before each layer instead of on the fly.
    #[arg(long)]
    pub decode_into_arena: bool,
    /// Test images the calls cycle through (call k runs image k mod N).
    #[arg(long, value_parser = crate::limits::count(crate::limits::BENCH_IMAGES), default_value_t = 100, value_name = "N")]
    pub images: usize,
    /// Time pseudo-random pixels (no background) instead of test images: the worst case of kernels that skip
    /// inputs at their zero point.
    #[arg(long)]
    pub noise: bool,
}

/// The inputs the calls cycle through: `--images` test images, or as many images of pseudo-random pixels.
fn inputs(args: &Args) -> Result<Vec<Vec<u8>>> {
    let data = super::load_data(None, true)?;
    let n = args.images.min(data.test.count).max(1);
    if !args.noise {
        return Ok((0..n).map(|i| data.test.image(i).to_vec()).collect());
    }
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 32) as u8
    };
    let len = data.test.image_len();
    Ok((0..n).map(|_| (0..len).map(|_| next()).collect()).collect())
}

/// Calls `f` on the next of `images` at each call.
fn cycling<'i, F: FnMut(&'i [u8]) + 'i>(images: &'i [Vec<u8>], mut f: F) -> impl FnMut() + 'i {
    let mut k = 0;
    move || {
        f(&images[k % images.len()]);
        k += 1;
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Median µs per call of `f` over `runs` calls, median over `repeats`.
fn time(runs: usize, repeats: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..runs.min(200) {
        f();
    }
    let mut medians: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let mut t: Vec<f64> = (0..runs.max(1))
                .map(|_| {
                    let s = Instant::now();
                    f();
                    s.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            median(&mut t)
        })
        .collect();
    median(&mut medians)
}

/// Runs `slimnet bench`.
pub fn run(args: Args) -> Result<()> {
    let bytes = super::slim::read(&args.model)?;
    let mut m = super::slim::parse(&args.model, &bytes)?;
    if args.decode_into_arena {
        m.set_stream_decoding(slimnet_runtime::StreamDecoding::Arena);
    }
    let images = inputs(&args)?;
    let mut results = Vec::new();
    let load_us = time(args.runs.min(200), args.repeats, || {
        black_box(Model::from_bytes(black_box(&bytes)).ok());
    });
    if m.has_f32() {
        let mut arena = vec![0u8; m.arena_len()];
        let mut out = vec![0f32; m.classes()];
        let us = time(
            args.runs,
            args.repeats,
            cycling(&images, |image| {
                let _ = m.run_u8(black_box(image), &mut arena, &mut out);
                black_box(&out);
            }),
        );
        results.push(("f32", us, m.arena_len(), 0));
    }
    if m.has_integer() {
        let mut arena = vec![0u8; m.arena_len_int8()];
        let mut out = vec![0i8; m.classes()];
        let us = time(
            args.runs,
            args.repeats,
            cycling(&images, |image| {
                let _ = m.run_u8_int8(black_box(image), &mut arena, &mut out);
                black_box(&out);
            }),
        );
        results.push(("integer-only", us, m.arena_len_int8(), 0));
    }
    let prepared_len = if m.has_integer() {
        m.prepared_len_int8()
    } else {
        0
    };
    if prepared_len > 0 {
        let mut memory = vec![0u8; prepared_len];
        let mut p = super::slim::parse(&args.model, &bytes)?;
        p.prepare_int8(&mut memory)
            .map_err(|e| anyhow::anyhow!("{}: preparing: {e}", args.model.display()))?;
        let mut arena = vec![0u8; p.arena_len_int8()];
        let mut out = vec![0i8; p.classes()];
        let us = time(
            args.runs,
            args.repeats,
            cycling(&images, |image| {
                let _ = p.run_u8_int8(black_box(image), &mut arena, &mut out);
                black_box(&out);
            }),
        );
        results.push((
            "integer-only prepared",
            us,
            p.arena_len_int8(),
            prepared_len,
        ));
    }
    if args.json {
        let paths: Vec<_> = results
            .iter()
            .map(|(p, us, a, n)| {
                json!({"path": p, "latency_us": us, "arena_bytes": a, "prepared_bytes": n})
            })
            .collect();
        outln!(
            "{}",
            json!({"model": args.model, "bytes": bytes.len(), "load_us": load_us, "paths": paths})
        );
    } else {
        outln!(
            "{} ({} bytes): from_bytes {load_us:.1} µs",
            args.model.display(),
            super::thousands(bytes.len())
        );
        for (p, us, a, n) in results {
            let prepared = if n > 0 {
                format!(", prepared {} bytes", super::thousands(n))
            } else {
                String::new()
            };
            outln!(
                "  {p:<22} {us:>9.2} µs per image (median), arena {} bytes{prepared}",
                super::thousands(a)
            );
        }
    }
    Ok(())
}
