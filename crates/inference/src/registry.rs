//! The installed model packs: listed and verified from a folder, chosen by
//! modality and body part, loaded lazily once and shared by every worker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use serde::Serialize;

use crate::arch::Classifier;
use crate::error::{InferenceError, Result};
use crate::gradcam::{class_activation_maps, CamMethod, Heatmap};
use crate::pack::{ModelPack, Network, Task, MANIFEST};
use crate::preprocess::{prepare_plane, prepare_volume, Plane, Volume};

/// What `medvision models list --json` prints per pack.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PackSummary {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub task: Task,
    pub modality: String,
    pub body_part: String,
    pub labels: Vec<String>,
    pub intended_use: String,
    pub sha256: String,
}

impl From<&ModelPack> for PackSummary {
    fn from(p: &ModelPack) -> Self {
        let m = &p.manifest;
        Self {
            name: m.name.clone(),
            version: m.version.clone(),
            arch: m.arch.label(),
            task: m.task,
            modality: m.modality.clone(),
            body_part: m.body_part.clone(),
            labels: m.labels.clone(),
            intended_use: m.intended_use.clone(),
            sha256: m.weights_sha256.clone(),
        }
    }
}

pub struct Registry {
    packs: Vec<ModelPack>,
    /// Folders that hold a model.toml that could not be read, with why.
    broken: Vec<(PathBuf, String)>,
    loaded: Mutex<HashMap<String, Arc<LoadedModel>>>,
    device: Device,
}

impl Registry {
    /// A registry without packs (the models folder could not be read).
    pub fn empty(device: Device) -> Self {
        Self {
            packs: Vec::new(),
            broken: Vec::new(),
            loaded: Mutex::new(HashMap::new()),
            device,
        }
    }

    /// Every immediate sub-folder of `dir` with a `model.toml`. A pack that
    /// does not parse is reported in [`Registry::broken`], not fatal: one
    /// bad download must not take every other model offline.
    pub fn scan(dir: &Path, device: Device) -> Result<Self> {
        let mut packs = Vec::new();
        let mut broken = Vec::new();
        if dir.exists() {
            let entries = std::fs::read_dir(dir).map_err(|e| InferenceError::io(dir, e))?;
            let mut dirs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join(MANIFEST).is_file())
                .collect();
            dirs.sort();
            for d in dirs {
                match ModelPack::open(&d) {
                    Ok(p) => packs.push(p),
                    Err(e) => broken.push((d, e.to_string())),
                }
            }
        }
        Ok(Self {
            packs,
            broken,
            loaded: Mutex::default(),
            device,
        })
    }

    pub fn packs(&self) -> &[ModelPack] {
        &self.packs
    }

    pub fn broken(&self) -> &[(PathBuf, String)] {
        &self.broken
    }

    pub fn summaries(&self) -> Vec<PackSummary> {
        self.packs.iter().map(PackSummary::from).collect()
    }

    /// The pack for this modality and body part (case-insensitive), the
    /// newest version when several match.
    pub fn select(&self, modality: &str, body_part: &str, task: Task) -> Option<&ModelPack> {
        self.packs
            .iter()
            .filter(|p| {
                let m = &p.manifest;
                m.task == task
                    && m.modality.eq_ignore_ascii_case(modality)
                    && m.body_part.eq_ignore_ascii_case(body_part)
            })
            .max_by(|a, b| version_key(&a.manifest.version).cmp(&version_key(&b.manifest.version)))
    }

    pub fn find(&self, name: &str) -> Option<&ModelPack> {
        self.packs.iter().find(|p| p.manifest.name == name)
    }

    /// The loaded model for a pack, loading (and verifying) it on first use.
    pub fn load(&self, name: &str) -> Result<Arc<LoadedModel>> {
        let pack = self.find(name).ok_or_else(|| {
            InferenceError::Invalid(format!("no model pack named `{name}` is installed"))
        })?;
        if let Some(m) = self.loaded.lock().ok().and_then(|l| l.get(name).cloned()) {
            return Ok(m);
        }
        // Loading runs outside the lock so a large model does not stall
        // callers of other packs; two racing loads of one pack both succeed
        // and the first stored wins.
        let network = pack.load(&self.device, DType::F32)?;
        let model = Arc::new(LoadedModel {
            pack: pack.clone(),
            network,
            device: self.device.clone(),
        });
        let mut l = self
            .loaded
            .lock()
            .map_err(|_| InferenceError::Invalid("model cache poisoned".into()))?;
        Ok(l.entry(name.to_string()).or_insert(model).clone())
    }
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub struct LoadedModel {
    pub pack: ModelPack,
    network: Network,
    device: Device,
}

/// One label's raw output for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub logit: f32,
    /// sigmoid(logit), before calibration.
    pub raw_probability: f32,
    /// After the pack's calibration (equal to the raw one without).
    pub probability: f32,
}

/// A segmentation: per-region masks at the input's resolution and volumes.
#[derive(Debug, Clone)]
pub struct Segmentation {
    pub shape: [usize; 3],
    /// (label, mask as 0/1 per voxel, volume in mL)
    pub regions: Vec<(String, Vec<u8>, f64)>,
}

impl LoadedModel {
    pub fn version(&self) -> &str {
        &self.pack.manifest.version
    }

    /// Where the model runs, for logs and metrics.
    pub fn device_name(&self) -> &'static str {
        if self.device.is_cuda() {
            "cuda"
        } else if self.device.is_metal() {
            "metal"
        } else {
            "cpu"
        }
    }

    fn classifier(&self) -> Result<&dyn Classifier> {
        match &self.network {
            Network::Classifier(c) => Ok(c.as_ref()),
            Network::Segmenter(_) => Err(InferenceError::Invalid(format!(
                "{} is a segmentation model",
                self.pack.manifest.name
            ))),
        }
    }

    /// Batched classification of 2D images; one score list per image.
    pub fn classify(&self, planes: &[Plane]) -> Result<Vec<Vec<LabelScore>>> {
        let c = self.classifier()?;
        if planes.is_empty() {
            return Ok(Vec::new());
        }
        let spec = &self.pack.manifest.input;
        let batch = planes
            .iter()
            .map(|p| prepare_plane(p, spec, &self.device))
            .collect::<Result<Vec<_>>>()?;
        let x = Tensor::stack(&batch, 0)?;
        let logits = c
            .forward(&x)?
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .to_vec2::<f32>()?;
        let m = &self.pack.manifest;
        logits
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&m.labels)
                    .map(|(logit, label)| {
                        if !logit.is_finite() {
                            return Err(InferenceError::Input(format!(
                                "the model produced no finite score for `{label}`: the input is outside what it can handle"
                            )));
                        }
                        let probability = match m.calibration.iter().find(|c| &c.label == label) {
                            Some(c) => c.method.apply(logit),
                            None => sigmoid(logit),
                        };
                        Ok(LabelScore {
                            label: label.clone(),
                            logit,
                            raw_probability: sigmoid(logit),
                            probability,
                        })
                    })
                    .collect()
            })
            .collect()
    }

    /// Calibrated scores against the pack's thresholds, with a site's
    /// overrides applied: positives and the resulting urgency.
    pub fn assess(
        &self,
        scores: &[LabelScore],
        overrides: &[crate::triage::ThresholdOverride],
    ) -> Result<crate::triage::Assessment> {
        let probs: Vec<(String, f32)> = scores
            .iter()
            .map(|s| (s.label.clone(), s.probability))
            .collect();
        crate::triage::assess(&probs, &self.pack.manifest.thresholds, overrides)
    }

    /// Grad-CAM map of `label` on one image, at the network's input size.
    pub fn explain(&self, plane: &Plane, label: &str, method: CamMethod) -> Result<Heatmap> {
        let c = self.classifier()?;
        let idx = self
            .pack
            .manifest
            .labels
            .iter()
            .position(|l| l == label)
            .ok_or_else(|| InferenceError::Invalid(format!("the model has no label `{label}`")))?;
        let x = prepare_plane(plane, &self.pack.manifest.input, &self.device)?.unsqueeze(0)?;
        let mut maps = class_activation_maps(c, &x, idx, method)?;
        maps.pop()
            .ok_or_else(|| InferenceError::Invalid("no heatmap computed".into()))
    }

    /// Sliding-window segmentation of a whole volume.
    pub fn segment(&self, volume: &Volume) -> Result<Segmentation> {
        let Network::Segmenter(net) = &self.network else {
            return Err(InferenceError::Invalid(format!(
                "{} is a classification model",
                self.pack.manifest.name
            )));
        };
        let spec = &self.pack.manifest.input;
        let x = prepare_volume(volume, spec, &self.device)?.unsqueeze(0)?;
        let patch: [usize; 3] = match spec.size.as_slice() {
            [d, h, w] => [*d, *h, *w],
            other => {
                return Err(InferenceError::Invalid(format!(
                    "a 3D model needs a 3D size, pack says {other:?}"
                )))
            }
        };
        let logits = sliding_window(net.as_ref(), &x, patch, 0.5)?;
        let probs = candle_nn::ops::sigmoid(&logits)?
            .i(0)?
            .to_device(&Device::Cpu)?;
        let voxel_ml = volume.spacing.iter().map(|&s| s as f64).product::<f64>() / 1000.0;
        let mut regions = Vec::new();
        for (k, label) in self.pack.manifest.labels.iter().enumerate() {
            let p = probs.i(k)?.flatten_all()?.to_vec1::<f32>()?;
            let mask: Vec<u8> = p.iter().map(|&v| u8::from(v >= 0.5)).collect();
            let n = mask.iter().filter(|&&m| m == 1).count();
            regions.push((label.clone(), mask, n as f64 * voxel_ml));
        }
        Ok(Segmentation {
            shape: volume.shape,
            regions,
        })
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Window start positions along one axis: the whole axis covered, steps of
/// `patch·(1-overlap)`, the last window flush with the end.
fn starts(len: usize, patch: usize, overlap: f64) -> Vec<usize> {
    if len <= patch {
        return vec![0];
    }
    let step = ((patch as f64 * (1.0 - overlap)).round() as usize).max(1);
    let mut s: Vec<usize> = (0..=len - patch).step_by(step).collect();
    if s.last() != Some(&(len - patch)) {
        s.push(len - patch);
    }
    s
}

/// Runs `net` over patches of `x` (1, C, D, H, W) and averages overlapping
/// logits (MONAI's `sliding_window_inference`, constant weighting). Volumes
/// smaller than a patch are zero-padded and cropped back.
pub fn sliding_window(
    net: &dyn Module,
    x: &Tensor,
    patch: [usize; 3],
    overlap: f64,
) -> Result<Tensor> {
    let (_, _, d, h, w) = x.dims5()?;
    let pd = [
        patch[0].saturating_sub(d),
        patch[1].saturating_sub(h),
        patch[2].saturating_sub(w),
    ];
    let xp = x
        .pad_with_zeros(2, 0, pd[0])?
        .pad_with_zeros(3, 0, pd[1])?
        .pad_with_zeros(4, 0, pd[2])?;
    let (_, _, dd, hh, ww) = xp.dims5()?;
    let mut sum: Option<Tensor> = None;
    let mut count = vec![0f32; dd * hh * ww];
    for &z in &starts(dd, patch[0], overlap) {
        for &y in &starts(hh, patch[1], overlap) {
            for &xx in &starts(ww, patch[2], overlap) {
                let tile = xp
                    .narrow(2, z, patch[0])?
                    .narrow(3, y, patch[1])?
                    .narrow(4, xx, patch[2])?
                    .contiguous()?;
                let out = net.forward(&tile)?;
                let placed = out
                    .pad_with_zeros(2, z, dd - z - patch[0])?
                    .pad_with_zeros(3, y, hh - y - patch[1])?
                    .pad_with_zeros(4, xx, ww - xx - patch[2])?;
                sum = Some(match sum {
                    Some(s) => (s + placed)?,
                    None => placed,
                });
                for a in z..z + patch[0] {
                    for b in y..y + patch[1] {
                        let row = (a * hh + b) * ww;
                        for c in &mut count[row + xx..row + xx + patch[2]] {
                            *c += 1.0;
                        }
                    }
                }
            }
        }
    }
    let sum = sum.ok_or_else(|| InferenceError::Invalid("empty volume".into()))?;
    let count = Tensor::from_vec(count, (1, 1, dd, hh, ww), x.device())?.to_dtype(sum.dtype())?;
    let avg = sum.broadcast_div(&count)?;
    Ok(avg.narrow(2, 0, d)?.narrow(3, 0, h)?.narrow(4, 0, w)?)
}
