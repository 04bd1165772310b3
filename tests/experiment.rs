//! `slimnet experiment`: every experiment writes its report and the charts it links, on a tiny slice.

use std::path::Path;

mod common;
use common::slimnet;

/// The report's linked charts exist as SVG and PNG; the report has its table and findings.
fn check_report(dir: &Path, name: &str) {
    let md = std::fs::read_to_string(dir.join(format!("{name}.md"))).unwrap();
    assert!(md.starts_with(&format!("# Experiment: {name}")), "{md}");
    assert!(md.contains("| --- |"), "{name}: a table\n{md}");
    assert!(md.contains("## What the numbers show"), "{md}");
    assert!(md.contains("*Expected:*"), "{md}");
    let charts: Vec<&str> = md
        .lines()
        .filter_map(|l| l.strip_prefix("![")?.split_once("](")?.1.strip_suffix(')'))
        .collect();
    assert!(!charts.is_empty(), "{name}: no chart");
    for svg in charts {
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(text.contains("<svg"), "{svg}");
        let png = dir.join(svg.replace(".svg", ".png"));
        assert!(
            std::fs::read(&png).unwrap().starts_with(b"\x89PNG"),
            "{}",
            png.display()
        );
    }
}

#[test]
fn every_experiment_writes_its_report_and_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports");
    let small = [
        "--epochs",
        "2",
        "--train-limit",
        "600",
        "--val",
        "200",
        "--model",
        "mlp:32",
        "--neurons",
        "48",
        "-q",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut args = vec!["experiment", "all"];
    args.extend_from_slice(&small);
    let o = slimnet(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for name in [
        "optimizers",
        "depth",
        "master-worker",
        "decentralized",
        "sparsity",
        "smoothness",
    ] {
        assert!(stdout.contains(&format!("{name}: ")), "{stdout}");
        check_report(&out, name);
    }
    let depth = std::fs::read_to_string(out.join("depth.md")).unwrap();
    assert!(depth.contains("`mlp:16-16-16`"), "{depth}");
}

#[test]
fn unknown_experiments_and_bad_settings_are_refused() {
    let o = slimnet(&["experiment", "telepathy", "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("unknown experiment `telepathy`") && err.contains("optimizers"),
        "{err}"
    );
    let o = slimnet(&["experiment", "depth", "--epochs", "0", "-q"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--epochs"));
    // An output directory that cannot exist (under a file: no absolute path that root could create).
    let o = slimnet(&["experiment", "depth", "--out", "Cargo.toml/reports", "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("Cargo.toml/reports: cannot create the output directory"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let o = slimnet(&[
        "experiment",
        "depth",
        "--neurons",
        "2",
        "--out",
        dir.path().to_str().unwrap(),
        "-q",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("--neurons: needs at least 4"), "{err}");
}
