//! The ranges of the numeric flags, in one place. clap checks each value before any work starts: a value out
//! of range ends with exit status 2 and a message naming the flag and the range, as clap's own errors do. The
//! ranges are generous bounds against runaways (a typo of `--epochs 100000000`, `--threads 100000`), not
//! tuning advice; README lists them. Settings whose valid range depends on other settings or on the data (a
//! learning rate, `--val` against the training set) are checked by the libraries, also before any work, and
//! also end with status 2 (`main`).

use clap::builder::{RangedU64ValueParser, TypedValueParser};
use std::ops::RangeInclusive;

/// `--epochs` (training), `--retrain-epochs`, `--final-epochs`, `--finetune-epochs` (0 allowed there).
pub const EPOCHS: RangeInclusive<u64> = 1..=10_000;
/// Epochs of the compressor's stages, where 0 skips the stage.
pub const STAGE_EPOCHS: RangeInclusive<u64> = 0..=10_000;
/// `--batch-size`.
pub const BATCH: RangeInclusive<u64> = 1..=65_536;
/// Sample counts: `--train-limit`, `--samples`, `--flatness-samples`, `--calibration`.
pub const SAMPLES: RangeInclusive<u64> = 1..=100_000_000;
/// `--val`: validation samples (0: none).
pub const VAL: RangeInclusive<u64> = 0..=100_000_000;
/// `--prune-rounds`.
pub const ROUNDS: RangeInclusive<u64> = 1..=100;
/// `bench --runs`.
pub const RUNS: RangeInclusive<u64> = 1..=10_000_000;
/// `--repeats` (bench, sensitivity draws).
pub const REPEATS: RangeInclusive<u64> = 1..=1_000;
/// `--images` of `slimnet bench` (at most the MNIST test split).
pub const BENCH_IMAGES: RangeInclusive<u64> = 1..=10_000;
/// `--hessian-iterations`.
pub const ITERATIONS: RangeInclusive<u64> = 1..=10_000;
/// `--nodes` of distributed training (threads or MPI ranks).
pub const NODES: RangeInclusive<u64> = 1..=256;
/// `--staleness` (updates).
pub const STALENESS: RangeInclusive<u64> = 0..=100_000;
/// `experiment --neurons`.
pub const NEURONS: RangeInclusive<u64> = 1..=100_000;
/// `--zstd-level`.
pub const ZSTD_LEVEL: RangeInclusive<i64> = 1..=22;
/// `--threads`: at most this many per logical core (more only adds switching: 64 threads on 2 cores made an
/// epoch 10× slower).
pub const THREADS_PER_CORE: usize = 4;

/// A count flag's parser with its range.
pub fn count(range: RangeInclusive<u64>) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(range)
}

/// A float flag's parser: finite and in `[lo, hi]` (`open_lo`: `lo` itself excluded).
pub fn real(lo: f64, hi: f64, open_lo: bool) -> impl TypedValueParser<Value = f64> {
    move |s: &str| -> Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number"))?;
        let low_ok = if open_lo { v > lo } else { v >= lo };
        if v.is_finite() && low_ok && v <= hi {
            Ok(v)
        } else {
            let open = if open_lo { '(' } else { '[' };
            Err(format!("{v} is not in {open}{lo}, {hi}]"))
        }
    }
}

/// The most `--threads` this machine takes.
pub fn max_threads() -> usize {
    THREADS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[arg(long, value_parser = count(EPOCHS))]
        epochs: usize,
        #[arg(long, value_parser = real(0.0, 1.0, true))]
        rate: f64,
    }

    #[test]
    fn values_out_of_range_are_clap_errors_naming_the_flag_and_the_range() {
        let t = T::try_parse_from(["t", "--epochs", "3", "--rate", "0.5"]).unwrap();
        assert_eq!((t.epochs, t.rate), (3, 0.5));
        for (args, flag, range) in [
            (["--epochs", "0", "--rate", "0.5"], "--epochs", "1..=10000"),
            (["--epochs", "2", "--rate", "0"], "--rate", "(0, 1]"),
            (["--epochs", "2", "--rate", "NaN"], "--rate", "(0, 1]"),
        ] {
            let e = T::try_parse_from(std::iter::once("t").chain(args)).unwrap_err();
            let text = e.to_string();
            assert_eq!(e.exit_code(), 2);
            assert!(text.contains(flag) && text.contains(range), "{text}");
        }
    }
}
