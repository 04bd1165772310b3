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
    for note in &data.notes {
        eprintln!("note: {note}");
    }
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

/// A command line that asks for something impossible (flags that contradict each other, a value out of its
/// range): reported with exit status 2, as clap reports its own errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Whether `e` is a usage error: [`Usage`], or a library's error about a setting (`Config`, naming its flag; a
/// split the data cannot give; an architecture spec that does not parse).
pub fn is_usage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<Usage>()
            || matches!(
                c.downcast_ref::<slimnet_models::Error>(),
                Some(
                    slimnet_models::Error::Config { .. }
                        | slimnet_models::Error::Split(_)
                        | slimnet_models::Error::ArchSpec { .. }
                )
            )
            || matches!(
                c.downcast_ref::<slimnet_compress::Error>(),
                Some(slimnet_compress::Error::Config { .. })
            )
    })
}

/// Fails early, before any work, if `out` cannot take the command's output: a missing directory, a directory,
/// one of the command's `inputs`, an unwritable place (`slimnet_models::atomic::check_output`).
pub fn check_output(out: &std::path::Path, inputs: &[&std::path::Path]) -> Result<()> {
    Ok(slimnet_models::atomic::check_output(out, inputs)?)
}

/// Fails early if any of `inputs` is missing or not a readable file (`--peers`, `--from`, …).
pub fn check_inputs<P: AsRef<std::path::Path>>(flag: &str, inputs: &[P]) -> Result<()> {
    for p in inputs {
        let p = p.as_ref();
        if let Err(e) = slimnet_models::input::open(p) {
            anyhow::bail!("{}: {e} (given with {flag})", p.display());
        }
        if p.is_dir() {
            anyhow::bail!("{}: is a directory (given with {flag})", p.display());
        }
    }
    Ok(())
}

/// An output directory: checked before any work ([`OutDir::check`]), created when the first file goes in
/// ([`OutDir::create`]), and removed again if the command fails and nothing went in, so that a failed run
/// leaves no empty directory behind.
pub struct OutDir {
    path: PathBuf,
    created: bool,
}

impl OutDir {
    /// Checks that `path` is a directory or can become one (its parent exists), without creating it.
    pub fn check(path: &std::path::Path) -> Result<OutDir> {
        if path.exists() && !path.is_dir() {
            anyhow::bail!("{}: exists and is not a directory", path.display());
        }
        let parent = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !path.exists() && !parent.is_dir() {
            anyhow::bail!(
                "{}: cannot create the output directory: {} {}",
                path.display(),
                parent.display(),
                if parent.exists() {
                    "is not a directory"
                } else {
                    "does not exist"
                }
            );
        }
        Ok(OutDir {
            path: path.to_path_buf(),
            created: false,
        })
    }

    /// Creates the directory (if missing) and returns its path.
    pub fn create(&mut self) -> Result<&std::path::Path> {
        if !self.path.is_dir() {
            std::fs::create_dir_all(&self.path).map_err(|e| {
                anyhow::anyhow!("{}: cannot create directory: {e}", self.path.display())
            })?;
            self.created = true;
        }
        Ok(&self.path)
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        if self.created {
            // Fails, as it should, unless the directory is still empty.
            let _ = std::fs::remove_dir(&self.path);
        }
    }
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
