//! `slimnet sensitivity`: how robust a model is to weight perturbations, layer by layer.

use anyhow::{bail, Context, Result};
use slimnet_compress::sensitivity::{
    self, analyze, check_rate, check_sigma, check_sparsity, parse_analyses, parse_list, Analysis,
    Sensitivity, Settings,
};
use slimnet_models::fit::check_compatible;
use slimnet_models::Model;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `slimnet sensitivity` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The trained model (safetensors), or a .slim file (bit flips only).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// A .slim file of the model for the bit-flip analysis (adds `bitflip` to the default analyses).
    #[arg(long, value_name = "FILE")]
    pub slim: Option<PathBuf>,
    /// Analyses, comma-separated: noise, prune, quantize, cluster, bitflip, flatness, or all. Default: all that
    /// the given files allow.
    #[arg(long, value_name = "LIST")]
    pub analyses: Option<String>,
    /// Relative noise levels σ (additive: × each layer's weight standard deviation; multiplicative: relative).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "0.05,0.1,0.2,0.35,0.5,0.75,1"
    )]
    pub sigmas: String,
    /// Pruning sparsities (fraction of each layer's smallest weights zeroed, no retraining).
    #[arg(
        long,
        value_name = "LIST",
        default_value = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95"
    )]
    pub sparsities: String,
    /// Bit widths of uniform quantization (2..8).
    #[arg(long, value_name = "LIST", default_value = "2,3,4,5,6,7,8")]
    pub quantize_bits: String,
    /// Bit widths of k-means weight sharing (1..8: 2^bits shared values).
    #[arg(long, value_name = "LIST", default_value = "1,2,3,4,5,6,7,8")]
    pub cluster_bits: String,
    /// Bit-error rates for bit flips in the .slim file's stored weights.
    #[arg(long, value_name = "LIST", default_value = "1e-6,1e-5,1e-4,1e-3,1e-2")]
    pub rates: String,
    /// Random draws per point of the noise and bit-flip curves.
    #[arg(long, value_parser = crate::limits::count(crate::limits::REPEATS), default_value_t = 3, value_name = "N")]
    pub repeats: usize,
    /// Test images the curves are measured on (default: all).
    #[arg(long, value_parser = crate::limits::count(crate::limits::SAMPLES), value_name = "N")]
    pub samples: Option<usize>,
    /// Training images the flatness measures use.
    #[arg(long, value_parser = crate::limits::count(crate::limits::SAMPLES), default_value_t = 2000, value_name = "N")]
    pub flatness_samples: usize,
    /// ε of the ε-sharpness box, |δ| ≤ ε·(|w| + 1).
    #[arg(long, default_value_t = 1e-3, value_name = "EPS")]
    pub epsilon: f64,
    /// Most power iterations for the top Hessian eigenvalue.
    #[arg(long, value_parser = crate::limits::count(crate::limits::ITERATIONS), default_value_t = 20, value_name = "N")]
    pub hessian_iterations: usize,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// Architecture of a model file without slimnet metadata.
    #[arg(long, value_name = "SPEC")]
    pub arch: Option<String>,
    /// Dataset directory (default: the bundled MNIST).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write every point as CSV to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write one chart per analysis (SVG and PNG) into this directory.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

fn bits_list(text: &str, flag: &'static str, lo: u32, hi: u32) -> Result<Vec<u32>> {
    let values = parse_list(text, flag, |v| {
        if v.fract() == 0.0 && v >= f64::from(lo) && v <= f64::from(hi) {
            Ok(())
        } else {
            Err(format!("a bit width must be a whole number in {lo}..{hi}"))
        }
    })?;
    Ok(values.into_iter().map(|v| v as u32).collect())
}

impl Args {
    /// The settings these arguments ask for; `slim_only`: MODEL is a .slim file.
    fn settings(&self, slim_only: bool) -> Result<Settings> {
        let analyses = match &self.analyses {
            Some(list) => parse_analyses(list)?,
            None if slim_only => vec![Analysis::BitFlip],
            None => {
                let mut a = Settings::default().analyses;
                if self.slim.is_some() {
                    a.insert(4, Analysis::BitFlip);
                }
                a
            }
        };
        if slim_only {
            if let Some(a) = analyses.iter().find(|a| a.needs_float_model()) {
                bail!(
                    "{}: the {a} analysis needs a safetensors model, and this is a .slim file (give the \
                     safetensors model, and the .slim file with --slim)",
                    self.model.display()
                );
            }
        } else if analyses.contains(&Analysis::BitFlip) && self.slim.is_none() {
            bail!("the bitflip analysis runs a .slim file: give it with --slim FILE");
        }
        let s = Settings {
            analyses,
            sigmas: parse_list(&self.sigmas, "--sigmas", check_sigma)?,
            sparsities: parse_list(&self.sparsities, "--sparsities", check_sparsity)?,
            quantize_bits: bits_list(&self.quantize_bits, "--quantize-bits", 2, 8)?,
            cluster_bits: bits_list(&self.cluster_bits, "--cluster-bits", 1, 8)?,
            rates: parse_list(&self.rates, "--rates", check_rate)?,
            repeats: self.repeats,
            samples: self.samples,
            flatness_samples: self.flatness_samples,
            epsilon: self.epsilon,
            hessian_iterations: self.hessian_iterations,
            seed: self.seed,
        };
        s.validate()?;
        Ok(s)
    }
}

/// Runs `slimnet sensitivity`.
pub fn run(args: Args) -> Result<()> {
    let slim_only = super::slim::is_slim(&args.model);
    let settings = args.settings(slim_only)?;
    let mut plots = args
        .plots
        .as_deref()
        .map(super::OutDir::check)
        .transpose()?;
    for out in args.csv.iter() {
        let inputs: Vec<&std::path::Path> = [Some(&args.model), args.slim.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
            .collect();
        super::check_output(out, &inputs)?;
    }
    let model = if slim_only {
        None
    } else {
        Some(Model::load(&args.model, args.arch.as_deref())?)
    };
    let slim_path = if slim_only {
        Some(args.model.clone())
    } else {
        args.slim.clone()
    };
    let slim = slim_path
        .as_ref()
        .map(|p| slimnet_models::input::read_model(p))
        .transpose()?;
    let data = super::load_data(args.data.clone(), args.quiet || args.json)?;
    if let Some(m) = &model {
        check_compatible(m, &data)?;
    }
    let quiet = args.quiet || args.json;
    let mut progress = |what: &str| {
        if !quiet {
            eprintln!("sensitivity: {what}");
        }
    };
    let report = analyze(
        model.as_ref(),
        slim.as_deref(),
        &data.test,
        &data.train,
        &settings,
        &mut progress,
    )
    .with_context(|| match &slim_path {
        Some(p) if slim_only => p.display().to_string(),
        _ => args.model.display().to_string(),
    })?;
    if let Some(path) = &args.csv {
        slimnet_models::atomic::write_atomic(path, csv(&report).as_bytes())?;
    }
    if let Some(dir) = plots.as_mut() {
        for stem in plot(&report, dir.create()?)? {
            if !quiet {
                eprintln!("wrote {}.svg and .png", stem.display());
            }
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", tables(&report));
    }
    Ok(())
}

/// A curve's x value as the tables and CSV print it.
fn x_text(analysis: &str, x: f64) -> String {
    match analysis {
        "bitflip" => format!("{x:e}"),
        "quantize" | "cluster" => format!("{x}"),
        "prune" => format!("{:.0} %", 100.0 * x),
        _ => format!("{x}"),
    }
}

/// The readable tables: one per analysis, targets as rows, strengths as columns.
pub fn tables(r: &Sensitivity) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} on {} test images: accuracy {:.2} %, loss {:.4}; {:.1} s\n",
        r.model,
        r.samples,
        100.0 * r.accuracy,
        r.loss,
        r.seconds
    );
    let mut groups: BTreeMap<usize, (&str, Vec<&sensitivity::Curve>)> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for c in &r.curves {
        let i = order
            .iter()
            .position(|a| *a == c.analysis)
            .unwrap_or_else(|| {
                order.push(&c.analysis);
                order.len() - 1
            });
        groups
            .entry(i)
            .or_insert((&c.analysis, Vec::new()))
            .1
            .push(c);
    }
    for (name, curves) in groups.values() {
        let Some(first) = curves.first() else {
            continue;
        };
        let _ = writeln!(
            out,
            "{name}: test accuracy (%) by {}{}",
            first.parameter,
            if name.starts_with("noise") || *name == "bitflip" {
                format!(
                    ", mean ± std over {} draws",
                    first.points.first().map_or(0, |p| p.draws)
                )
            } else {
                String::new()
            }
        );
        let _ = write!(out, "| target |");
        for p in &first.points {
            let _ = write!(out, " {} |", x_text(name, p.x));
        }
        let _ = write!(out, "\n| --- |");
        for _ in &first.points {
            let _ = write!(out, " ---: |");
        }
        out.push('\n');
        for c in curves {
            let _ = write!(out, "| {} |", c.target);
            for p in &c.points {
                let _ = write!(out, " {} |", cell(p));
            }
            out.push('\n');
        }
        if *name == "bitflip" {
            let _ = writeln!(out, "{}", after_load(curves));
        }
        out.push('\n');
    }
    if !r.flatness.is_empty() {
        let _ = writeln!(
            out,
            "flatness on {} training images: ε-sharpness (ε = {}, %) and top Hessian eigenvalue",
            r.settings.flatness_samples, r.settings.epsilon
        );
        let _ = writeln!(
            out,
            "| target | ε-sharpness | top eigenvalue | power iterations |"
        );
        let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
        for f in &r.flatness {
            let _ = writeln!(
                out,
                "| {} | {:.4} | {:.3} | {} |",
                f.target, f.sharpness, f.top_eigenvalue, f.iterations
            );
        }
    }
    out
}

/// One point's table cell: accuracy in %, its spread over the draws, and the share the runtime refused.
fn cell(p: &sensitivity::Point) -> String {
    let (mean, std) = (100.0 * p.accuracy.mean, 100.0 * p.accuracy.std);
    match p.refused {
        Some(f) if f >= 1.0 => "refused".to_string(),
        Some(f) if f > 0.0 => format!("{mean:.2} ±{std:.2} ({:.0} % refused)", 100.0 * f),
        _ if p.draws > 1 => format!("{mean:.2} ±{std:.2}"),
        _ => format!("{mean:.2}"),
    }
}

/// The after-load case of the bit-flip curves: how many of the damaged draws `Model::verify` caught.
fn after_load(curves: &[&sensitivity::Curve]) -> String {
    let (mut faulty, mut detected) = (0.0, 0.0);
    for p in curves.iter().flat_map(|c| &c.points) {
        let n = p.faulty.unwrap_or(0) as f64;
        faulty += n;
        detected += n * p.detected.unwrap_or(0.0);
    }
    let share = if faulty > 0.0 {
        format!("{:.1} %", 100.0 * detected / faulty)
    } else {
        "no draw flipped a bit".into()
    };
    format!(
        "after load (the same flips in the loaded model's bytes): `verify` detected {detected:.0} of {faulty:.0} \
         damaged draws ({share})"
    )
}

/// Every point, one per line.
pub fn csv(r: &Sensitivity) -> String {
    let mut out = String::from(
        "analysis,target,parameter,x,accuracy_mean,accuracy_std,loss_mean,loss_std,draws,refused,faulty,detected\n",
    );
    for c in &r.curves {
        for p in &c.points {
            let _ = writeln!(
                out,
                "{},{},\"{}\",{},{},{},{},{},{},{},{},{}",
                c.analysis,
                c.target,
                c.parameter,
                p.x,
                p.accuracy.mean,
                p.accuracy.std,
                p.loss.mean,
                p.loss.std,
                p.draws,
                p.refused.map(|f| f.to_string()).unwrap_or_default(),
                p.faulty.map(|f| f.to_string()).unwrap_or_default(),
                p.detected.map(|f| f.to_string()).unwrap_or_default()
            );
        }
    }
    for f in &r.flatness {
        let _ = writeln!(
            out,
            "sharpness,{},\"epsilon\",{},{},,,,,,,\neigenvalue,{},\"power iterations\",{},{},,,,,,,",
            f.target, r.settings.epsilon, f.sharpness, f.target, f.iterations, f.top_eigenvalue
        );
    }
    out
}

/// One chart per analysis in `dir`; returns the file stems written.
pub fn plot(r: &Sensitivity, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names: Vec<&str> = Vec::new();
    for c in &r.curves {
        if !names.contains(&c.analysis.as_str()) {
            names.push(&c.analysis);
        }
    }
    let mut stems = Vec::new();
    for name in names {
        let curves: Vec<_> = r.curves.iter().filter(|c| c.analysis == name).collect();
        let chart = crate::plot::Chart {
            title: format!("{}: {name}", r.model),
            x_label: curves
                .first()
                .map_or(String::new(), |c| c.parameter.clone()),
            y_label: "test accuracy (%)".into(),
            log_x: name.starts_with("noise") || name == "bitflip",
            series: curves
                .iter()
                .map(|c| crate::plot::Series {
                    label: c.target.clone(),
                    points: c
                        .points
                        .iter()
                        .filter(|p| p.refused.is_none_or(|f| f < 1.0))
                        .map(|p| {
                            let x = if name == "prune" { 100.0 * p.x } else { p.x };
                            (x, 100.0 * p.accuracy.mean, 100.0 * p.accuracy.std)
                        })
                        .collect(),
                    markers_only: false,
                })
                .collect(),
        };
        let chart = if name == "prune" {
            crate::plot::Chart {
                x_label: "sparsity (%)".into(),
                ..chart
            }
        } else {
            chart
        };
        let stem = dir.join(format!("sensitivity-{name}"));
        crate::plot::write(&chart, &stem)?;
        stems.push(stem);
    }
    Ok(stems)
}
