//! `slimnet info`.

use anyhow::Result;
use serde_json::{json, Value};
use slimnet_models::Model;
use std::path::PathBuf;

/// `slimnet info` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model file (safetensors or .slim).
    pub model: PathBuf,
    /// Architecture of a file without slimnet metadata.
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Metadata values are JSON where they parse as JSON, text otherwise.
fn metadata_json(model: &Model) -> Value {
    let mut keys: Vec<_> = model
        .metadata
        .keys()
        .filter(|k| *k != "slimnet.net")
        .collect();
    keys.sort();
    let map = keys
        .into_iter()
        .map(|k| {
            let v = &model.metadata[k];
            (
                k.clone(),
                serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone())),
            )
        })
        .collect();
    Value::Object(map)
}

/// Runs `slimnet info`.
pub fn run(args: Args) -> Result<()> {
    if super::slim::is_slim(&args.model) {
        return super::slim::info(&args.model, args.json);
    }
    let model = Model::load(&args.model, args.arch.as_deref())?;
    let net = &model.net;
    let bytes = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    if args.json {
        let tensors: Vec<Value> = net
            .tensors()
            .iter()
            .map(|t| json!({"name": t.name, "shape": t.shape}))
            .collect();
        outln!(
            "{}",
            json!({
                "model": args.model,
                "arch": net.arch,
                "input": net.input,
                "classes": net.classes,
                "layers": net.layers,
                "tensors": tensors,
                "parameters": net.parameter_count(),
                "dense_f32_bytes": net.dense_f32_bytes(),
                "file_bytes": bytes,
                "normalization": model.normalization,
                "metadata": metadata_json(&model),
            })
        );
        return Ok(());
    }
    outln!("{}", args.model.display());
    outln!("  architecture   {}", net.arch);
    outln!(
        "  input          {} (normalized: mean {}, std {})",
        net.input,
        model.normalization.mean,
        model.normalization.std
    );
    outln!("  classes        {}", net.classes);
    outln!("  layers         {}", net.describe());
    outln!(
        "  parameters     {}",
        super::thousands(net.parameter_count())
    );
    outln!(
        "  dense f32      {} bytes",
        super::thousands(net.dense_f32_bytes())
    );
    outln!(
        "  file           {} bytes",
        super::thousands(bytes as usize)
    );
    outln!("  tensors:");
    for t in net.tensors() {
        outln!("    {:<24} {:?}", t.name, t.shape);
    }
    let meta = metadata_json(&model);
    if let Value::Object(map) = meta {
        if !map.is_empty() {
            outln!("  metadata:");
            for (k, v) in map {
                outln!("    {k}: {v}");
            }
        }
    }
    Ok(())
}
