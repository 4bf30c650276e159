//! Model packs: a folder with `model.toml` and its weights (DESIGN.md,
//! "Models"). The manifest says what the model is, what it expects, how its
//! outputs are calibrated and thresholded, and what it is for.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::arch::densenet::{DenseNet, DenseNetConfig};
use crate::arch::efficientnet::{EfficientNet, EfficientNetConfig};
use crate::arch::segresnet::{SegResNet, SegResNetConfig};
use crate::arch::Classifier;
use crate::calibration::{validate_calibrations, LabelCalibration};
use crate::error::{InferenceError, Result};
use crate::triage::Threshold;
use crate::weights::{build_from_tensors, load_state_dict, WeightSource};

pub const MANIFEST: &str = "model.toml";
/// What every demo pack says about itself, everywhere it is shown.
pub const DEMO_INTENDED_USE: &str =
    "demonstration only: trained on synthetic phantoms, not for clinical use";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Multi-label image classification (one sigmoid per label).
    Classification,
    /// Per-voxel multi-label segmentation (one sigmoid per region).
    Segmentation,
}

/// The architecture and its hyper-parameters, tagged by name in TOML:
/// `[arch] name = "densenet121"` plus the variant's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum ArchSpec {
    Densenet121(DenseNetConfig),
    Efficientnet(EfficientNetVariant),
    Segresnet(SegResNetConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficientNetVariant {
    /// 0..=7 for B0…B7.
    pub variant: u8,
    pub in_channels: usize,
    pub num_classes: usize,
}

impl ArchSpec {
    /// Short name as `models list` shows it: `densenet121`, `efficientnet-b0`, `segresnet`.
    pub fn label(&self) -> String {
        match self {
            ArchSpec::Densenet121(_) => "densenet121".into(),
            ArchSpec::Efficientnet(v) => format!("efficientnet-b{}", v.variant),
            ArchSpec::Segresnet(_) => "segresnet".into(),
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            ArchSpec::Densenet121(c) => c.num_classes,
            ArchSpec::Efficientnet(v) => v.num_classes,
            ArchSpec::Segresnet(c) => c.out_channels,
        }
    }

    pub fn in_channels(&self) -> usize {
        match self {
            ArchSpec::Densenet121(c) => c.in_channels,
            ArchSpec::Efficientnet(v) => v.in_channels,
            ArchSpec::Segresnet(c) => c.in_channels,
        }
    }

    /// The network, its weights from `vb`: a weights file, a `VarMap` for
    /// training, or a dry run listing the tensors it needs.
    pub fn network(&self, vb: VarBuilder) -> candle_core::Result<Network> {
        Ok(match self {
            ArchSpec::Densenet121(c) => Network::Classifier(Box::new(DenseNet::new(c, vb)?)),
            ArchSpec::Efficientnet(v) => {
                let c = Self::efficientnet_config(v)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                Network::Classifier(Box::new(EfficientNet::new(&c, vb)?))
            }
            ArchSpec::Segresnet(c) => Network::Segmenter(Box::new(SegResNet::new(c, vb)?)),
        })
    }

    pub fn efficientnet_config(v: &EfficientNetVariant) -> Result<EfficientNetConfig> {
        EfficientNetConfig::b(v.variant, v.in_channels, v.num_classes).ok_or_else(|| {
            InferenceError::Invalid(format!(
                "EfficientNet-B{} does not exist (B0-B7)",
                v.variant
            ))
        })
    }
}

/// How pixels become the network's input, and what they must look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Preprocessing {
    /// CT in Hounsfield units, one channel per (centre, width) window,
    /// each mapped to [0, 1] and then standardised with `mean` / `std`.
    CtWindows {
        windows: Vec<[f32; 2]>,
        mean: f32,
        std: f32,
    },
    /// Radiograph intensities in [0, 1] (display-ready, MONOCHROME2),
    /// standardised with `mean` / `std`.
    Radiograph { mean: f32, std: f32 },
    /// MRI sequences, each z-scored over its non-zero (brain) voxels.
    MriZscore { sequences: Vec<String> },
}

/// Input as the model was trained on it: spatial size and a plausibility
/// range for the raw values it receives (before preprocessing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// (H, W) for 2D, (D, H, W) for 3D.
    pub size: Vec<usize>,
    pub channels: usize,
    /// Raw values below/above this range on more than 1 % of pixels, or a
    /// spread below `min_std`, mean the caller sent something else
    /// (display pixels to a HU model, unnormalised counts, a blank image).
    pub raw_range: [f32; 2],
    pub min_std: f32,
    pub preprocessing: Preprocessing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub task: Task,
    pub modality: String,
    pub body_part: String,
    pub labels: Vec<String>,
    pub intended_use: String,
    pub license: String,
    pub source: String,
    /// Weights file, relative to the pack folder.
    pub weights: String,
    pub weights_sha256: String,
    #[serde(default = "default_source")]
    pub weights_source: WeightSource,
    pub arch: ArchSpec,
    pub input: InputSpec,
    /// Per label (empty: raw sigmoid probabilities).
    #[serde(default)]
    pub calibration: Vec<LabelCalibration>,
    /// Per label (empty for segmenters).
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// Held-out metrics written by training (name → value).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
}

fn default_source() -> WeightSource {
    WeightSource::Native
}

impl Manifest {
    /// Parses and checks the fields that do not need the weights.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let m: Manifest = toml::from_str(text).map_err(|e| InferenceError::Pack {
            path: path.to_path_buf(),
            reason: format!("model.toml is not valid: {e}"),
        })?;
        let bad = |reason: String| InferenceError::Pack {
            path: path.to_path_buf(),
            reason,
        };
        if m.name.trim().is_empty() || m.version.trim().is_empty() {
            return Err(bad("name and version must not be empty".into()));
        }
        if m.labels.is_empty() {
            return Err(bad("labels must not be empty".into()));
        }
        if m.labels.len() != m.arch.outputs() {
            return Err(bad(format!(
                "{} labels but the architecture has {} outputs",
                m.labels.len(),
                m.arch.outputs()
            )));
        }
        if m.input.channels != m.arch.in_channels() {
            return Err(bad(format!(
                "input has {} channels but the architecture expects {}",
                m.input.channels,
                m.arch.in_channels()
            )));
        }
        let spatial = match m.task {
            Task::Classification => 2,
            Task::Segmentation => 3,
        };
        if m.input.size.len() != spatial || m.input.size.contains(&0) {
            return Err(bad(format!(
                "input size {:?} must have {spatial} non-zero sides",
                m.input.size
            )));
        }
        if m.weights_sha256.len() != 64 || !m.weights_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad("weights_sha256 must be 64 hex digits".into()));
        }
        if m.weights.contains("..") || Path::new(&m.weights).is_absolute() {
            return Err(bad("weights must be a file inside the pack folder".into()));
        }
        validate_calibrations(&m.calibration).map_err(|e| bad(format!("calibration: {e}")))?;
        for c in &m.calibration {
            if !m.labels.contains(&c.label) {
                return Err(bad(format!("calibration for unknown label `{}`", c.label)));
            }
        }
        for t in &m.thresholds {
            if !m.labels.contains(&t.label) {
                return Err(bad(format!("threshold for unknown label `{}`", t.label)));
            }
            if !(t.positive_at > 0.0 && t.positive_at < 1.0) {
                return Err(bad(format!(
                    "threshold for `{}` must lie in (0, 1)",
                    t.label
                )));
            }
        }
        if m.intended_use.trim().is_empty() {
            return Err(bad("intended_use must say what the model is for".into()));
        }
        Ok(m)
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| InferenceError::Invalid(format!("model.toml: {e}")))
    }
}

/// A pack on disk: its folder and parsed manifest.
#[derive(Debug, Clone)]
pub struct ModelPack {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// A loaded network, ready to run.
pub enum Network {
    Classifier(Box<dyn Classifier>),
    Segmenter(Box<SegResNet>),
}

impl ModelPack {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| InferenceError::io(&path, e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest: Manifest::parse(&text, &path)?,
        })
    }

    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.weights)
    }

    /// Recomputes the weights' sha256 and compares it with the manifest.
    pub fn verify(&self) -> Result<()> {
        let path = self.weights_path();
        let found = sha256_file(&path)?;
        if !found.eq_ignore_ascii_case(&self.manifest.weights_sha256) {
            return Err(InferenceError::Checksum {
                path,
                expected: self.manifest.weights_sha256.clone(),
                found,
            });
        }
        Ok(())
    }

    /// Verifies, reads and builds the network on `device`.
    pub fn load(&self, device: &Device, dtype: DType) -> Result<Network> {
        self.verify()?;
        let tensors = load_state_dict(&self.weights_path(), self.manifest.weights_source)?;
        let arch = &self.manifest.arch;
        build_from_tensors(&arch.label(), tensors, dtype, device, |vb| arch.network(vb))
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| InferenceError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| InferenceError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
