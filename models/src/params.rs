//! Parameter storage on the host and the self-describing model file (safetensors with slimnet's metadata).
//!
//! Parameters live as plain `Vec<f32>` in PyTorch's layouts, so optimizers, projection hooks and the compressor
//! work on slices; the candle graph borrows them for each step.
//!
//! ## Model file
//! A safetensors file of f32 tensors named as [`NetSpec::tensors`] lists them (`fc1.weight` `[out, in]`,
//! `conv1.weight` `[out, in, kh, kw]`, `NAME.bias`, `NAME.bn.{weight,bias,running_mean,running_var}`), whose
//! `__metadata__` holds:
//! - `slimnet.net`: the network description as JSON ([`NetSpec`]); `slimnet.arch`: its spec string;
//! - `slimnet.normalization`: `{"mean": m, "std": s}` applied to pixels scaled to [0, 1];
//! - `slimnet.dataset_sha256`: fingerprint of the training data ([`crate::data::Mnist::sha256`]);
//! - `slimnet.metrics`, `slimnet.train`: JSON of the final metrics and the recipe (informational).
//!
//! A file without that metadata (for example `torch.save`d through `safetensors.torch.save_file`) loads when the
//! architecture is given: tensors are matched by name first; failing that, the `.weight` / `.bias` tensors are
//! paired with the layers in natural name order (`0.weight`, `2.weight`, … from an `nn.Sequential`). F32, F16, BF16
//! and F64 tensors are accepted; inputs are assumed to be 28×28 single-channel images normalized with MNIST's usual
//! statistics (mean 0.1307, std 0.3081) unless the metadata says otherwise.

use crate::arch::{NetSpec, Role, Shape, TensorSpec};
use crate::data::Normalization;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// One named tensor with its values.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name, shape, role.
    pub spec: TensorSpec,
    /// Row-major values, `spec.shape` product long.
    pub data: Vec<f32>,
}

/// All tensors of a network, in [`NetSpec::tensors`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The tensors.
    pub tensors: Vec<Param>,
}

impl Params {
    /// Fresh parameters: He-uniform weights (`U(±√(6/fan_in))`), zero biases, identity batch norm. (LeCun's
    /// smaller bound for layers without ReLU was tried and lost on validation accuracy: BENCHMARKS.md.) Deterministic
    /// in `seed`.
    pub fn init(net: &NetSpec, seed: u64) -> Params {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let tensors = net
            .tensors()
            .into_iter()
            .map(|spec| {
                let n: usize = spec.shape.iter().product();
                let data = match spec.role {
                    Role::Weight => {
                        let fan_in: usize = spec.shape[1..].iter().product();
                        let bound = (6.0 / fan_in as f64).sqrt() as f32;
                        (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                    }
                    Role::BnScale | Role::BnVar => vec![1.0; n],
                    Role::Bias | Role::BnShift | Role::BnMean => vec![0.0; n],
                };
                Param { spec, data }
            })
            .collect();
        Params { tensors }
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.tensors.iter().find(|p| p.spec.name == name)
    }

    /// The tensor called `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Param> {
        self.tensors.iter_mut().find(|p| p.spec.name == name)
    }

    /// Safetensors views of every tensor, each named `prefix + name`.
    pub fn views(&self, prefix: &str) -> Vec<(String, F32View<'_>)> {
        self.tensors
            .iter()
            .map(|p| {
                (
                    format!("{prefix}{}", p.spec.name),
                    F32View::new(&p.spec.shape, &p.data),
                )
            })
            .collect()
    }

    /// Reads the tensors `net` needs from `st`, each named `prefix + name`.
    pub fn from_safetensors(
        net: &NetSpec,
        st: &SafeTensors,
        prefix: &str,
        path: &Path,
    ) -> Result<Params> {
        let tensors = net
            .tensors()
            .into_iter()
            .map(|spec| {
                let name = format!("{prefix}{}", spec.name);
                let view = st
                    .tensor(&name)
                    .map_err(|_| Error::model_file(path, format!("missing tensor `{name}`")))?;
                let data = to_f32(&view, &name, &spec, &net.arch, path)?;
                Ok(Param { spec, data })
            })
            .collect::<Result<_>>()?;
        Ok(Params { tensors })
    }
}

/// An f32 tensor borrowed for serialization with safetensors (bytes produced little-endian on demand).
#[derive(Debug, Clone)]
pub struct F32View<'a> {
    shape: Vec<usize>,
    data: &'a [f32],
}

impl<'a> F32View<'a> {
    /// Views `data` with `shape` (whose product must be `data.len()`).
    pub fn new(shape: &[usize], data: &'a [f32]) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        F32View {
            shape: shape.to_vec(),
            data,
        }
    }
}

impl safetensors::View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Owned(self.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        4 * self.data.len()
    }
}

/// Converts a tensor view to f32 after checking its shape against `spec`.
fn to_f32(
    view: &TensorView,
    name: &str,
    spec: &TensorSpec,
    arch: &str,
    path: &Path,
) -> Result<Vec<f32>> {
    if view.shape() != spec.shape.as_slice() {
        return Err(Error::model_file(
            path,
            format!(
                "tensor `{name}` has shape {:?}, architecture `{arch}` expects {:?}",
                view.shape(),
                spec.shape
            ),
        ));
    }
    let bytes = view.data();
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::model_file(
                path,
                format!(
                "tensor `{name}` has dtype {other:?}; only F32, F64, F16 and BF16 are supported"
            ),
            ))
        }
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::model_file(
            path,
            format!(
                "tensor `{name}` holds a non-finite value ({}) at index {i}",
                data[i]
            ),
        ));
    }
    Ok(data)
}

/// A trained network: description, normalization, weights and provenance.
#[derive(Debug, Clone)]
pub struct Model {
    /// The architecture.
    pub net: NetSpec,
    /// Input normalization.
    pub normalization: Normalization,
    /// The weights.
    pub params: Params,
    /// SHA-256 fingerprint of the training data, when known.
    pub dataset_sha256: Option<String>,
    /// Other `slimnet.*` metadata (metrics, recipe) and any foreign metadata, kept as found.
    pub metadata: HashMap<String, String>,
}

/// Metadata keys.
const KEY_NET: &str = "slimnet.net";
const KEY_ARCH: &str = "slimnet.arch";
const KEY_NORM: &str = "slimnet.normalization";
const KEY_DATA: &str = "slimnet.dataset_sha256";

impl Model {
    /// The safetensors bytes of this model.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut meta = self.metadata.clone();
        meta.insert(
            KEY_NET.into(),
            serde_json::to_string(&self.net).expect("serializable"),
        );
        meta.insert(KEY_ARCH.into(), self.net.arch.clone());
        meta.insert(
            KEY_NORM.into(),
            serde_json::to_string(&self.normalization).expect("serializable"),
        );
        if let Some(sha) = &self.dataset_sha256 {
            meta.insert(KEY_DATA.into(), sha.clone());
        }
        meta.insert("format".into(), "pt".into());
        safetensors::serialize(self.params.views(""), Some(meta))
            .map(|b| canonical(&b))
            .map_err(|e| Error::model_file("<memory>", format!("cannot serialize: {e}")))
    }

    /// Writes the model atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::atomic::write_atomic(path, &bytes)
    }

    /// Loads a model file. `arch` is required for files without slimnet metadata (PyTorch exports); when both are
    /// present they must agree.
    pub fn load(path: &Path, arch: Option<&str>) -> Result<Model> {
        let bytes = crate::input::read_model(path)?;
        Model::from_bytes(&bytes, path, arch)
    }

    /// Parses model bytes (`path` names them in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path, arch: Option<&str>) -> Result<Model> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::model_file(path, format!("not a safetensors model file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::model_file(path, format!("not a safetensors model file ({e})")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let normalization: Normalization = match metadata.get(KEY_NORM) {
            Some(s) => serde_json::from_str(s)
                .map_err(|e| Error::model_file(path, format!("bad {KEY_NORM} metadata: {e}")))?,
            None => Normalization::MNIST,
        };
        let Normalization { mean, std } = normalization;
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(Error::model_file(
                path,
                format!("bad {KEY_NORM} metadata: mean {mean}, std {std} (a finite mean and a positive std)"),
            ));
        }
        let dataset_sha256 = metadata.get(KEY_DATA).cloned();
        let (net, params) = match (metadata.get(KEY_NET), arch) {
            (Some(json), given) => {
                let net: NetSpec = serde_json::from_str(json)
                    .map_err(|e| Error::model_file(path, format!("bad {KEY_NET} metadata: {e}")))?;
                check_net(&net, path)?;
                if let Some(given) = given {
                    if given != net.arch {
                        return Err(Error::model_file(
                            path,
                            format!(
                                "the file holds a `{}` network but --arch says `{given}`",
                                net.arch
                            ),
                        ));
                    }
                }
                let params = Params::from_safetensors(&net, &st, "", path)?;
                (net, params)
            }
            (None, Some(arch)) => import_foreign(&st, arch, path)?,
            (None, None) => return Err(Error::model_file(
                path,
                "no slimnet architecture in the metadata; pass --arch (e.g. --arch lenet-300-100)",
            )),
        };
        Ok(Model {
            net,
            normalization,
            params,
            dataset_sha256,
            metadata,
        })
    }
}

/// The safetensors bytes with the header's keys in sorted order. `safetensors::serialize` writes the metadata in
/// a `HashMap`'s iteration order, which differs from run to run: the same model gave files with different
/// SHA-256s. Re-serializing the header through `serde_json::Value` (whose maps are sorted) fixes the order; the
/// data offsets are relative to the end of the header, so the data is copied unchanged.
pub(crate) fn canonical(bytes: &[u8]) -> Vec<u8> {
    let parsed = bytes
        .get(..8)
        .map(|n| u64::from_le_bytes(n.try_into().expect("8 bytes")) as usize)
        .and_then(|n| Some((n, bytes.get(8..8usize.checked_add(n)?)?)))
        .and_then(|(n, h)| Some((n, serde_json::from_slice::<serde_json::Value>(h).ok()?)));
    let Some((n, header)) = parsed else {
        return bytes.to_vec();
    };
    let mut h = serde_json::to_vec(&header).expect("a parsed value serializes");
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + h.len() + bytes.len() - 8 - n);
    out.extend((h.len() as u64).to_le_bytes());
    out.extend(h);
    out.extend(&bytes[8 + n..]);
    out
}

/// A network read from metadata must be what its own spec string builds for its input and classes: a file
/// edited by hand (or damaged) is refused here, not blamed later on the data.
fn check_net(net: &NetSpec, path: &Path) -> Result<()> {
    let bad = |reason: String| Error::model_file(path, format!("bad {KEY_NET} metadata: {reason}"));
    if net.classes < 2 {
        return Err(bad(format!("{} classes (at least 2)", net.classes)));
    }
    let rebuilt = [false, true].map(|bn| NetSpec::parse(&net.arch, net.input, net.classes, bn));
    if rebuilt.iter().any(|r| r.as_ref().is_ok_and(|n| n == net)) {
        return Ok(());
    }
    match &rebuilt[0] {
        Err(e) => Err(bad(e.to_string())),
        Ok(_) => Err(bad(format!(
            "its layers are not what `{}` builds for input {} and {} classes",
            net.arch, net.input, net.classes
        ))),
    }
}

/// Splits a name into text and number runs so that `layers.10.weight` sorts after `layers.2.weight`.
fn natural_key(name: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = c.to_digit(10).unwrap_or(0) as u64;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(d as u64);
                chars.next();
            }
            out.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    out.push((text, u64::MAX));
    out
}

/// Loads a file without slimnet metadata as architecture `arch` (MNIST-sized inputs).
fn import_foreign(st: &SafeTensors, arch: &str, path: &Path) -> Result<(NetSpec, Params)> {
    // Classes come from the last layer's bias in the file; parse once with 10 to find which tensor that is.
    let guess = NetSpec::parse(arch, Shape::image(28, 28), 10, false)?;
    let names = match_names(st, &guess, path)?;
    let last_bias = names.last().expect("every network has tensors");
    let classes = st
        .tensor(last_bias)
        .map(|v| v.shape().first().copied().unwrap_or(0))
        .unwrap_or(10);
    let net = if classes != 10 && classes >= 2 {
        NetSpec::parse(arch, Shape::image(28, 28), classes, false)?
    } else {
        guess
    };
    let tensors = net
        .tensors()
        .into_iter()
        .zip(names)
        .map(|(spec, name)| {
            let view = st
                .tensor(&name)
                .map_err(|_| Error::model_file(path, format!("missing tensor `{name}`")))?;
            let data = to_f32(&view, &name, &spec, arch, path)?;
            Ok(Param { spec, data })
        })
        .collect::<Result<_>>()?;
    Ok((net, Params { tensors }))
}

/// For each tensor `net` needs, the name it has in `st`: the same name, or else the i-th `.weight`/`.bias` in
/// natural order.
fn match_names(st: &SafeTensors, net: &NetSpec, path: &Path) -> Result<Vec<String>> {
    let wanted = net.tensors();
    let exact = wanted.iter().all(|t| st.tensor(&t.name).is_ok());
    if exact {
        return Ok(wanted.into_iter().map(|t| t.name).collect());
    }
    let mut weights: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".weight"))
        .map(str::to_string)
        .collect();
    weights.sort_by_key(|n| natural_key(n));
    let layers = wanted.iter().filter(|t| t.role == Role::Weight).count();
    if weights.len() != layers {
        let missing = wanted
            .iter()
            .find(|t| st.tensor(&t.name).is_err())
            .map(|t| t.name.clone())
            .unwrap_or_default();
        return Err(Error::model_file(
            path,
            format!(
                "missing tensor `{missing}`, and the file's {} `.weight` tensors cannot be paired with the {layers} layers of `{}`",
                weights.len(),
                net.arch
            ),
        ));
    }
    let mut out = Vec::new();
    for w in weights {
        let bias = format!("{}.bias", w.trim_end_matches(".weight"));
        if st.tensor(&bias).is_err() {
            return Err(Error::model_file(path, format!("`{w}` has no `{bias}`")));
        }
        out.push(w);
        out.push(bias);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lenet() -> NetSpec {
        NetSpec::parse("lenet-300-100", Shape::image(28, 28), 10, false).unwrap()
    }

    #[test]
    fn init_is_deterministic_and_scaled() {
        let a = Params::init(&lenet(), 7);
        assert_eq!(a, Params::init(&lenet(), 7));
        assert_ne!(a, Params::init(&lenet(), 8));
        let w = &a.get("fc1.weight").unwrap().data;
        let bound = (6.0f32 / 784.0).sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(a.get("fc1.bias").unwrap().data.iter().all(|&b| b == 0.0));
    }

    #[test]
    fn model_round_trips_through_bytes() {
        let net = lenet();
        let m = Model {
            params: Params::init(&net, 1),
            net,
            normalization: Normalization {
                mean: 0.1,
                std: 0.3,
            },
            dataset_sha256: Some("ab".repeat(32)),
            metadata: HashMap::from([("slimnet.metrics".into(), "{}".into())]),
        };
        let back = Model::from_bytes(&m.to_bytes().unwrap(), Path::new("m"), None).unwrap();
        assert_eq!(back.params, m.params);
        assert_eq!(back.net, m.net);
        assert_eq!(back.normalization, m.normalization);
        assert_eq!(back.dataset_sha256, m.dataset_sha256);
        let e =
            Model::from_bytes(&m.to_bytes().unwrap(), Path::new("m"), Some("lenet-5")).unwrap_err();
        assert!(e.to_string().contains("--arch says `lenet-5`"), "{e}");
    }

    /// Writes tensors the way `safetensors.torch.save_file(model.state_dict())` does for an `nn.Sequential`.
    fn torch_file(names: &[&str], net: &NetSpec, dtype_f16: bool) -> Vec<u8> {
        let p = Params::init(net, 3);
        let halves: Vec<Vec<u8>> = p
            .tensors
            .iter()
            .map(|t| {
                t.data
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect()
            })
            .collect();
        let f32s: Vec<Vec<u8>> = p
            .tensors
            .iter()
            .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views: Vec<(String, TensorView)> = p
            .tensors
            .iter()
            .zip(names)
            .zip(halves.iter().zip(&f32s))
            .map(|((t, n), (h, f))| {
                let v = if dtype_f16 {
                    TensorView::new(Dtype::F16, t.spec.shape.clone(), h).unwrap()
                } else {
                    TensorView::new(Dtype::F32, t.spec.shape.clone(), f).unwrap()
                };
                (n.to_string(), v)
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn imports_pytorch_names_and_sequential_positions() {
        let net = lenet();
        let names = [
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias",
        ];
        let bytes = torch_file(&names, &net, false);
        let e = Model::from_bytes(&bytes, Path::new("t.safetensors"), None).unwrap_err();
        assert!(e.to_string().contains("pass --arch"), "{e}");
        let m = Model::from_bytes(&bytes, Path::new("t"), Some("lenet-300-100")).unwrap();
        assert_eq!(m.params, Params::init(&net, 3));
        assert_eq!(m.normalization, Normalization::MNIST);

        let seq = [
            "net.0.weight",
            "net.0.bias",
            "net.2.weight",
            "net.2.bias",
            "net.10.weight",
            "net.10.bias",
        ];
        let m = Model::from_bytes(
            &torch_file(&seq, &net, true),
            Path::new("t"),
            Some("lenet-300-100"),
        )
        .unwrap();
        let w = &m.params.get("fc3.weight").unwrap().data;
        let orig = &Params::init(&net, 3)
            .get("fc3.weight")
            .unwrap()
            .data
            .clone();
        assert!(w.iter().zip(orig).all(|(a, b)| (a - b).abs() < 1e-3));
    }

    #[test]
    fn mismatched_tensors_name_the_file_and_tensor() {
        let net = lenet();
        let names = [
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "fc3.weight",
            "fc3.bias",
        ];
        let bytes = torch_file(&names, &net, false);
        let e = Model::from_bytes(&bytes, Path::new("t.safetensors"), Some("lenet-5")).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("t.safetensors:") && s.contains("conv1.weight"),
            "{s}"
        );
        let e = Model::from_bytes(&bytes, Path::new("t"), Some("mlp:200-100")).unwrap_err();
        assert!(e.to_string().contains("has shape [300, 784]"), "{e}");
        let e = Model::from_bytes(b"garbage", Path::new("g.safetensors"), None).unwrap_err();
        assert!(
            e.to_string().contains("g.safetensors: not a safetensors"),
            "{e}"
        );
    }

    #[test]
    fn natural_order_sorts_numbers_by_value() {
        let mut v = vec!["a.10.weight", "a.2.weight", "a.0.weight"];
        v.sort_by_key(|n| natural_key(n));
        assert_eq!(v, ["a.0.weight", "a.2.weight", "a.10.weight"]);
    }
}
