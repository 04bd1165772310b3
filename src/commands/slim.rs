//! `.slim` files on the command line: `export`, `run`, and the `.slim` halves of `eval` and `info`.

use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use serde_json::json;
use slimnet_compress::{evaluate_slim, export, tflite, DenseEncoding, NumericPath};
use slimnet_models::data::read_idx;
use slimnet_models::Model;
use slimnet_runtime::{Activation, Encoding, Model as SlimModel, Shape, StreamCoding};
use std::path::{Path, PathBuf};

/// Whether `path` is a file the runtime runs: a `.slim` file (by its magic) or a TFLite model (by its
/// identifier), which is imported on the fly.
pub fn is_slim(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    slimnet_models::input::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| head[..4] == slimnet_runtime::format::MAGIC || tflite::is_tflite(&head))
        // Named as one, it is read as one: a damaged .slim gets the runtime's "bad magic", not a safetensors
        // parser's complaint.
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("slim") || e.eq_ignore_ascii_case("tflite"))
}

/// Reads a `.slim` file's bytes (naming the file in any error); a TFLite model is imported into `.slim` bytes
/// first. The caller validates them once, with [`parse`] or through the compressor's evaluation.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    let bytes = slimnet_models::input::read_model(path)?;
    if tflite::is_tflite(&bytes) {
        return import_bytes(path, &bytes);
    }
    Ok(bytes)
}

/// A TFLite model's `.slim` bytes, naming `path` in any error.
pub fn import_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    let file = tflite::import(bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let out = file.to_bytes()?;
    SlimModel::from_bytes(&out).map_err(|e| {
        anyhow!(
            "internal error: the imported {} does not load: {e}",
            path.display()
        )
    })?;
    Ok(out)
}

/// `slimnet import` arguments.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The model to import: a .tflite file (full-integer int8, or float32).
    pub model: PathBuf,
    /// Where to write the .slim file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `slimnet import`.
pub fn run_import(args: ImportArgs) -> Result<()> {
    super::check_output(&args.out, &[&args.model])?;
    let source = slimnet_models::input::read_model(&args.model)?;
    if !tflite::is_tflite(&source) {
        bail!(
            "{}: not a TFLite file (no TFL3 identifier)",
            args.model.display()
        );
    }
    let bytes = import_bytes(&args.model, &source)?;
    let m = SlimModel::from_bytes(&bytes).map_err(|e| anyhow!("{}: {e}", args.out.display()))?;
    slimnet_models::atomic::write_atomic(&args.out, &bytes)?;
    let path = if m.has_integer() {
        "integer-only"
    } else {
        "f32"
    };
    if args.json {
        outln!(
            "{}",
            json!({"model": args.model, "out": args.out, "tflite_bytes": source.len(), "bytes": bytes.len(),
                   "operators": m.op_count(), "tensors": m.tensor_count(), "path": path,
                   "input": m.input_shape().dims(), "output": m.output_shape().dims(),
                   "arena_bytes_f32": m.arena_len(), "arena_bytes_int8": m.arena_len_int8()})
        );
        return Ok(());
    }
    outln!(
        "{}: {} bytes ({} as .tflite), {} operators, {} path, input {} → output {}, arena {} bytes",
        args.out.display(),
        super::thousands(bytes.len()),
        super::thousands(source.len()),
        m.op_count(),
        path,
        dims(m.input_shape()),
        dims(m.output_shape()),
        super::thousands(if m.has_integer() {
            m.arena_len_int8()
        } else {
            m.arena_len()
        })
    );
    Ok(())
}

/// Validates `bytes` with the runtime, naming `path` in any error.
pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SlimModel<'a>> {
    SlimModel::from_bytes(bytes).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// `--encoding`.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum EncodingArg {
    /// Dense f32 weights (f32 path only).
    F32,
    /// Dense int8 weights per output channel, int32 biases, calibrated activations (f32 and integer paths).
    Int8,
}

/// `slimnet export` arguments.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Trained model (safetensors).
    pub model: PathBuf,
    /// Weight encoding.
    #[arg(long, value_enum, default_value_t = EncodingArg::Int8)]
    pub encoding: EncodingArg,
    /// Where to write the .slim file (atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Architecture of a file without slimnet metadata.
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    /// Dataset whose training images calibrate the int8 activation ranges (default: the bundled MNIST).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Training images used for calibration.
    #[arg(long, value_parser = crate::limits::count(crate::limits::SAMPLES), default_value_t = 2000, value_name = "N")]
    pub calibration: usize,
}

/// Runs `slimnet export`.
pub fn run_export(args: ExportArgs) -> Result<()> {
    super::check_output(&args.out, &[&args.model])?;
    let model = Model::load(&args.model, args.arch.as_deref())?;
    let data = super::load_data(args.data, true)?;
    slimnet_models::fit::check_compatible(&model, &data)?;
    let encoding = match args.encoding {
        EncodingArg::F32 => DenseEncoding::F32,
        EncodingArg::Int8 => DenseEncoding::Int8,
    };
    let file = export(&model, encoding, &data.train, args.calibration)?;
    let bytes = file.to_bytes()?;
    SlimModel::from_bytes(&bytes)
        .map_err(|e| anyhow!("internal error: the exported file does not load: {e}"))?;
    slimnet_models::atomic::write_atomic(&args.out, &bytes)?;
    outln!(
        "{}: {} bytes ({:.1}× smaller than dense f32 {})",
        args.out.display(),
        super::thousands(bytes.len()),
        model.net.dense_f32_bytes() as f64 / bytes.len() as f64,
        super::thousands(model.net.dense_f32_bytes())
    );
    Ok(())
}

/// `slimnet eval` on a `.slim` file.
pub fn eval(
    path: &Path,
    data: Option<PathBuf>,
    integer_only: bool,
    json: bool,
    predictions: Option<&Path>,
) -> Result<()> {
    let bytes = read(path)?;
    let data = super::load_data(data, json)?;
    let numeric = if integer_only {
        NumericPath::Integer
    } else {
        NumericPath::F32
    };
    let e = evaluate_slim(&bytes, &data.test, numeric)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if let Some(p) = predictions {
        super::eval::write_predictions(p, e.predictions.iter().map(|&c| u32::from(c)))?;
    }
    let path_name = if integer_only { "integer-only" } else { "f32" };
    if json {
        outln!(
            "{}",
            json!({
                "model": path,
                "path": path_name,
                "accuracy": e.accuracy,
                "error": 1.0 - e.accuracy,
                "loss": e.loss,
                "samples": e.samples,
                "bytes": bytes.len(),
                "confusion": e.confusion,
            })
        );
    } else {
        outln!(
            "{} on {} test images, {path_name} path (runtime)",
            path.display(),
            e.samples
        );
        outln!(
            "accuracy {} (error {})",
            super::pct(e.accuracy),
            super::pct(1.0 - e.accuracy)
        );
    }
    Ok(())
}

/// `slimnet info` on a `.slim` file.
pub fn info(path: &Path, json: bool) -> Result<()> {
    let bytes = read(path)?;
    let m = parse(path, &bytes)?;
    let ops: Vec<_> = (0..m.op_count()).filter_map(|i| m.operator(i)).collect();
    let act = |a: Activation| match a {
        Activation::None => "",
        Activation::Relu => " relu",
        Activation::Relu6 => " relu6",
    };
    let coding = |c: Option<StreamCoding>| match c {
        Some(StreamCoding::Packed) => "bit-packed",
        Some(StreamCoding::Huffman) => "Huffman",
        Some(StreamCoding::Zstd) => "zstd",
        None => "",
    };
    let enc = |e: Option<Encoding>, p: Option<StreamCoding>, i: Option<StreamCoding>| match e {
        Some(Encoding::DenseF32) => "dense f32".to_string(),
        Some(Encoding::DenseI8) => "dense int8".to_string(),
        Some(Encoding::Sparse) if p == i => format!("sparse shared, {}", coding(p)),
        Some(Encoding::Sparse) => format!(
            "sparse shared, {} positions, {} indices",
            coding(p),
            coding(i)
        ),
        None => String::new(),
    };
    let (d, o) = (m.input_shape(), m.output_shape());
    if json {
        let ls: Vec<_> = ops
            .iter()
            .map(|l| {
                json!({"op": l.kind.name(), "activation": act(l.activation).trim(), "input": l.input.dims(),
                       "output": l.output.dims(), "encoding": enc(l.encoding, l.position_coding, l.index_coding),
                       "weights_kept": l.weights_kept, "section_bytes": l.section_bytes})
            })
            .collect();
        outln!(
            "{}",
            json!({"model": path, "bytes": bytes.len(), "input": d.dims(), "output": o.dims(),
                   "classes": m.classes(), "f32_path": m.has_f32(), "integer_path": m.has_integer(),
                   "arena_bytes_f32": m.arena_len(), "arena_bytes_int8": m.arena_len_int8(), "operators": ls})
        );
        return Ok(());
    }
    outln!("{}", path.display());
    outln!("  file           {} bytes", super::thousands(bytes.len()));
    outln!("  input          {} → output {}", dims(d), dims(o));
    outln!(
        "  paths          {}{}",
        if m.has_f32() { "f32 " } else { "" },
        if m.has_integer() { "integer-only" } else { "" }
    );
    outln!(
        "  arena          {} bytes (f32 path), {} bytes (integer path)",
        super::thousands(m.arena_len()),
        super::thousands(m.arena_len_int8())
    );
    outln!("  operators:");
    for l in &ops {
        let w = l
            .weights_kept
            .map(|n| format!(", {} weights", super::thousands(n)))
            .unwrap_or_default();
        let bytes = if l.section_bytes > 0 {
            format!(", {} bytes", super::thousands(l.section_bytes))
        } else {
            String::new()
        };
        outln!(
            "    {:<18} {} → {}{} {}{w}{bytes}",
            l.kind.name(),
            dims(l.input),
            dims(l.output),
            act(l.activation),
            enc(l.encoding, l.position_coding, l.index_coding)
        );
    }
    Ok(())
}

/// A shape as `28×28×1`.
fn dims(s: Shape) -> String {
    let d: Vec<String> = s.dims().iter().map(|v| v.to_string()).collect();
    d.join("×")
}

/// `slimnet run` arguments.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The .slim (or .tflite) model.
    pub model: PathBuf,
    /// A batch of raw input tensors, `.npy` of shape [N, model input shape…]: int8 with --integer-only (quantized
    /// as `slimnet info` says), f32 otherwise. Needs --output.
    #[arg(long, value_name = "X.npy", conflicts_with_all = ["idx", "png"], requires = "output")]
    pub input: Option<PathBuf>,
    /// Where to write the batch of output tensors (`.npy`, int8 or f32 as the path computes them).
    #[arg(long, value_name = "Y.npy", requires = "input")]
    pub output: Option<PathBuf>,
    /// IDX image file (gzipped or raw) to take an image from.
    #[arg(long, value_name = "FILE", conflicts_with = "png", requires = "index")]
    pub idx: Option<PathBuf>,
    /// Index of the image in --idx.
    #[arg(long, value_name = "N")]
    pub index: Option<usize>,
    /// A grayscale (or RGB, averaged) PNG of the model's input size.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Use the integer-only path.
    #[arg(long)]
    pub integer_only: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn png_pixels(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| anyhow!("{}: not a readable PNG ({e})", path.display()))?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| anyhow!("{}: corrupt PNG ({e})", path.display()))?;
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let gray = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|px| {
            let n = if channels == 2 || channels == 4 {
                channels - 1
            } else {
                channels
            };
            (px[..n].iter().map(|&v| u32::from(v)).sum::<u32>() / n as u32) as u8
        })
        .collect();
    Ok((h, w, gray))
}

/// Runs `slimnet run`.
pub fn run(args: RunArgs) -> Result<()> {
    let bytes = read(&args.model)?;
    let m = parse(&args.model, &bytes)?;
    if let (Some(input), Some(output)) = (&args.input, &args.output) {
        return super::tensors::run_batch(&args.model, &m, input, output, args.integer_only);
    }
    let d = m.input_shape();
    let (dh, dw, dc) = d.hwc().ok_or_else(|| {
        anyhow!(
            "{}: the model takes {} tensors, not images",
            args.model.display(),
            dims(d)
        )
    })?;
    let (pixels, label) = match (&args.idx, &args.png) {
        (Some(idx), _) => {
            let index = args.index.ok_or_else(|| anyhow!("--idx needs --index"))?;
            let (arr, _) = read_idx(idx, None)?;
            if arr.dims.len() != 3 || arr.dims[1] * arr.dims[2] != d.len() {
                bail!(
                    "{}: images are {:?}, the model takes {}",
                    idx.display(),
                    arr.dims,
                    dims(d)
                );
            }
            if index >= arr.dims[0] {
                bail!(
                    "--index {index}: {} holds {} images",
                    idx.display(),
                    arr.dims[0]
                );
            }
            let n = d.len();
            // A label file beside it (…-images-idx3… → …-labels-idx1…) gives the true class, when present.
            let name = idx
                .file_name()
                .map(|s| s.to_string_lossy().replace("images-idx3", "labels-idx1"));
            let label = name
                .and_then(|n| read_idx(&idx.with_file_name(n), Some(1)).ok())
                .and_then(|(l, _)| l.data.get(index).copied());
            (arr.data[index * n..(index + 1) * n].to_vec(), label)
        }
        (None, Some(png)) => {
            let (h, w, px) = png_pixels(png)?;
            if (h, w) != (dh, dw) || dc != 1 {
                bail!(
                    "{}: the image is {w}×{h}, the model takes {dw}×{dh} single-channel",
                    png.display()
                );
            }
            (px, None)
        }
        (None, None) => bail!("give an image: --idx FILE --index N, or --png FILE"),
    };
    let fail = |e| anyhow!("{}: {e}", args.model.display());
    let scores: Vec<f64> = if args.integer_only {
        let mut arena = vec![0u8; m.arena_len_int8()];
        let mut out = vec![0i8; m.classes()];
        m.run_u8_int8(&pixels, &mut arena, &mut out).map_err(fail)?;
        out.iter().map(|&v| f64::from(v)).collect()
    } else {
        let mut arena = vec![0u8; m.arena_len()];
        let mut out = vec![0f32; m.classes()];
        m.run_u8(&pixels, &mut arena, &mut out).map_err(fail)?;
        out.iter().map(|&v| f64::from(v)).collect()
    };
    let class = slimnet_runtime::argmax(&scores);
    if args.json {
        outln!(
            "{}",
            json!({"class": class, "label": label, "scores": scores})
        );
    } else {
        outln!(
            "class {class}{}",
            label.map(|l| format!(" (label {l})")).unwrap_or_default()
        );
        let kind = if args.integer_only {
            "int8 logits"
        } else {
            "logits"
        };
        let s: Vec<String> = scores.iter().map(|v| format!("{v:.3}")).collect();
        outln!("{kind}: {}", s.join(" "));
    }
    Ok(())
}
