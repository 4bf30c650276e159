//! Model packs and the registry: manifests, sha256 verification, lazy
//! loading, selection, and refusal of input that cannot be right.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use inference::arch::densenet::{DenseNet, DenseNetConfig};
use inference::arch::segresnet::{SegResNet, SegResNetConfig, UpsampleMode};
use inference::pack::{
    sha256_file, ArchSpec, InputSpec, Manifest, ModelPack, Preprocessing, Task, MANIFEST,
};
use inference::preprocess::{Plane, Volume};
use inference::registry::{sliding_window, Registry};
use inference::triage::{Threshold, ThresholdOverride, Urgency};
use inference::weights::WeightSource;
use inference::InferenceError;

fn small_densenet(channels: usize) -> DenseNetConfig {
    DenseNetConfig {
        in_channels: channels,
        num_classes: 2,
        growth_rate: 4,
        block_config: vec![1, 1],
        num_init_features: 8,
        bn_size: 2,
    }
}

fn write_pack(
    dir: &Path,
    name: &str,
    version: &str,
    modality: &str,
    preprocessing: Preprocessing,
    channels: usize,
) {
    let vm = VarMap::new();
    DenseNet::new(
        &small_densenet(channels),
        VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let pack = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&pack).unwrap();
    vm.save(pack.join("w.safetensors")).unwrap();
    let raw_range = match preprocessing {
        Preprocessing::CtWindows { .. } => [-1100.0, 3100.0],
        _ => [0.0, 1.0],
    };
    let m = Manifest {
        name: name.into(),
        version: version.into(),
        task: Task::Classification,
        modality: modality.into(),
        body_part: "CHEST".into(),
        labels: vec!["a".into(), "b".into()],
        intended_use: "test".into(),
        license: "test".into(),
        source: "test".into(),
        weights: "w.safetensors".into(),
        weights_sha256: sha256_file(&pack.join("w.safetensors")).unwrap(),
        weights_source: WeightSource::Native,
        arch: ArchSpec::Densenet121(small_densenet(channels)),
        input: InputSpec {
            size: vec![32, 32],
            channels,
            raw_range,
            min_std: 0.01,
            preprocessing,
        },
        calibration: vec![],
        thresholds: vec![
            Threshold {
                label: "a".into(),
                positive_at: 0.5,
                urgency_if_positive: Urgency::Stat,
            },
            Threshold {
                label: "b".into(),
                positive_at: 0.5,
                urgency_if_positive: Urgency::Priority,
            },
        ],
        metrics: Default::default(),
    };
    std::fs::write(pack.join(MANIFEST), m.to_toml().unwrap()).unwrap();
}

fn xray() -> Preprocessing {
    Preprocessing::Radiograph {
        mean: 0.5,
        std: 0.25,
    }
}

fn ct() -> Preprocessing {
    Preprocessing::CtWindows {
        windows: vec![[40.0, 80.0]],
        mean: 0.0,
        std: 1.0,
    }
}

#[test]
fn registry_lists_selects_newest_and_loads_once() {
    let d = tempfile::tempdir().unwrap();
    write_pack(d.path(), "cxr", "1.2.0", "DX", xray(), 1);
    write_pack(d.path(), "cxr", "1.10.0", "DX", xray(), 1);
    write_pack(d.path(), "head", "1.0.0", "CT", ct(), 1);
    let reg = Registry::scan(d.path(), Device::Cpu).unwrap();
    assert_eq!(reg.packs().len(), 3);
    let chosen = reg.select("dx", "chest", Task::Classification).unwrap();
    assert_eq!(
        chosen.manifest.version, "1.10.0",
        "numeric, not string, version order"
    );
    assert!(reg.select("MR", "CHEST", Task::Classification).is_none());
    let json = serde_json::to_value(reg.summaries()).unwrap();
    let first = &json[0];
    for key in [
        "name",
        "version",
        "arch",
        "task",
        "modality",
        "body_part",
        "labels",
        "intended_use",
        "sha256",
    ] {
        assert!(first.get(key).is_some(), "models list --json has {key}");
    }
    let a = reg.load("head").unwrap();
    let b = reg.load("head").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b), "loaded once, shared");
}

#[test]
fn a_changed_weights_file_fails_verification_and_loading() {
    let d = tempfile::tempdir().unwrap();
    write_pack(d.path(), "cxr", "1.0.0", "DX", xray(), 1);
    let dir = d.path().join("cxr-1.0.0");
    let w = dir.join("w.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&w, &bytes).unwrap();
    let pack = ModelPack::open(&dir).unwrap();
    assert!(matches!(
        pack.verify(),
        Err(InferenceError::Checksum { .. })
    ));
    let reg = Registry::scan(d.path(), Device::Cpu).unwrap();
    let err = reg.load("cxr").err().unwrap();
    assert!(err.to_string().contains("sha256"), "{err}");
}

#[test]
fn a_corrupt_weights_file_is_an_error_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    write_pack(d.path(), "cxr", "1.0.0", "DX", xray(), 1);
    let dir = d.path().join("cxr-1.0.0");
    let w = dir.join("w.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    // The manifest is updated to the truncated file's hash: the reader, not
    // the checksum, must catch it.
    let text = std::fs::read_to_string(dir.join(MANIFEST)).unwrap();
    let old = ModelPack::open(&dir).unwrap().manifest.weights_sha256;
    std::fs::write(
        dir.join(MANIFEST),
        text.replace(&old, &sha256_file(&w).unwrap()),
    )
    .unwrap();
    let err = ModelPack::open(&dir)
        .unwrap()
        .load(&Device::Cpu, DType::F32)
        .err()
        .unwrap();
    assert!(
        matches!(err, InferenceError::CorruptWeights { .. }),
        "{err}"
    );
    // Not weights at all.
    std::fs::write(&w, b"hello, this is not a tensor file").unwrap();
    let err = inference::weights::read_tensors(&w).unwrap_err();
    assert!(err.to_string().contains("neither safetensors nor"), "{err}");
}

#[test]
fn a_broken_manifest_does_not_hide_the_other_packs() {
    let d = tempfile::tempdir().unwrap();
    write_pack(d.path(), "cxr", "1.0.0", "DX", xray(), 1);
    let bad = d.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join(MANIFEST), "name = \"x\"\nlabels = 3\n").unwrap();
    let reg = Registry::scan(d.path(), Device::Cpu).unwrap();
    assert_eq!(reg.packs().len(), 1);
    assert_eq!(reg.broken().len(), 1);
    assert!(
        reg.broken()[0].1.contains("not valid"),
        "{}",
        reg.broken()[0].1
    );
}

#[test]
fn input_that_cannot_be_right_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write_pack(d.path(), "cxr", "1.0.0", "DX", xray(), 1);
    write_pack(d.path(), "head", "1.0.0", "CT", ct(), 1);
    let reg = Registry::scan(d.path(), Device::Cpu).unwrap();
    let cxr = reg.load("cxr").unwrap();
    let head = reg.load("head").unwrap();
    let plane = |v: &'static [f32], w, h| Plane {
        values: v,
        width: w,
        height: h,
    };
    let ok: Vec<f32> = (0..64 * 64).map(|i| (i % 64) as f32 / 64.0).collect();
    let ok: &'static [f32] = Box::leak(ok.into_boxed_slice());
    let scores = cxr.classify(&[plane(ok, 64, 64)]).unwrap();
    assert_eq!(scores[0].len(), 2);
    // NaN anywhere.
    let mut nan = ok.to_vec();
    nan[100] = f32::NAN;
    let nan: &'static [f32] = Box::leak(nan.into_boxed_slice());
    assert!(cxr
        .classify(&[plane(nan, 64, 64)])
        .unwrap_err()
        .to_string()
        .contains("NaN"));
    // Unnormalised 0..255 pixels for a 0..1 radiograph model.
    let raw: &'static [f32] = Box::leak(
        ok.iter()
            .map(|v| v * 255.0)
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let err = cxr.classify(&[plane(raw, 64, 64)]).unwrap_err().to_string();
    assert!(err.contains("outside 0..1"), "{err}");
    // Display pixels (0..255) for a Hounsfield-unit model: no air.
    let err = head
        .classify(&[plane(raw, 64, 64)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("Hounsfield"), "{err}");
    // A blank image.
    let blank: &'static [f32] = Box::leak(vec![0.5f32; 64 * 64].into_boxed_slice());
    assert!(cxr
        .classify(&[plane(blank, 64, 64)])
        .unwrap_err()
        .to_string()
        .contains("constant"));
    // Pixel count not matching the stated size.
    assert!(cxr.classify(&[plane(ok, 32, 64)]).is_err());
    // An empty image.
    assert!(cxr.classify(&[plane(&[], 0, 0)]).is_err());
    // A classifier asked to segment.
    let v = Volume {
        shape: [4, 4, 4],
        channels: vec![vec![1.0; 64]],
        spacing: [1.0; 3],
    };
    assert!(cxr.segment(&v).is_err());
}

#[test]
fn thresholds_and_site_overrides_decide_urgency() {
    let d = tempfile::tempdir().unwrap();
    write_pack(d.path(), "cxr", "1.0.0", "DX", xray(), 1);
    let reg = Registry::scan(d.path(), Device::Cpu).unwrap();
    let m = reg.load("cxr").unwrap();
    let ok: Vec<f32> = (0..64 * 64).map(|i| (i % 64) as f32 / 64.0).collect();
    let scores = &m
        .classify(&[Plane {
            values: &ok,
            width: 64,
            height: 64,
        }])
        .unwrap()[0];
    let p = scores[0].probability;
    // A site threshold just below the score makes `a` positive and STAT.
    let below = ThresholdOverride {
        label: "a".into(),
        positive_at: Some((p - 0.01).clamp(0.001, 0.999)),
        urgency_if_positive: None,
    };
    let above = ThresholdOverride {
        label: "a".into(),
        positive_at: Some((p + 0.01).clamp(0.001, 0.999)),
        urgency_if_positive: None,
    };
    let high = ThresholdOverride {
        label: "b".into(),
        positive_at: Some(0.999),
        urgency_if_positive: None,
    };
    let yes = m.assess(scores, &[below, high.clone()]).unwrap();
    assert!(yes.findings[0].positive);
    assert_eq!(yes.urgency, Urgency::Stat);
    let no = m.assess(scores, &[above, high]).unwrap();
    assert!(!no.findings[0].positive);
    assert_eq!(no.urgency, Urgency::Routine);
}

#[test]
fn segmentation_refuses_missing_sequences_and_empty_volumes() {
    let d = tempfile::tempdir().unwrap();
    let cfg = SegResNetConfig {
        in_channels: 2,
        out_channels: 1,
        init_filters: 4,
        blocks_down: vec![1, 1],
        blocks_up: vec![1],
        num_groups: 2,
        upsample_mode: UpsampleMode::Nontrainable,
    };
    let vm = VarMap::new();
    SegResNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let pack = d.path().join("seg");
    std::fs::create_dir_all(&pack).unwrap();
    vm.save(pack.join("w.safetensors")).unwrap();
    let m = Manifest {
        name: "seg".into(),
        version: "1".into(),
        task: Task::Segmentation,
        modality: "MR".into(),
        body_part: "BRAIN".into(),
        labels: vec!["whole_tumour".into()],
        intended_use: "test".into(),
        license: "test".into(),
        source: "test".into(),
        weights: "w.safetensors".into(),
        weights_sha256: sha256_file(&pack.join("w.safetensors")).unwrap(),
        weights_source: WeightSource::Native,
        arch: ArchSpec::Segresnet(cfg),
        input: InputSpec {
            size: vec![8, 8, 8],
            channels: 2,
            raw_range: [0.0, 1e6],
            min_std: 1e-3,
            preprocessing: Preprocessing::MriZscore {
                sequences: vec!["t1".into(), "flair".into()],
            },
        },
        calibration: vec![],
        thresholds: vec![],
        metrics: Default::default(),
    };
    std::fs::write(pack.join(MANIFEST), m.to_toml().unwrap()).unwrap();
    let reg = Registry::scan(d.path(), Device::Cpu).unwrap();
    let seg = reg.load("seg").unwrap();
    let voxels = |n: usize| (0..n).map(|i| 1.0 + (i % 7) as f32).collect::<Vec<_>>();
    // A volume larger than the patch, not a multiple of it: sliding window.
    let v = Volume {
        shape: [10, 12, 9],
        channels: vec![voxels(1080), voxels(1080)],
        spacing: [1.0, 1.0, 2.0],
    };
    let out = seg.segment(&v).unwrap();
    assert_eq!(out.shape, [10, 12, 9]);
    assert_eq!(out.regions[0].1.len(), 1080);
    let n = out.regions[0].1.iter().filter(|&&m| m == 1).count();
    assert!(
        (out.regions[0].2 - n as f64 * 2.0 / 1000.0).abs() < 1e-9,
        "volume in mL from the voxel size"
    );
    let one = Volume {
        shape: [10, 12, 9],
        channels: vec![voxels(1080)],
        spacing: [1.0; 3],
    };
    let err = seg.segment(&one).unwrap_err().to_string();
    assert!(
        err.contains("1 sequences given") && err.contains("flair"),
        "{err}"
    );
    let empty = Volume {
        shape: [0, 12, 9],
        channels: vec![vec![], vec![]],
        spacing: [1.0; 3],
    };
    assert!(seg.segment(&empty).is_err());
    let blank = Volume {
        shape: [10, 12, 9],
        channels: vec![vec![0.0; 1080], voxels(1080)],
        spacing: [1.0; 3],
    };
    assert!(seg.segment(&blank).is_err());
}

/// A pointwise network: sliding-window inference must give exactly what
/// running it on the whole volume gives, including at overlaps and borders.
struct Pointwise;
impl Module for Pointwise {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        (x * 3.0)? - 1.0
    }
}

#[test]
fn sliding_window_averages_overlaps_exactly() {
    let x = Tensor::randn(0f32, 1.0, (1, 2, 11, 7, 13), &Device::Cpu).unwrap();
    let whole = Pointwise.forward(&x).unwrap();
    for overlap in [0.0, 0.25, 0.5] {
        let got = sliding_window(&Pointwise, &x, [4, 4, 4], overlap).unwrap();
        let diff = (got - &whole)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "overlap {overlap}: {diff}");
    }
    // Smaller than a patch: padded and cropped back.
    let small = Tensor::randn(0f32, 1.0, (1, 2, 3, 3, 3), &Device::Cpu).unwrap();
    let got = sliding_window(&Pointwise, &small, [4, 4, 4], 0.5).unwrap();
    assert_eq!(got.dims(), &[1, 2, 3, 3, 3]);
}
