//! One module per subcommand; helpers shared by several live here.

pub mod bench;
pub mod compress;
pub mod eval;
pub mod experiment;
pub mod info;
pub mod pipeline;
pub mod report;
pub mod sensitivity;
pub mod slim;
pub mod tensors;
pub mod train;

use anyhow::Result;
use slimnet_models::Mnist;
use std::path::PathBuf;

/// Loads `dir` (or the default dataset) and says on stderr what was loaded, unless `quiet`.
pub fn load_data(dir: Option<PathBuf>, quiet: bool) -> Result<Mnist> {
    let dir = dir.unwrap_or_else(slimnet_models::data::default_dir);
    let data = Mnist::load(&dir)?;
    if !quiet {
        eprintln!(
            "data: {} ({} training, {} test images of {}×{}, {} classes{})",
            dir.display(),
            data.train.count,
            data.test.count,
            data.train.rows,
            data.train.cols,
            data.classes,
            if data.verified {
                ", checksums verified"
            } else {
                ""
            }
        );
    }
    Ok(data)
}

/// Fails early, before any work, if the directory an output file goes to does not exist.
pub fn check_out_dir(out: &std::path::Path) -> Result<()> {
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!(
            "{}: directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    Ok(())
}

/// `0.98234` → `98.23%`.
pub fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// `1066440` → `1,066,440`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
