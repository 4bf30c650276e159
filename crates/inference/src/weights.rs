//! Reading weights: safetensors and PyTorch state dicts (`.pt`, `.pth`, zip or
//! legacy pickle) into one name → tensor map, renamed from the public
//! implementations' key layouts to ours, and loaded into an architecture with
//! an error that names the first missing or mis-shaped tensor.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::error::{InferenceError, Result};

/// Where a state dict comes from: each public implementation names the same
/// tensors differently, and each has its own row in [`KeyMap::rules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightSource {
    /// Our own safetensors (what `train-demo` and `models import` write).
    Native,
    /// `torchvision.models` state dicts (DenseNet, EfficientNet).
    Torchvision,
    /// torchxrayvision's DenseNet (`op_threshs` kept aside, not a layer).
    Torchxrayvision,
    /// CheXNet re-implementations saved from `nn.DataParallel`
    /// (`module.densenet121.…`, classifier wrapped in a Sequential).
    Chexnet,
    /// MONAI networks (SegResNet), possibly saved from DataParallel.
    Monai,
}

impl std::str::FromStr for WeightSource {
    type Err = InferenceError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "native" => Self::Native,
            "torchvision" => Self::Torchvision,
            "torchxrayvision" | "xrv" => Self::Torchxrayvision,
            "chexnet" => Self::Chexnet,
            "monai" => Self::Monai,
            other => {
                return Err(InferenceError::Invalid(format!(
                    "unknown weight source `{other}` (native, torchvision, torchxrayvision, chexnet, monai)"
                )))
            }
        })
    }
}

/// The renaming table for one source: prefixes stripped, substrings replaced,
/// keys dropped (buffers that are not weights of ours).
pub struct KeyMap {
    strip_prefixes: &'static [&'static str],
    replace: &'static [(&'static str, &'static str)],
    drop_suffixes: &'static [&'static str],
}

impl KeyMap {
    pub fn rules(source: WeightSource) -> Self {
        const BATCHNORM_COUNTER: &[&str] = &["num_batches_tracked"];
        match source {
            WeightSource::Native => KeyMap {
                strip_prefixes: &[],
                replace: &[],
                drop_suffixes: BATCHNORM_COUNTER,
            },
            WeightSource::Torchvision | WeightSource::Torchxrayvision => KeyMap {
                strip_prefixes: &["module."],
                // Checkpoints from torchvision < 0.3 name DenseNet layers
                // `norm.1` / `conv.2`; torchvision's loader remaps them the same way.
                replace: &[
                    (".norm.1.", ".norm1."),
                    (".norm.2.", ".norm2."),
                    (".conv.1.", ".conv1."),
                    (".conv.2.", ".conv2."),
                    (".relu.1.", ".relu1."),
                    (".relu.2.", ".relu2."),
                ],
                drop_suffixes: &["num_batches_tracked", "op_threshs"],
            },
            WeightSource::Chexnet => KeyMap {
                strip_prefixes: &["module.densenet121.", "densenet121.", "module."],
                replace: &[
                    ("classifier.0.", "classifier."),
                    (".norm.1.", ".norm1."),
                    (".norm.2.", ".norm2."),
                    (".conv.1.", ".conv1."),
                    (".conv.2.", ".conv2."),
                ],
                drop_suffixes: BATCHNORM_COUNTER,
            },
            WeightSource::Monai => KeyMap {
                strip_prefixes: &["module."],
                replace: &[],
                drop_suffixes: BATCHNORM_COUNTER,
            },
        }
    }

    pub fn apply(&self, tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
        tensors
            .into_iter()
            .filter(|(k, _)| !self.drop_suffixes.iter().any(|s| k.ends_with(s)))
            .map(|(k, v)| {
                let mut k = k;
                for p in self.strip_prefixes {
                    if let Some(rest) = k.strip_prefix(p) {
                        k = rest.to_string();
                        break;
                    }
                }
                for (from, to) in self.replace {
                    // Also match at the start of the key (no leading dot).
                    if k.contains(from) {
                        k = k.replace(from, to);
                    } else if let Some(rest) = k.strip_prefix(&from[1..]) {
                        k = format!("{}{rest}", &to[1..]);
                    }
                }
                (k, v)
            })
            .collect()
    }
}

/// Reads a weights file by content, not by extension: safetensors, a
/// PyTorch zip archive (`torch.save` since 1.6) or a legacy pickle.
pub fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let corrupt = |reason: String| InferenceError::CorruptWeights {
        path: path.to_path_buf(),
        reason,
    };
    let mut head = [0u8; 9];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| InferenceError::io(path, e))?;
    if n < 9 {
        return Err(corrupt("file is too short to hold weights".into()));
    }
    let looks_safetensors = head[8] == b'{';
    let looks_zip = head.starts_with(b"PK\x03\x04");
    let looks_pickle = head[0] == 0x80;
    // candle's readers assume well-formed files; a truncated or hand-edited
    // one must come back as an error, not take the worker down.
    let read = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<(String, Tensor)>> {
        if looks_safetensors {
            let map = candle_core::safetensors::load(path, &Device::Cpu)
                .map_err(|e| corrupt(format!("not a valid safetensors file ({e})")))?;
            Ok(map.into_iter().collect())
        } else if looks_zip || looks_pickle {
            candle_core::pickle::read_all(path)
                .map_err(|e| corrupt(format!("not a readable PyTorch state dict ({e})")))
        } else {
            Err(corrupt(
                "neither safetensors nor a PyTorch state dict (.pt/.pth)".into(),
            ))
        }
    }));
    let tensors = match read {
        Ok(r) => r?,
        Err(_) => return Err(corrupt("the file is damaged (reader aborted)".into())),
    };
    if tensors.is_empty() {
        return Err(corrupt("the file holds no tensors".into()));
    }
    // Checkpoints often wrap the state dict ({"state_dict": …}); candle's
    // reader flattens nothing, so a prefix is stripped here.
    Ok(tensors
        .into_iter()
        .map(|(k, v)| {
            let k = k
                .strip_prefix("state_dict.")
                .or_else(|| k.strip_prefix("model."))
                .map(str::to_string)
                .unwrap_or(k);
            (k, v)
        })
        .collect())
}

/// Reads a weights file and renames it for `source`, as f32 on the CPU.
pub fn load_state_dict(path: &Path, source: WeightSource) -> Result<HashMap<String, Tensor>> {
    let raw = read_tensors(path)?;
    let mapped = KeyMap::rules(source).apply(raw);
    mapped
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect()
}

/// The tensors an architecture asked for, in order, with their shapes.
pub type Requested = Arc<Mutex<Vec<(String, Vec<usize>)>>>;

/// A `VarBuilder` backend that serves tensors from a map (or zeros, when
/// there is no map: a dry run that lists what an architecture needs) and
/// records every name and shape asked for.
struct Recording {
    tensors: Option<HashMap<String, Tensor>>,
    requested: Requested,
}

impl candle_nn::var_builder::SimpleBackend for Recording {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Ok(mut r) = self.requested.lock() {
            r.push((name.to_string(), s.dims().to_vec()));
        }
        let Some(map) = &self.tensors else {
            return Tensor::zeros(s, dtype, dev);
        };
        let t = map
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            })?;
        if t.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            });
        }
        t.to_device(dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some(map) = &self.tensors else {
            candle_core::bail!("dry-run weights have no tensor `{name}`")
        };
        let t = map
            .get(name)
            .ok_or_else(|| candle_core::Error::CannotFindTensor {
                path: name.to_string(),
            })?;
        t.to_device(dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.as_ref().is_none_or(|m| m.contains_key(name))
    }
}

/// Builds a model from `tensors` (renamed already) and checks the fit both
/// ways: a tensor the architecture needs but the file lacks, one of the wrong
/// shape, or one the file has that the architecture never asked for (a
/// different variant or head) is an error naming that tensor.
pub fn build_from_tensors<M>(
    arch: &str,
    tensors: HashMap<String, Tensor>,
    dtype: DType,
    device: &Device,
    build: impl FnOnce(VarBuilder) -> candle_core::Result<M>,
) -> Result<M> {
    let names: Vec<String> = tensors.keys().cloned().collect();
    let requested: Requested = Arc::default();
    let backend = Recording {
        tensors: Some(tensors),
        requested: requested.clone(),
    };
    let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
    let model = build(vb).map_err(|e| explain_load_error(arch, e))?;
    let asked: HashSet<String> = requested
        .lock()
        .map(|r| r.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let mut extra: Vec<&String> = names.iter().filter(|n| !asked.contains(*n)).collect();
    extra.sort();
    if let Some(first) = extra.first() {
        return Err(InferenceError::UnexpectedTensor {
            arch: arch.to_string(),
            name: (*first).clone(),
            count: extra.len(),
        });
    }
    Ok(model)
}

/// Every tensor name and shape an architecture needs, in the order it asks
/// for them (a dry run over zeros).
pub fn expected_tensors(
    build: impl FnOnce(VarBuilder) -> candle_core::Result<()>,
) -> Result<Vec<(String, Vec<usize>)>> {
    let requested: Requested = Arc::default();
    let backend = Recording {
        tensors: None,
        requested: requested.clone(),
    };
    build(VarBuilder::from_backend(
        Box::new(backend),
        DType::F32,
        Device::Cpu,
    ))?;
    let list = requested.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(list)
}

/// Turns candle's "cannot find tensor" / "shape mismatch" into errors that
/// name the architecture and the tensor; anything else passes through.
pub fn explain_load_error(arch: &str, err: candle_core::Error) -> InferenceError {
    let mut e = &err;
    while let candle_core::Error::WithBacktrace { inner, .. }
    | candle_core::Error::Context { inner, .. }
    | candle_core::Error::WithPath { inner, .. } = e
    {
        e = inner;
    }
    match e {
        candle_core::Error::CannotFindTensor { path } => InferenceError::MissingTensor {
            arch: arch.to_string(),
            name: path.clone(),
        },
        candle_core::Error::UnexpectedShape { msg, expected, got } => {
            let name = msg
                .strip_prefix("shape mismatch for ")
                .unwrap_or(msg)
                .to_string();
            InferenceError::TensorShape {
                arch: arch.to_string(),
                name,
                expected: expected.dims().to_vec(),
                found: got.dims().to_vec(),
            }
        }
        _ => InferenceError::Tensor(err),
    }
}

/// Writes tensors as safetensors (the pack format).
pub fn save_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let cpu: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&cpu, path).map_err(InferenceError::Tensor)
}
