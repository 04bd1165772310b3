//! Accuracy against model size: points from compression reports (the float baseline, every stage, the final
//! file) and from the peers' results files, their Pareto front, and the report as markdown, JSON and a chart.

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// One model version: its size and accuracy.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Who made it: `slimnet`, a peer's name, or `baseline`.
    pub source: String,
    /// Which version (a stage, a run, a peer's variant).
    pub label: String,
    /// Bytes: of the file, or accounted (stages before the file exists).
    pub bytes: u64,
    /// `file` or `accounted`.
    pub bytes_kind: String,
    /// Test accuracy (0..1).
    pub accuracy: f64,
    /// Integer-only accuracy, when measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy_integer_only: Option<f64>,
    /// On the Pareto front of all entries (no other is both smaller and at least as accurate).
    pub pareto: bool,
}

/// The report of one model.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracySize {
    /// The model (architecture) name.
    pub model: String,
    /// Test images the accuracies were measured on (slimnet's; the peers' use the same MNIST test set).
    pub test_samples: Option<u64>,
    /// Every entry, smallest first.
    pub entries: Vec<Entry>,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key)?.as_f64()
}

/// Entries of a `slimnet compress` report (JSON): the float baseline once, each stage, labelled by `run`.
pub fn from_compress_report(run: &str, r: &Value) -> Result<Vec<Entry>> {
    let bad = || {
        anyhow::anyhow!("{run}: not a slimnet compression report (no bytes / accuracy / stages)")
    };
    let mut out = Vec::new();
    let dense = num(r, "dense_f32_bytes").ok_or_else(bad)?;
    let baseline = num(r, "baseline_accuracy").ok_or_else(bad)?;
    out.push(Entry {
        source: "baseline".into(),
        label: "float32, dense".into(),
        bytes: dense as u64,
        bytes_kind: "accounted".into(),
        accuracy: baseline,
        accuracy_integer_only: None,
        pareto: false,
    });
    let stages = r.get("stages").and_then(Value::as_array).ok_or_else(bad)?;
    for s in stages {
        let name = s.get("name").and_then(Value::as_str).unwrap_or("?");
        if name == "float32" {
            continue;
        }
        out.push(Entry {
            source: "slimnet".into(),
            label: format!("{run}: {name}"),
            bytes: num(s, "bytes").ok_or_else(bad)? as u64,
            bytes_kind: s
                .get("bytes_kind")
                .and_then(Value::as_str)
                .unwrap_or("file")
                .to_string(),
            accuracy: num(s, "accuracy").ok_or_else(bad)?,
            accuracy_integer_only: num(s, "accuracy_integer_only"),
            pareto: false,
        });
    }
    Ok(out)
}

/// Entries of a peer's results file for `model`: every object under that model's entry holding an accuracy and
/// a size (`bytes` or `file_bytes`; also their `gzip9_bytes` / `zstd19_bytes`, the file as compressed on disk).
pub fn from_peer_results(peer: &str, v: &Value, model: &str) -> Vec<Entry> {
    fn walk(
        v: &Value,
        path: &mut Vec<String>,
        in_model: bool,
        model: &str,
        peer: &str,
        out: &mut Vec<Entry>,
    ) {
        match v {
            Value::Object(map) => {
                let here = in_model || map.get("model").and_then(Value::as_str) == Some(model);
                if here {
                    if let Some(acc) = map.get("accuracy").and_then(Value::as_f64) {
                        let label = path.join(".");
                        for (key, suffix) in [
                            ("bytes", ""),
                            ("file_bytes", ""),
                            ("gzip9_bytes", " + gzip -9"),
                            ("zstd19_bytes", " + zstd -19"),
                        ] {
                            if let Some(b) = map.get(key).and_then(Value::as_f64) {
                                out.push(Entry {
                                    source: peer.to_string(),
                                    label: format!("{label}{suffix}"),
                                    bytes: b as u64,
                                    bytes_kind: "file".into(),
                                    accuracy: acc,
                                    accuracy_integer_only: None,
                                    pareto: false,
                                });
                            }
                        }
                    }
                }
                // Labels start inside the model's own entry.
                let mut fresh = Vec::new();
                let path = if here && !in_model { &mut fresh } else { path };
                for (k, child) in map {
                    if k == "model" || k == "latency" || k.starts_with("latency_") {
                        continue;
                    }
                    path.push(k.clone());
                    walk(child, path, here, model, peer, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, path, in_model, model, peer, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), false, model, peer, &mut out);
    out
}

/// A peer's name from its results path: the folder under `peers/`, else the file's folder.
pub fn peer_name(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(i) = parts.iter().position(|p| p == "peers") {
        if let Some(name) = parts.get(i + 1) {
            return name.clone();
        }
    }
    path.parent()
        .and_then(|p| p.file_name())
        .map_or("peer".into(), |n| n.to_string_lossy().into_owned())
}

impl AccuracySize {
    /// Sorts the entries by size and marks the Pareto front: an entry is on it unless another is at most as
    /// large and more accurate, or smaller and at least as accurate.
    pub fn new(model: &str, test_samples: Option<u64>, mut entries: Vec<Entry>) -> AccuracySize {
        entries.sort_by(|a, b| {
            a.bytes
                .cmp(&b.bytes)
                .then(b.accuracy.total_cmp(&a.accuracy))
        });
        let dominated: Vec<bool> = entries
            .iter()
            .map(|e| {
                entries.iter().any(|o| {
                    (o.bytes <= e.bytes && o.accuracy > e.accuracy)
                        || (o.bytes < e.bytes && o.accuracy >= e.accuracy)
                })
            })
            .collect();
        for (e, d) in entries.iter_mut().zip(dominated) {
            e.pareto = !d;
        }
        AccuracySize {
            model: model.to_string(),
            test_samples,
            entries,
        }
    }

    /// The markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}: accuracy against size\n", self.model);
        if let Some(n) = self.test_samples {
            let _ = writeln!(out, "Test accuracy on {n} images. ★: on the Pareto front (nothing else is both smaller and at least as accurate).\n");
        }
        let _ = writeln!(
            out,
            "| | source | version | bytes | error | accuracy | integer-only |"
        );
        let _ = writeln!(out, "| --- | --- | --- | ---: | ---: | ---: | ---: |");
        for e in &self.entries {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {}{} | {:.2} % | {:.2} % | {} |",
                if e.pareto { "★" } else { "" },
                e.source,
                e.label,
                e.bytes,
                if e.bytes_kind == "file" {
                    ""
                } else {
                    " (accounted)"
                },
                100.0 * (1.0 - e.accuracy),
                100.0 * e.accuracy,
                e.accuracy_integer_only
                    .map_or("—".into(), |a| format!("{:.2} %", 100.0 * a))
            );
        }
        out
    }

    /// Writes `stem.md`, `stem.json`, `stem.svg` and `stem.png`.
    pub fn write(&self, stem: &Path) -> Result<()> {
        let md = stem.with_extension("md");
        slimnet_models::atomic::write_atomic(&md, self.markdown().as_bytes())
            .with_context(|| md.display().to_string())?;
        let json = stem.with_extension("json");
        slimnet_models::atomic::write_atomic(&json, serde_json::to_string_pretty(self)?.as_bytes())
            .with_context(|| json.display().to_string())?;
        let mut sources: Vec<&str> = Vec::new();
        for e in &self.entries {
            if !sources.contains(&e.source.as_str()) {
                sources.push(&e.source);
            }
        }
        let point = |e: &Entry| (e.bytes as f64, 100.0 * (1.0 - e.accuracy), 0.0);
        let mut series: Vec<crate::plot::Series> = sources
            .iter()
            .map(|s| crate::plot::Series {
                label: s.to_string(),
                points: self
                    .entries
                    .iter()
                    .filter(|e| e.source == *s)
                    .map(point)
                    .collect(),
                markers_only: true,
            })
            .collect();
        series.push(crate::plot::Series {
            label: "Pareto front".into(),
            points: self
                .entries
                .iter()
                .filter(|e| e.pareto)
                .map(point)
                .collect(),
            markers_only: false,
        });
        let chart = crate::plot::Chart {
            title: format!("{}: test error against size", self.model),
            x_label: "bytes (log scale)".into(),
            y_label: "test error (%)".into(),
            log_x: true,
            series,
        };
        crate::plot::write(&chart, stem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(bytes: u64, accuracy: f64) -> Entry {
        Entry {
            source: "s".into(),
            label: format!("{bytes}"),
            bytes,
            bytes_kind: "file".into(),
            accuracy,
            accuracy_integer_only: None,
            pareto: false,
        }
    }

    #[test]
    fn the_pareto_front_keeps_what_nothing_beats() {
        let r = AccuracySize::new(
            "m",
            None,
            vec![
                entry(100, 0.90),
                entry(50, 0.95),
                entry(200, 0.99),
                entry(60, 0.94),
                entry(50, 0.80),
            ],
        );
        let front: Vec<u64> = r
            .entries
            .iter()
            .filter(|e| e.pareto)
            .map(|e| e.bytes)
            .collect();
        assert_eq!(front, vec![50, 200]);
        assert!(r.markdown().contains("| ★ | s | 50 |"));
    }

    #[test]
    fn peer_results_give_every_sized_accurate_version_of_the_model() {
        let v = json!({"models": [
            {"model": "other", "x": {"bytes": 1, "accuracy": 0.5}},
            {"model": "lenet-300-100", "tflite": {"int8": {"bytes": 280, "zstd19_bytes": 40, "accuracy": 0.98,
              "latency": {"bytes": 9, "accuracy": 0.1}}}, "pq": {"file_bytes": 28, "accuracy": 0.983}}
        ]});
        let e = from_peer_results("tf", &v, "lenet-300-100");
        let mut got: Vec<(String, u64)> = e.iter().map(|e| (e.label.clone(), e.bytes)).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("pq".to_string(), 28),
                ("tflite.int8".to_string(), 280),
                ("tflite.int8 + zstd -19".to_string(), 40)
            ]
        );
        assert_eq!(
            peer_name(Path::new("../shared/peers/torch/out/results.json")),
            "torch"
        );
    }

    #[test]
    fn a_compression_report_gives_the_baseline_and_every_stage() {
        let r = json!({"bytes": 10, "dense_f32_bytes": 1000, "baseline_accuracy": 0.99, "stages": [
            {"name": "float32", "bytes": 1000, "bytes_kind": "accounted", "accuracy": 0.99},
            {"name": "pruned", "bytes": 100, "bytes_kind": "accounted", "accuracy": 0.98},
            {"name": "coded", "bytes": 10, "bytes_kind": "file", "accuracy": 0.97, "accuracy_integer_only": 0.96}]});
        let e = from_compress_report("run", &r).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].source, "baseline");
        assert_eq!(e[2].accuracy_integer_only, Some(0.96));
        assert!(from_compress_report("x", &json!({"bytes": 1})).is_err());
    }

    #[test]
    fn the_report_writes_a_valid_svg() {
        let dir = std::env::temp_dir().join(format!("slimnet-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = AccuracySize::new("m", Some(100), vec![entry(100, 0.9), entry(1000, 0.95)]);
        r.write(&dir.join("r")).unwrap();
        let svg = std::fs::read_to_string(dir.join("r.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{}",
            &svg[..80]
        );
        assert!(svg.contains("Pareto front"));
        let png = std::fs::read(dir.join("r.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let json: Value =
            serde_json::from_slice(&std::fs::read(dir.join("r.json")).unwrap()).unwrap();
        assert_eq!(json["entries"].as_array().unwrap().len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
