//! MNIST-format datasets: the IDX reader (gzipped or raw), checksum verification, and the train /
//! validation / test split.
//!
//! Guarantees: every file is validated (magic, element type, rank, dimensions, byte count, label range) before it
//! is used, and every error names the file and the problem. A directory holding a `SHA256SUMS` file (as the
//! bundled `data/mnist` does) has each decompressed file checked against it.

use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The four files of an MNIST-format dataset, without the optional `.gz` suffix.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Training labels.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Test images.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Test labels.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Largest number of classes a label file may use (labels are `u8`).
pub const MAX_CLASSES: usize = 256;

/// A decoded IDX file of unsigned bytes: its dimensions and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Row-major data; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Bytes read past the data an IDX header describes, to report how many trail it (a longer tail is reported as
/// "at least" this many).
const TRAIL_LIMIT: u64 = 1 << 20;

/// Reads the decompressed bytes of the IDX file `path` (gzip is recognised by its magic number, anything else is
/// read raw), as far as its header says plus a bounded tail, so that neither a gzip bomb nor an endless stream
/// (`/dev/zero`, a FIFO) can exhaust memory or hang. With `rank`, a file of another rank is refused right after
/// its magic (an images file holding labels, say).
fn read_idx_bytes(path: &Path, rank: Option<usize>) -> Result<Vec<u8>> {
    let io = |e| Error::io(path, e);
    let mut file = std::io::BufReader::new(crate::input::open(path).map_err(io)?);
    let gz = std::io::BufRead::fill_buf(&mut file)
        .map_err(io)?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gz {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let corrupt = |e: std::io::Error| match gz {
        true => Error::NotIdx {
            path: path.into(),
            reason: format!("corrupt gzip stream ({e})"),
        },
        false => Error::io(path, e),
    };
    let mut out = Vec::new();
    (&mut reader)
        .take(4)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let found = match out[..] {
        [0, 0, 0x08, r] if (1..=4).contains(&r) => usize::from(r),
        _ => return Ok(out), // parse_idx says what is wrong
    };
    if let Some(want) = rank.filter(|&w| w != found) {
        return Err(Error::NotIdx {
            path: path.into(),
            reason: format!(
                "an IDX file of rank {found} (magic 00 00 08 {found:02x}) where rank {want} (00 00 08 {want:02x}) \
                 is expected: {}",
                if want == 3 { "is this a labels file?" } else { "is this an images file?" }
            ),
        });
    }
    (&mut reader)
        .take(4 * found as u64)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    let data: u64 = out[4..]
        .chunks_exact(4)
        .map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .try_fold(1u64, |acc, d| acc.checked_mul(d))
        .unwrap_or(u64::MAX);
    reader
        .take(data.saturating_add(TRAIL_LIMIT))
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    Ok(out)
}

/// Parses an IDX file held in memory (`path` is only used in error messages).
pub fn parse_idx(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    let not_idx = |reason: String| Error::NotIdx {
        path: path.into(),
        reason,
    };
    if bytes.len() < 4 {
        return Err(not_idx(format!(
            "{} bytes, shorter than the 4-byte magic",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(not_idx(format!(
            "magic starts {:02x} {:02x}, expected 00 00",
            bytes[0], bytes[1]
        )));
    }
    if bytes[2] != 0x08 {
        return Err(not_idx(format!(
            "element type 0x{:02x}, only 0x08 (unsigned byte) is supported",
            bytes[2]
        )));
    }
    let rank = usize::from(bytes[3]);
    if rank == 0 || rank > 4 {
        return Err(not_idx(format!("rank {rank}, expected 1 to 4 dimensions")));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(Error::TruncatedIdx {
            path: path.into(),
            expected: header as u64,
            actual: bytes.len() as u64,
        });
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| not_idx(format!("dimensions {dims:?} overflow")))?;
    let actual = bytes.len() - header;
    if actual < expected {
        return Err(Error::TruncatedIdx {
            path: path.into(),
            expected: expected as u64,
            actual: actual as u64,
        });
    }
    if actual > expected {
        return Err(Error::BadIdx {
            path: path.into(),
            reason: format!(
                "{}{} bytes after the {expected} bytes the header {dims:?} describes",
                if (actual - expected) as u64 >= TRAIL_LIMIT {
                    "at least "
                } else {
                    ""
                },
                actual - expected
            ),
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Reads an IDX file, gzipped or raw (of rank `rank`, if given), and returns it with the SHA-256 of its
/// decompressed bytes.
pub fn read_idx(path: &Path, rank: Option<usize>) -> Result<(IdxArray, String)> {
    let bytes = read_idx_bytes(path, rank)?;
    let digest = hex(&Sha256::digest(&bytes));
    Ok((parse_idx(path, &bytes)?, digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Images and labels of one split: `count` samples of `rows × cols` u8 pixels (one channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Number of samples.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count × rows × cols` pixels, row-major.
    pub pixels: Vec<u8>,
    /// One class label per sample, each `< classes`.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of sample `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Samples `start..end` as a new dataset.
    pub fn slice(&self, start: usize, end: usize) -> Dataset {
        let n = self.image_len();
        Dataset {
            count: end - start,
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels[start * n..end * n].to_vec(),
            labels: self.labels[start..end].to_vec(),
        }
    }

    /// Loads an image file and its label file and checks that they agree.
    pub fn load(images_path: &Path, labels_path: &Path) -> Result<(Dataset, [String; 2])> {
        let (images, images_sha) = read_idx(images_path, Some(3))?;
        let (labels, labels_sha) = read_idx(labels_path, Some(1))?;
        // read_idx has checked the ranks: 3 (count, rows, cols) and 1.
        let (count, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
        if rows == 0 || cols == 0 {
            return Err(Error::BadIdx {
                path: images_path.into(),
                reason: format!("empty images ({rows}×{cols})"),
            });
        }
        if labels.dims[0] != count {
            return Err(Error::CountMismatch {
                images_path: images_path.into(),
                images: count,
                labels_path: labels_path.into(),
                labels: labels.dims[0],
            });
        }
        Ok((
            Dataset {
                count,
                rows,
                cols,
                pixels: images.data,
                labels: labels.data,
            },
            [images_sha, labels_sha],
        ))
    }

    /// One more than the largest label: the number of classes this split needs.
    pub fn classes_needed(&self) -> usize {
        self.labels
            .iter()
            .copied()
            .max()
            .map_or(0, |m| usize::from(m) + 1)
    }
}

/// Mean and standard deviation applied to pixels scaled to [0, 1]: `x = (p / 255 − mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of the scaled pixels.
    pub mean: f32,
    /// Standard deviation of the scaled pixels.
    pub std: f32,
}

impl Normalization {
    /// The statistics of `data`'s pixels.
    pub fn of(data: &Dataset) -> Normalization {
        let n = data.pixels.len().max(1) as f64;
        let (sum, sum_sq) = data.pixels.iter().fold((0f64, 0f64), |(s, q), &p| {
            let x = f64::from(p) / 255.0;
            (s + x, q + x * x)
        });
        let mean = sum / n;
        let var = (sum_sq / n - mean * mean).max(1e-12);
        Normalization {
            mean: mean as f32,
            std: var.sqrt() as f32,
        }
    }

    /// The usual MNIST statistics (`transforms.Normalize((0.1307,), (0.3081,))` in PyTorch scripts).
    pub const MNIST: Normalization = Normalization {
        mean: 0.1307,
        std: 0.3081,
    };

    /// Normalizes pixels into `out` (same length).
    pub fn apply(&self, pixels: &[u8], out: &mut [f32]) {
        let scale = 1.0 / (255.0 * self.std);
        let shift = self.mean / self.std;
        for (o, &p) in out.iter_mut().zip(pixels) {
            *o = f32::from(p) * scale - shift;
        }
    }
}

/// A whole dataset as loaded from a directory: training and test splits plus their fingerprint.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// All training samples (before the validation split).
    pub train: Dataset,
    /// The test samples: for reporting only, never for model selection.
    pub test: Dataset,
    /// Number of classes (10 for MNIST; one more than the largest label otherwise).
    pub classes: usize,
    /// SHA-256 over the four files' SHA-256 digests (train images, train labels, test images, test labels).
    pub sha256: String,
    /// Whether the files were checked against a `SHA256SUMS` file.
    pub verified: bool,
    /// What a user should know about this data that is not an error (training classes the test set lacks).
    pub notes: Vec<String>,
}

/// Finds `stem.gz` or `stem` in `dir`.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(stem);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(Error::io(
        gz,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("missing (nor {stem} uncompressed): a dataset directory needs the four MNIST-format IDX files"),
        ),
    ))
}

/// Reads `dir/SHA256SUMS` (`digest  name` lines) if present.
fn read_sums(dir: &Path) -> Result<Option<Vec<(String, String)>>> {
    let path = dir.join("SHA256SUMS");
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let mut sums = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next()) {
            (Some(d), Some(name)) if d.len() == 64 => sums.push((
                d.to_ascii_lowercase(),
                name.trim_start_matches('*').to_string(),
            )),
            _ => {
                return Err(Error::BadIdx {
                    path,
                    reason: format!("line {} is not `SHA256  NAME`", i + 1),
                })
            }
        }
    }
    Ok(Some(sums))
}

impl Mnist {
    /// Loads the four IDX files from `dir` and, if it holds a `SHA256SUMS`, verifies them against it.
    pub fn load(dir: &Path) -> Result<Mnist> {
        if !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "dataset directory not found"),
            ));
        }
        let sums = read_sums(dir)?;
        let paths =
            [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS].map(|stem| find(dir, stem));
        let [ti, tl, vi, vl] = paths;
        let (ti, tl, vi, vl) = (ti?, tl?, vi?, vl?);
        let (train, train_sha) = Dataset::load(&ti, &tl)?;
        let (test, test_sha) = Dataset::load(&vi, &vl)?;
        if (test.rows, test.cols) != (train.rows, train.cols) {
            return Err(Error::BadIdx {
                path: vi,
                reason: format!(
                    "test images are {}×{}, training images {}×{}",
                    test.rows, test.cols, train.rows, train.cols
                ),
            });
        }
        if train.count == 0 || test.count == 0 {
            return Err(Error::BadIdx {
                path: if train.count == 0 { ti } else { vi },
                reason: "no samples".into(),
            });
        }
        let digests = [&train_sha[0], &train_sha[1], &test_sha[0], &test_sha[1]];
        let files = [&ti, &tl, &vi, &vl];
        let verified = sums.is_some();
        if let Some(sums) = sums {
            for (stem, (digest, path)) in [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
                .iter()
                .zip(digests.iter().zip(files))
            {
                let listed = sums
                    .iter()
                    .find(|(_, n)| n == stem)
                    .ok_or_else(|| Error::BadIdx {
                        path: dir.join("SHA256SUMS"),
                        reason: format!("no line for {stem}"),
                    })?;
                if listed.0 != **digest {
                    return Err(Error::Checksum {
                        path: path.clone(),
                        expected: listed.0.clone(),
                        actual: (*digest).clone(),
                    });
                }
            }
        }
        let mut all = Sha256::new();
        for d in digests {
            all.update(d.as_bytes());
        }
        let classes = train.classes_needed().max(test.classes_needed());
        if classes < 2 {
            return Err(Error::BadIdx {
                path: tl,
                reason: "labels use fewer than 2 classes".into(),
            });
        }
        if test.classes_needed() > train.classes_needed() {
            return Err(Error::BadIdx {
                path: vl,
                reason: format!(
                    "test label {} never occurs in the training labels (0..{})",
                    test.classes_needed() - 1,
                    train.classes_needed()
                ),
            });
        }
        let mut notes = Vec::new();
        if train.classes_needed() > test.classes_needed() {
            notes.push(format!(
                "{}: training labels use {} classes (0..={}) but the test labels only {} (0..={}): models get {} \
                 outputs, and classes {}..={} are never tested",
                dir.display(),
                train.classes_needed(),
                train.classes_needed() - 1,
                test.classes_needed(),
                test.classes_needed() - 1,
                classes,
                test.classes_needed(),
                train.classes_needed() - 1
            ));
        }
        Ok(Mnist {
            dir: dir.into(),
            train,
            test,
            classes,
            sha256: hex(&all.finalize()),
            verified,
            notes,
        })
    }

    /// Carves the validation split: the last `val` training samples. `train_limit` then keeps only the first
    /// samples of what remains (for quick runs).
    pub fn split(&self, val: usize, train_limit: Option<usize>) -> Result<Split> {
        if val >= self.train.count {
            return Err(Error::Split(format!(
                "--val {val}: the training set has only {} samples",
                self.train.count
            )));
        }
        let cut = self.train.count - val;
        let end = train_limit.map_or(cut, |l| l.min(cut));
        if end == 0 {
            return Err(Error::Split(
                "--train-limit 0 leaves no training samples".into(),
            ));
        }
        Ok(Split {
            train: self.train.slice(0, end),
            val: self.train.slice(cut, self.train.count),
            test: self.test.clone(),
        })
    }
}

/// The three splits used by training: model selection uses `val`, reporting uses `test`.
#[derive(Debug, Clone)]
pub struct Split {
    /// Samples the optimizer sees.
    pub train: Dataset,
    /// Held-out training samples for picking the epoch.
    pub val: Dataset,
    /// The test set.
    pub test: Dataset,
}

/// The dataset directory used when none is given: `$SLIMNET_DATA`, else `./data/mnist`, else the copy in the
/// source tree this binary was built from.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLIMNET_DATA") {
        return PathBuf::from(dir);
    }
    let local = PathBuf::from("data/mnist");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Builds an IDX file: magic 0x0000_08_RANK, big-endian dims, then data.
    pub(crate) fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Writes a tiny 4-file dataset (`n` training and `n` test images of 2×3) into `dir`.
    pub(crate) fn write_dataset(dir: &Path, n: u32, gzip: bool) {
        let images = idx(
            &[n, 2, 3],
            &(0..n * 6).map(|i| (i % 256) as u8).collect::<Vec<_>>(),
        );
        let labels = idx(&[n], &(0..n).map(|i| (i % 3) as u8).collect::<Vec<_>>());
        for (stem, bytes) in [
            (TRAIN_IMAGES, &images),
            (TRAIN_LABELS, &labels),
            (TEST_IMAGES, &images),
            (TEST_LABELS, &labels),
        ] {
            if gzip {
                fs::write(dir.join(format!("{stem}.gz")), gz(bytes)).unwrap();
            } else {
                fs::write(dir.join(stem), bytes).unwrap();
            }
        }
    }

    #[test]
    fn reads_raw_and_gzipped_files_alike() {
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_dataset(dir.path(), 5, gzip);
            let m = Mnist::load(dir.path()).unwrap();
            assert_eq!((m.train.count, m.train.rows, m.train.cols), (5, 2, 3));
            assert_eq!(m.train.image(1), &[6, 7, 8, 9, 10, 11]);
            assert_eq!(m.classes, 3);
            assert!(!m.verified);
        }
    }

    fn err_of(bytes: &[u8]) -> String {
        parse_idx(Path::new("f.idx"), bytes)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn rejects_every_malformed_header() {
        assert!(err_of(&[0, 0]).contains("shorter than the 4-byte magic"));
        assert!(err_of(&[1, 0, 8, 1, 0, 0, 0, 0]).contains("magic"));
        assert!(err_of(&[0, 0, 0x0d, 1, 0, 0, 0, 0]).contains("element type 0x0d"));
        assert!(err_of(&[0, 0, 8, 0]).contains("rank 0"));
        assert!(err_of(&[0, 0, 8, 9]).contains("rank 9"));
        assert!(err_of(&[0, 0, 8, 2, 0, 0]).contains("truncated"));
        let huge = idx(&[u32::MAX, u32::MAX, u32::MAX, u32::MAX], &[]);
        let e = err_of(&huge);
        assert!(e.contains("overflow") || e.contains("truncated"), "{e}");
    }

    #[test]
    fn rejects_truncated_and_oversized_data() {
        let e = err_of(&idx(&[3, 2], &[1, 2, 3]));
        assert!(
            e.contains("f.idx") && e.contains("promises 6 bytes") && e.contains("has 3"),
            "{e}"
        );
        assert!(err_of(&idx(&[1], &[1, 2])).contains("1 bytes after"));
    }

    #[test]
    fn rejects_count_mismatch_wrong_rank_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), 4, false);
        fs::write(dir.path().join(TRAIN_LABELS), idx(&[3], &[0, 1, 2])).unwrap();
        let e = Mnist::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("4 images") && e.contains("3 labels"), "{e}");

        fs::write(dir.path().join(TRAIN_LABELS), idx(&[4, 1], &[0, 1, 2, 0])).unwrap();
        let e = Mnist::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("rank 2") && e.contains("where rank 1"), "{e}");
        // An images file holding labels is named as such, not blamed on its length.
        fs::write(dir.path().join(TRAIN_LABELS), idx(&[4], &[0, 1, 2, 0])).unwrap();
        fs::write(dir.path().join(TRAIN_IMAGES), idx(&[4], &[0, 1, 2, 0])).unwrap();
        let e = Mnist::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is this a labels file?"), "{e}");

        fs::remove_file(dir.path().join(TRAIN_LABELS)).unwrap();
        let e = Mnist::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("train-labels-idx1-ubyte") && e.contains("missing"),
            "{e}"
        );

        let e = Mnist::load(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("not found"), "{e}");
    }

    #[test]
    fn rejects_a_non_idx_file_and_corrupt_gzip() {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), 4, false);
        fs::write(dir.path().join(TEST_IMAGES), b"<html>not a dataset</html>").unwrap();
        let e = Mnist::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("not an IDX file"),
            "{e}"
        );
        let mut broken = gz(&idx(&[4, 2, 3], &[0; 24]));
        broken.truncate(broken.len() / 2);
        fs::write(dir.path().join(TEST_IMAGES), &broken).unwrap();
        let e = Mnist::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("t10k-images-idx3-ubyte"), "{e}");
    }

    #[test]
    fn test_labels_must_be_known_classes() {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), 4, false);
        fs::write(dir.path().join(TEST_LABELS), idx(&[4], &[0, 1, 2, 7])).unwrap();
        let e = Mnist::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("test label 7"), "{e}");
    }

    #[test]
    fn checksums_are_verified_when_listed() {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), 4, true);
        let m = Mnist::load(dir.path()).unwrap();
        // Write the right sums: loads and reports verification.
        let sums: String = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
            .iter()
            .map(|s| {
                let (_, d) = read_idx(&dir.path().join(format!("{s}.gz")), None).unwrap();
                format!("{d}  {s}\n")
            })
            .collect();
        fs::write(dir.path().join("SHA256SUMS"), &sums).unwrap();
        let v = Mnist::load(dir.path()).unwrap();
        assert!(v.verified);
        assert_eq!(v.sha256, m.sha256);
        // A tampered file is caught and named.
        let tampered = sums.replacen(&sums[..2], "00", 1);
        fs::write(dir.path().join("SHA256SUMS"), tampered).unwrap();
        let e = Mnist::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("train-images-idx3-ubyte.gz") && e.contains("does not match"),
            "{e}"
        );
    }

    #[test]
    fn split_carves_validation_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), 10, false);
        let m = Mnist::load(dir.path()).unwrap();
        let s = m.split(3, None).unwrap();
        assert_eq!((s.train.count, s.val.count, s.test.count), (7, 3, 10));
        assert_eq!(s.val.labels, m.train.labels[7..]);
        assert_eq!(m.split(3, Some(2)).unwrap().train.count, 2);
        assert!(m
            .split(10, None)
            .unwrap_err()
            .to_string()
            .contains("--val 10"));
    }

    #[test]
    fn normalization_matches_its_definition() {
        let d = Dataset {
            count: 1,
            rows: 1,
            cols: 2,
            pixels: vec![0, 255],
            labels: vec![0],
        };
        let n = Normalization::of(&d);
        assert!((n.mean - 0.5).abs() < 1e-6 && (n.std - 0.5).abs() < 1e-6);
        let mut out = [0.0; 2];
        n.apply(&d.pixels, &mut out);
        assert!((out[0] + 1.0).abs() < 1e-6 && (out[1] - 1.0).abs() < 1e-6);
    }
}

/// Small synthetic datasets for the trainers' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Dataset;
    use rand::{Rng, SeedableRng};

    /// 4×4 images, 3 classes: which of three bands is bright, plus deterministic noise.
    pub fn bands(count: usize, seed: u64) -> Dataset {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for i in 0..count {
            let c = i % 3;
            labels.push(c as u8);
            for r in 0..4 {
                for _ in 0..4 {
                    let base = if r == c || (c == 2 && r == 3) {
                        200
                    } else {
                        30
                    };
                    pixels.push((base + rng.random_range(0..50)) as u8);
                }
            }
        }
        Dataset {
            count,
            rows: 4,
            cols: 4,
            pixels,
            labels,
        }
    }
}
