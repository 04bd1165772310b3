//! `slimnet train --distributed` end to end: on threads always; on MPI ranks when built with `--features mpi`
//! (CI does), where the MPI run must train exactly the model the threads run trains.

use serde_json::Value;
use std::path::Path;

mod common;
use common::{fails, ok, s};

/// Common flags: LeNet-300-100 on 2,300 training images, 2 epochs of plain SGD, nothing random but the seed.
const SMALL: [&str; 14] = [
    "--train-limit",
    "2300",
    "--val",
    "500",
    "--epochs",
    "2",
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--schedule",
    "constant",
    "--dropout",
    "0",
];

fn train(out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["train", "--out", s(out), "-q"];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn threads_train_both_ways_and_count_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mw = dir.path().join("mw.safetensors");
    let metrics = dir.path().join("mw.json");
    let line = train(
        &mw,
        &[
            "--distributed",
            "master-worker",
            "--nodes",
            "4",
            "--metrics",
            s(&metrics),
        ],
    );
    assert!(
        line.contains("trained on 4 nodes (master-worker (synchronous), messages none)"),
        "{line:?}"
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    let epochs = m["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    assert!(m["test_accuracy"].as_f64().unwrap() > 0.8);
    // Three workers send gradients to the master and get the model back: six directed links.
    let links = m["links"].as_array().unwrap();
    assert_eq!(links.len(), 6);
    let total: u64 = links.iter().map(|l| l["bytes"].as_u64().unwrap()).sum();
    assert_eq!(total, epochs[1]["bytes_sent"].as_u64().unwrap());

    let dec = dir.path().join("dec.safetensors");
    let csv = dir.path().join("dec.csv");
    let line = train(
        &dec,
        &[
            "--distributed",
            "decentralized",
            "--message-compression",
            "top-k-int8:0.1",
            "--consensus-step",
            "0.5",
            "--metrics",
            s(&csv),
        ],
    );
    assert!(
        line.contains("trained on 6 nodes (decentralized two-star, messages top-k-int8:0.1)"),
        "{line:?}"
    );
    assert!(line.contains("consensus distance"), "{line:?}");
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv.starts_with("epoch,train_loss,val_loss,val_accuracy,seconds,compute_seconds"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3);
    // The model is an ordinary model file.
    let v: Value = serde_json::from_str(&ok(&["eval", s(&dec), "--json"])).unwrap();
    assert!(v["accuracy"].as_f64().unwrap() > 0.7, "{v}");
}

#[test]
fn bad_distributed_settings_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "--out", s(&out), "-q"];
        args.extend_from_slice(&SMALL);
        args.extend_from_slice(extra);
        fails(&args)
    };
    let e = run(&["--distributed", "decentralized", "--topology", "1-2,3-4"]);
    assert!(
        e.contains("not connected: node 3 cannot be reached from node 1"),
        "{e}"
    );
    let e = run(&["--distributed", "decentralized", "--nodes", "4"]);
    assert!(e.contains("two-star has 6 nodes, the run has 4"), "{e}");
    // More nodes than the limit: refused by the flag's range before any work (more shards than samples is
    // refused by the sharding itself: models/src/distributed/shard.rs).
    let e = run(&["--distributed", "master-worker", "--nodes", "3000"]);
    assert!(e.contains("--nodes") && e.contains("1..=256"), "{e}");
    let e = run(&["--distributed", "decentralized", "--consensus-step", "1.5"]);
    assert!(e.contains("--consensus-step"), "{e}");
    let e = run(&[
        "--distributed",
        "decentralized",
        "--message-compression",
        "top-k:2",
    ]);
    assert!(e.contains("--message-compression"), "{e}");
    let e = run(&["--nodes", "4"]);
    assert!(e.contains("need --distributed"), "{e}");
    let e = run(&["--distributed", "master-worker", "--batch-norm"]);
    assert!(e.contains("--batch-norm"), "{e}");
    assert!(!out.exists(), "nothing written");
    #[cfg(not(feature = "mpi"))]
    {
        let e = run(&["--distributed", "master-worker", "--backend", "mpi"]);
        assert!(e.contains("built without MPI"), "{e}");
    }
}

#[cfg(feature = "mpi")]
mod mpi {
    use super::*;
    use std::process::{Command, Output};

    /// The trainable tensors of a model file, as bytes (metadata, which holds timings, left out).
    fn weights(path: &Path) -> Vec<(String, Vec<u8>)> {
        let bytes = std::fs::read(path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut v: Vec<_> = st
            .tensors()
            .into_iter()
            .map(|(n, t)| (n, t.data().to_vec()))
            .collect();
        v.sort();
        v
    }

    fn mpirun(ranks: usize, args: &[&str]) -> Output {
        let mut cmd = Command::new("mpirun");
        cmd.args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-n",
            &ranks.to_string(),
        ])
        .arg(env!("CARGO_BIN_EXE_slimnet"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        cmd.output().expect("mpirun runs (install openmpi-bin)")
    }

    #[test]
    fn mpi_ranks_train_exactly_what_threads_train() {
        let dir = tempfile::tempdir().unwrap();
        for (name, ranks, extra) in [
            ("mw", 3, vec!["--distributed", "master-worker"]),
            (
                "dec",
                4,
                vec![
                    "--distributed",
                    "decentralized",
                    "--topology",
                    "ring",
                    "--message-compression",
                    "top-k-int8:0.1",
                ],
            ),
        ] {
            let threads = dir.path().join(format!("{name}-threads.safetensors"));
            let n = ranks.to_string();
            let mut t = extra.clone();
            t.extend(["--nodes", &n, "--backend", "threads"]);
            train(&threads, &t);
            let via_mpi = dir.path().join(format!("{name}-mpi.safetensors"));
            let mut args = vec!["train", "--out", s(&via_mpi), "-q"];
            args.extend_from_slice(&SMALL);
            args.extend(&extra);
            let out = mpirun(ranks, &args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                weights(&threads),
                weights(&via_mpi),
                "{name}: MPI and threads disagree"
            );
        }
    }

    #[test]
    fn mpi_ranks_refuse_a_mismatched_graph_together() {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("x.safetensors");
        let mut args = vec!["train", "--out", s(&out_path), "-q"];
        args.extend_from_slice(&SMALL);
        args.extend(["--distributed", "decentralized", "--topology", "two-star"]);
        let started = std::time::Instant::now();
        let out = mpirun(3, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains("two-star has 6 nodes, the run has 3"), "{err}");
        assert!(started.elapsed().as_secs() < 120, "no hang");
        assert!(!out_path.exists());
    }

    #[test]
    fn a_failing_rank_brings_the_job_down_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("x.safetensors");
        let mut args = vec!["train", "--out", s(&out_path), "-q"];
        args.extend(SMALL.iter().map(|&a| if a == "0.05" { "1e30" } else { a }));
        args.extend(["--distributed", "decentralized", "--topology", "ring"]);
        let started = std::time::Instant::now();
        let out = mpirun(3, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("diverged") && err.contains("aborting the job"),
            "{err}"
        );
        assert!(started.elapsed().as_secs() < 120, "no hang");
        assert!(!out_path.exists());
    }
}
