//! The demo packs: one model per architecture, trained here with candle on
//! synthetic phantoms, evaluated on held-out phantoms, calibrated on a
//! validation split, and labelled as what they are.
//!
//! Training data are drawn fresh every step (the generators are infinite),
//! validation and test sets come from their own seeds, and every image goes
//! through the same `preprocess` code as inference does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::arch::densenet::DenseNetConfig;
use crate::arch::segresnet::{SegResNet, SegResNetConfig, UpsampleMode};
use crate::arch::Classifier;
use crate::calibration::{self, LabelCalibration, MethodKind};
use crate::error::{InferenceError, Result};
use crate::gradcam::{class_activation_maps, CamMethod};
use crate::metrics::{auroc, dice};
use crate::pack::{
    sha256_file, ArchSpec, EfficientNetVariant, InputSpec, Manifest, ModelPack, Network,
    Preprocessing, Task, DEMO_INTENDED_USE, MANIFEST,
};
use crate::phantom::{self, LesionBox};
use crate::preprocess::{prepare_plane, prepare_volume, Plane, Volume};
use crate::registry::{sigmoid, sliding_window};
use crate::train::{train_classifier, train_segmenter, Schedule};
use crate::triage::{Threshold, Urgency};

/// Bumped whenever training or the phantoms change, so cached packs retrain.
pub const TRAINER_VERSION: &str = "demo-trainer-1";

/// How much each demo model trains and is tested on.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoBudget {
    pub image_size: usize,
    pub volume_size: usize,
    pub batch: usize,
    pub cxr_steps: usize,
    pub ich_steps: usize,
    pub seg_steps: usize,
    pub seg_batch: usize,
    pub validation_images: usize,
    pub test_images: usize,
    pub test_volumes: usize,
}

impl Default for DemoBudget {
    /// Sized for the set-up of the demo on a 2-core machine.
    fn default() -> Self {
        Self {
            image_size: 64,
            volume_size: 32,
            batch: 16,
            cxr_steps: 60,
            ich_steps: 80,
            seg_steps: 60,
            seg_batch: 2,
            validation_images: 160,
            test_images: 200,
            test_volumes: 6,
        }
    }
}

impl DemoBudget {
    /// Long enough for every planted finding to be learned (the quality
    /// checks of demo_quality.rs); for a GPU or an overnight CPU run.
    pub fn full() -> Self {
        Self {
            cxr_steps: 800,
            ich_steps: 800,
            seg_steps: 300,
            validation_images: 400,
            test_images: 400,
            test_volumes: 12,
            ..Self::default()
        }
    }

    fn fingerprint(&self, seed: u64) -> String {
        format!(
            "{TRAINER_VERSION}; seed {seed}; {}px/{}^3; batch {}; steps cxr {} ich {} seg {}x{}; val {} test {}/{}",
            self.image_size,
            self.volume_size,
            self.batch,
            self.cxr_steps,
            self.ich_steps,
            self.seg_steps,
            self.seg_batch,
            self.validation_images,
            self.test_images,
            self.test_volumes
        )
    }
}

pub const CXR_PACK: &str = "demo-cxr-densenet121";
pub const ICH_PACK: &str = "demo-ich-efficientnet-b0";
pub const SEG_PACK: &str = "demo-brats-segresnet";

/// Trains (or reuses, when a pack with the same fingerprint verifies) the
/// three demo packs under `out`.
pub fn train_demo(
    out: &Path,
    budget: &DemoBudget,
    seed: u64,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<ModelPack>> {
    std::fs::create_dir_all(out).map_err(|e| InferenceError::io(out, e))?;
    let fp = budget.fingerprint(seed);
    let mut packs = Vec::new();
    for (name, train) in [
        (
            CXR_PACK,
            train_cxr
                as fn(&Path, &DemoBudget, u64, &str, &mut dyn FnMut(&str)) -> Result<ModelPack>,
        ),
        (ICH_PACK, train_ich),
        (SEG_PACK, train_seg),
    ] {
        let dir = out.join(name);
        if let Ok(p) = ModelPack::open(&dir) {
            if p.manifest.source.ends_with(&fp) && p.verify().is_ok() {
                log(&format!("{name}: up to date, reused"));
                packs.push(p);
                continue;
            }
        }
        log(&format!("{name}: training"));
        packs.push(train(&dir, budget, seed, &fp, log)?);
    }
    Ok(packs)
}

/// One labelled 2D phantom: raw pixels (HU or 0..1), labels, lesion boxes.
struct Sample {
    pixels: Vec<f32>,
    labels: Vec<bool>,
    boxes: Vec<LesionBox>,
}

struct ClassifierTask<'a> {
    name: &'a str,
    labels: &'static [&'static str],
    modality: &'a str,
    body_part: &'a str,
    arch: ArchSpec,
    input: InputSpec,
    steps: usize,
    lr: f64,
    generate: fn(&mut StdRng, usize) -> Sample,
    /// Urgency when a label is positive.
    urgency: fn(&str) -> Urgency,
}

fn train_cxr(
    dir: &Path,
    b: &DemoBudget,
    seed: u64,
    fp: &str,
    log: &mut dyn FnMut(&str),
) -> Result<ModelPack> {
    let task = ClassifierTask {
        name: CXR_PACK,
        labels: &phantom::CXR_LABELS,
        modality: "DX",
        body_part: "CHEST",
        arch: ArchSpec::Densenet121(DenseNetConfig::densenet121(1, phantom::CXR_LABELS.len())),
        input: InputSpec {
            size: vec![b.image_size, b.image_size],
            channels: 1,
            raw_range: [0.0, 1.0],
            min_std: 0.02,
            preprocessing: Preprocessing::Radiograph {
                mean: 0.5,
                std: 0.25,
            },
        },
        steps: b.cxr_steps,
        lr: 2e-3,
        generate: |rng, size| {
            let x = phantom::chest_xray(rng, size, 0.7);
            Sample {
                pixels: x.pixels,
                labels: x.labels.to_vec(),
                boxes: x.boxes,
            }
        },
        urgency: |l| {
            if l == "pneumothorax" {
                Urgency::Stat
            } else {
                Urgency::Priority
            }
        },
    };
    train_classifier_pack(dir, b, seed, fp, &task, log)
}

fn train_ich(
    dir: &Path,
    b: &DemoBudget,
    seed: u64,
    fp: &str,
    log: &mut dyn FnMut(&str),
) -> Result<ModelPack> {
    let task = ClassifierTask {
        name: ICH_PACK,
        labels: &phantom::ICH_LABELS,
        modality: "CT",
        body_part: "HEAD",
        arch: ArchSpec::Efficientnet(EfficientNetVariant {
            variant: 0,
            in_channels: 3,
            num_classes: phantom::ICH_LABELS.len(),
        }),
        input: InputSpec {
            size: vec![b.image_size, b.image_size],
            channels: 3,
            raw_range: [-1100.0, 3100.0],
            min_std: 5.0,
            // Brain, subdural and bone windows as the three channels.
            preprocessing: Preprocessing::CtWindows {
                windows: vec![[40.0, 80.0], [80.0, 200.0], [600.0, 2800.0]],
                mean: 0.3,
                std: 0.35,
            },
        },
        steps: b.ich_steps,
        lr: 3e-3,
        generate: |rng, size| {
            let x = phantom::head_ct(rng, size, 0.6);
            Sample {
                pixels: x.hu,
                labels: x.labels.to_vec(),
                boxes: x.boxes,
            }
        },
        urgency: |l| match l {
            "any" | "epidural" | "subdural" => Urgency::Stat,
            _ => Urgency::Urgent,
        },
    };
    train_classifier_pack(dir, b, seed, fp, &task, log)
}

fn build_classifier(arch: &ArchSpec, vb: VarBuilder) -> Result<Box<dyn Classifier>> {
    match arch.network(vb)? {
        Network::Classifier(c) => Ok(c),
        Network::Segmenter(_) => Err(InferenceError::Invalid("not a classifier".into())),
    }
}

fn batch_tensor(
    samples: &[Sample],
    input: &InputSpec,
    size: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let xs = samples
        .iter()
        .map(|s| {
            prepare_plane(
                &Plane {
                    values: &s.pixels,
                    width: size,
                    height: size,
                },
                input,
                device,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let k = samples.first().map_or(0, |s| s.labels.len());
    let ys: Vec<f32> = samples
        .iter()
        .flat_map(|s| s.labels.iter().map(|&l| f32::from(u8::from(l))))
        .collect();
    Ok((
        Tensor::stack(&xs, 0)?,
        Tensor::from_vec(ys, (samples.len(), k), device)?,
    ))
}

fn logits_of(
    model: &dyn Classifier,
    samples: &[Sample],
    input: &InputSpec,
    size: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(32) {
        let (x, _) = batch_tensor(chunk, input, size, device)?;
        out.extend(model.forward(&x)?.to_vec2::<f32>()?);
    }
    Ok(out)
}

fn train_classifier_pack(
    dir: &Path,
    b: &DemoBudget,
    seed: u64,
    fp: &str,
    task: &ClassifierTask,
    log: &mut dyn FnMut(&str),
) -> Result<ModelPack> {
    let device = Device::Cpu;
    let size = b.image_size;
    let varmap = VarMap::new();
    let model = build_classifier(
        &task.arch,
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
    )?;
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let schedule = Schedule {
        steps: task.steps,
        warmup: (task.steps / 10).max(1),
        lr: task.lr,
        weight_decay: 1e-4,
    };
    let gen = task.generate;
    train_classifier(
        model.as_ref(),
        &varmap,
        schedule,
        |_| {
            let batch: Vec<Sample> = (0..b.batch).map(|_| gen(&mut rng, size)).collect();
            batch_tensor(&batch, &task.input, size, &device)
        },
        |step, loss| {
            if step % 10 == 0 || step + 1 == task.steps {
                log(&format!(
                    "{}: step {}/{} loss {loss:.4}",
                    task.name,
                    step + 1,
                    task.steps
                ));
            }
        },
    )?;
    let train_seconds = started.elapsed().as_secs_f64();

    // Validation (calibration, thresholds) and test (reported metrics) sets.
    let mut vrng = StdRng::seed_from_u64(seed ^ 0x5641_4c49);
    let val: Vec<Sample> = (0..b.validation_images)
        .map(|_| gen(&mut vrng, size))
        .collect();
    let mut trng = StdRng::seed_from_u64(seed ^ 0x5445_5354);
    let test: Vec<Sample> = (0..b.test_images).map(|_| gen(&mut trng, size)).collect();
    let val_logits = logits_of(model.as_ref(), &val, &task.input, size, &device)?;
    let test_logits = logits_of(model.as_ref(), &test, &task.input, size, &device)?;

    let mut metrics = BTreeMap::new();
    let mut calibrations = Vec::new();
    let mut thresholds = Vec::new();
    for (k, label) in task.labels.iter().enumerate() {
        let vl: Vec<f32> = val_logits.iter().map(|r| r[k]).collect();
        let vy: Vec<bool> = val.iter().map(|s| s.labels[k]).collect();
        let tl: Vec<f32> = test_logits.iter().map(|r| r[k]).collect();
        let ty: Vec<bool> = test.iter().map(|s| s.labels[k]).collect();
        let (method, report) = calibration::fit(MethodKind::Temperature, &vl, &vy)?;
        let raw: Vec<f32> = tl.iter().map(|&l| sigmoid(l)).collect();
        let cal: Vec<f32> = tl.iter().map(|&l| method.apply(l)).collect();
        if let Some(a) = auroc(&raw, &ty) {
            metrics.insert(format!("auroc.{label}"), round4(a));
        }
        metrics.insert(
            format!("ece_raw.{label}"),
            round4(calibration::expected_calibration_error(&raw, &ty, 10)?),
        );
        metrics.insert(
            format!("ece_calibrated.{label}"),
            round4(calibration::expected_calibration_error(&cal, &ty, 10)?),
        );
        // Threshold: the calibrated probability that maximises Youden's J
        // on the validation set.
        let vcal: Vec<f32> = vl.iter().map(|&l| method.apply(l)).collect();
        let positive_at = youden_threshold(&vcal, &vy);
        thresholds.push(Threshold {
            label: label.to_string(),
            positive_at,
            urgency_if_positive: (task.urgency)(label),
        });
        calibrations.push(LabelCalibration {
            label: label.to_string(),
            method,
            report: Some(report),
        });
    }

    // Pointing game on every positive test finding that has a box.
    let mut hits_total = (0usize, 0usize);
    for (k, label) in task.labels.iter().enumerate() {
        let (mut hits, mut total) = (0usize, 0usize);
        for s in test.iter().filter(|s| s.labels[k]) {
            let boxes: Vec<&LesionBox> = s.boxes.iter().filter(|bx| bx.label == k).collect();
            if boxes.is_empty() {
                continue;
            }
            let x = prepare_plane(
                &Plane {
                    values: &s.pixels,
                    width: size,
                    height: size,
                },
                &task.input,
                &device,
            )?
            .unsqueeze(0)?;
            let map = &class_activation_maps(model.as_ref(), &x, k, CamMethod::GradCam)?[0];
            let tol = map.cell.0.max(map.cell.1) / 2.0;
            total += 1;
            if boxes
                .iter()
                .any(|bx| map.points_into(bx.x0, bx.y0, bx.x1, bx.y1, tol))
            {
                hits += 1;
            }
        }
        if total > 0 {
            metrics.insert(
                format!("pointing_game.{label}"),
                round4(hits as f64 / total as f64),
            );
        }
        hits_total.0 += hits;
        hits_total.1 += total;
    }
    if hits_total.1 > 0 {
        metrics.insert(
            "pointing_game".into(),
            round4(hits_total.0 as f64 / hits_total.1 as f64),
        );
    }
    metrics.insert("train_steps".into(), task.steps as f64);
    metrics.insert("train_seconds".into(), train_seconds.round());
    metrics.insert("test_images".into(), b.test_images as f64);
    for line in metrics
        .iter()
        .filter(|(k, _)| k.starts_with("auroc") || k.starts_with("pointing"))
    {
        log(&format!("{}: {} = {}", task.name, line.0, line.1));
    }

    let manifest = Manifest {
        name: task.name.to_string(),
        version: "1.0.0".into(),
        task: Task::Classification,
        modality: task.modality.into(),
        body_part: task.body_part.into(),
        labels: task.labels.iter().map(|s| s.to_string()).collect(),
        intended_use: DEMO_INTENDED_USE.into(),
        license: "AGPL-3.0-or-later (weights trained by MedVision on synthetic phantoms)".into(),
        source: format!("trained by `medvision models train-demo`; {fp}"),
        weights: "model.safetensors".into(),
        weights_sha256: String::new(),
        weights_source: crate::weights::WeightSource::Native,
        arch: task.arch.clone(),
        input: task.input.clone(),
        calibration: calibrations,
        thresholds,
        metrics,
    };
    write_pack(dir, &varmap, manifest)
}

fn youden_threshold(probs: &[f32], labels: &[bool]) -> f32 {
    let pos = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let neg = labels.iter().filter(|&&l| !l).count().max(1) as f64;
    let mut best = (f64::MIN, 0.5f32);
    for &t in probs {
        let tp = probs
            .iter()
            .zip(labels)
            .filter(|(p, l)| **l && **p >= t)
            .count() as f64;
        let tn = probs
            .iter()
            .zip(labels)
            .filter(|(p, l)| !**l && **p < t)
            .count() as f64;
        let j = tp / pos + tn / neg - 1.0;
        if j > best.0 {
            best = (j, t);
        }
    }
    // Thresholds live strictly inside (0, 1).
    best.1.clamp(0.01, 0.99)
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Writes a pack folder (manifest + weights) atomically: also how tests make
/// small packs of their own.
pub fn write_pack(dir: &Path, varmap: &VarMap, mut manifest: Manifest) -> Result<ModelPack> {
    // Written to a sibling folder and renamed, so an interrupted run never
    // leaves a pack whose manifest and weights disagree.
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| InferenceError::io(&tmp, e))?;
    let weights = tmp.join(&manifest.weights);
    varmap.save(&weights)?;
    manifest.weights_sha256 = sha256_file(&weights)?;
    let toml = manifest.to_toml()?;
    let path = tmp.join(MANIFEST);
    std::fs::write(&path, toml).map_err(|e| InferenceError::io(&path, e))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(|e| InferenceError::io(dir, e))?;
    ModelPack::open(dir)
}

fn brats_volume(m: &phantom::BrainMri) -> Volume {
    Volume {
        shape: m.shape,
        channels: m.channels.to_vec(),
        spacing: [1.0, 1.0, 1.0],
    }
}

fn train_seg(
    dir: &Path,
    b: &DemoBudget,
    seed: u64,
    fp: &str,
    log: &mut dyn FnMut(&str),
) -> Result<ModelPack> {
    let device = Device::Cpu;
    let n = b.volume_size;
    let config = SegResNetConfig {
        in_channels: 4,
        out_channels: 3,
        // MONAI's default width (BraTS bundles use 16); the blocks, norms
        // and skips are the full architecture.
        init_filters: 8,
        blocks_down: vec![1, 2, 2, 4],
        blocks_up: vec![1, 1, 1],
        num_groups: 8,
        upsample_mode: UpsampleMode::Nontrainable,
    };
    let input = InputSpec {
        size: vec![n, n, n],
        channels: 4,
        raw_range: [0.0, f32::MAX],
        min_std: 1e-3,
        preprocessing: Preprocessing::MriZscore {
            sequences: phantom::MRI_SEQUENCES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
    };
    let varmap = VarMap::new();
    let model = SegResNet::new(
        &config,
        VarBuilder::from_varmap(&varmap, DType::F32, &device),
    )?;
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4d52);
    let started = Instant::now();
    let schedule = Schedule {
        steps: b.seg_steps,
        warmup: (b.seg_steps / 10).max(1),
        lr: 3e-3,
        weight_decay: 1e-5,
    };
    train_segmenter(
        &model,
        &varmap,
        schedule,
        |_| {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for _ in 0..b.seg_batch {
                let m = phantom::brain_mri(&mut rng, n);
                xs.push(prepare_volume(&brats_volume(&m), &input, &device)?);
                let masks: Vec<f32> = m
                    .region_masks()
                    .iter()
                    .flat_map(|r| r.iter().map(|&v| f32::from(v)))
                    .collect();
                ys.push(Tensor::from_vec(masks, (3, n, n, n), &device)?);
            }
            Ok((Tensor::stack(&xs, 0)?, Tensor::stack(&ys, 0)?))
        },
        |step, loss| {
            if step % 10 == 0 || step + 1 == b.seg_steps {
                log(&format!(
                    "{SEG_PACK}: step {}/{} loss {loss:.4}",
                    step + 1,
                    b.seg_steps
                ));
            }
        },
    )?;
    let train_seconds = started.elapsed().as_secs_f64();

    let mut trng = StdRng::seed_from_u64(seed ^ 0x5445_5354_4d52);
    let mut sums = [0f64; 3];
    for _ in 0..b.test_volumes {
        let m = phantom::brain_mri(&mut trng, n);
        let x = prepare_volume(&brats_volume(&m), &input, &device)?.unsqueeze(0)?;
        let logits = sliding_window(&model as &dyn Module, &x, [n, n, n], 0.5)?;
        let probs = candle_nn::ops::sigmoid(&logits)?.squeeze(0)?;
        for (k, truth) in m.region_masks().iter().enumerate() {
            let p = probs.get(k)?.flatten_all()?.to_vec1::<f32>()?;
            let pred: Vec<u8> = p.iter().map(|&v| u8::from(v >= 0.5)).collect();
            sums[k] += dice(&pred, truth);
        }
    }
    let mut metrics = BTreeMap::new();
    for (k, region) in phantom::BRATS_REGIONS.iter().enumerate() {
        let d = sums[k] / b.test_volumes.max(1) as f64;
        metrics.insert(format!("dice.{region}"), round4(d));
        log(&format!("{SEG_PACK}: dice.{region} = {d:.4}"));
    }
    metrics.insert("train_steps".into(), b.seg_steps as f64);
    metrics.insert("train_seconds".into(), train_seconds.round());
    metrics.insert("test_volumes".into(), b.test_volumes as f64);
    let manifest = Manifest {
        name: SEG_PACK.into(),
        version: "1.0.0".into(),
        task: Task::Segmentation,
        modality: "MR".into(),
        body_part: "BRAIN".into(),
        labels: phantom::BRATS_REGIONS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        intended_use: DEMO_INTENDED_USE.into(),
        license: "AGPL-3.0-or-later (weights trained by MedVision on synthetic phantoms)".into(),
        source: format!("trained by `medvision models train-demo`; {fp}"),
        weights: "model.safetensors".into(),
        weights_sha256: String::new(),
        weights_source: crate::weights::WeightSource::Native,
        arch: ArchSpec::Segresnet(config),
        input,
        calibration: Vec::new(),
        thresholds: Vec::new(),
        metrics,
    };
    write_pack(dir, &varmap, manifest)
}

/// Where `train-demo` puts packs by default, under a data folder.
pub fn default_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models")
}
