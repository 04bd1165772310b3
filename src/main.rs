//! `slimnet`: train, evaluate and inspect small networks (and, as the project grows, compress and deploy them).
//!
//! The CLI is thin: it parses arguments, calls one library function, and prints. Errors are reported as one
//! line naming the file or flag at fault, with a non-zero exit status.

/// `println!` that never panics: see [`output`].
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics: see [`output`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

mod commands;
mod experiment;
mod limits;
mod output;
mod plot;
mod progress;
mod report;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Training allocates and frees tensors of hundreds of kilobytes every step. glibc's allocator hands such
/// blocks back to the kernel each time, so every step paid for fresh zeroed pages (measured: a quarter of a
/// LeNet-5 epoch in page faults); mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Train, compress and deploy small neural networks.
#[derive(Parser)]
#[command(name = "slimnet", version, about, propagate_version = true)]
struct Cli {
    /// Worker threads for the tensor kernels, 1 to 4 per logical core (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a full-precision network on MNIST-format data and save it as safetensors.
    Train(commands::train::Args),
    /// Measure a model's accuracy on the test set (a .slim file is run by the runtime itself).
    Eval(commands::eval::Args),
    /// Describe a model file: architecture, parameters, sizes, metadata (.slim: layers, encodings, arena).
    Info(commands::info::Args),
    /// Write a trained model as a .slim file for the runtime (dense f32 or int8 with calibrated activations).
    Export(commands::slim::ExportArgs),
    /// Run a .slim (or .tflite) model: classify one image of an IDX file or a PNG, or run a batch of raw
    /// tensors from an .npy file into another.
    Run(commands::slim::RunArgs),
    /// Import a TFLite model (full-integer int8 or float32) as a .slim file that runs it exactly.
    Import(commands::slim::ImportArgs),
    /// Batch-1 latency of a .slim model in the runtime (one thread, median of many calls).
    Bench(commands::bench::Args),
    /// Compress a trained model: pruning with retraining, weight sharing, 8-bit quantization, entropy coding →
    /// one .slim file, with size and accuracy at every stage.
    Compress(commands::compress::Args),
    /// The main job with sensible defaults: train LeNet-300-100 on the bundled MNIST (or take --model-file),
    /// compress it with the default preset, and print the accuracy-versus-size table of every stage.
    Pipeline(commands::pipeline::Args),
    /// How robust a model is to weight perturbations, layer by layer: noise, pruning, quantization, weight
    /// sharing, bit flips in the .slim file, flatness (ε-sharpness, top Hessian eigenvalue).
    Sensitivity(commands::sensitivity::Args),
    /// Accuracy against model size: the Pareto front of compression reports (and of a sweep run here) beside the
    /// peers' results, as markdown, JSON and a chart.
    Report(commands::report::Args),
    /// Run one of the course experiments (optimizers, depth, master-worker, decentralized, sparsity,
    /// smoothness, or all): a markdown report with tables and charts in --out.
    Experiment(commands::experiment::Args),
}

fn main() -> ExitCode {
    // Last line of defence: a bug must still end with one readable line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        // `slimnet info m.slim | head`: the reader went away. Stop quietly, as a program killed by SIGPIPE does.
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        eprintln!("error: internal error ({msg}); please report it");
    }));
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        let max = limits::max_threads();
        if !(1..=max).contains(&n) {
            use clap::CommandFactory;
            Cli::command()
                .error(
                    clap::error::ErrorKind::ValueValidation,
                    format!(
                        "invalid value '{n}' for '--threads <N>': {n} is not in 1..={max} ({} per logical core)",
                        limits::THREADS_PER_CORE
                    ),
                )
                .exit();
        }
    }
    // candle sizes its thread pools from RAYON_NUM_THREADS, and without it re-reads /proc/cpuinfo on every
    // matrix product (measured: 5 % of a LeNet-5 epoch) and counts physical cores only, which is 1 on a
    // 2-vCPU machine. So it is always set, before the first tensor operation: --threads, an explicit
    // RAYON_NUM_THREADS, or every logical core.
    let threads = cli
        .threads
        .or_else(|| std::env::var("RAYON_NUM_THREADS").ok()?.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    // The worker pool is started here, not lazily inside the first tensor operation, so that a failure to
    // start threads (a process limit) is one error line instead of a panic deep in a kernel.
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        eprintln!("error: cannot start {threads} worker threads (--threads): {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Train(a) => commands::train::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Info(a) => commands::info::run(a),
        Command::Export(a) => commands::slim::run_export(a),
        Command::Run(a) => commands::slim::run(a),
        Command::Import(a) => commands::slim::run_import(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Pipeline(a) => commands::pipeline::run(a),
        Command::Compress(a) => commands::compress::run(a),
        Command::Sensitivity(a) => commands::sensitivity::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Experiment(a) => commands::experiment::run(a),
    };
    let result = result.and_then(|()| {
        output::finish().map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                // `slimnet info m.slim | head`: the reader went away; stop quietly, as SIGPIPE would.
                std::process::exit(141);
            }
            anyhow::anyhow!("writing to standard output: {e}")
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if commands::is_usage(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the message already contains (the library
/// errors already print their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    /// clap checks flag names, defaults and conflicts of every subcommand here (a clash between a flattened
    /// group's flags, say two `--seed`, would otherwise only show when that subcommand runs in a debug build).
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
