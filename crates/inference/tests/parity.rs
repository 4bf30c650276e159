//! Numerical parity with the PyTorch reference implementations: the same
//! weights give the same outputs (max abs diff < 1e-4 in f32). Fixtures come
//! from `fixtures/gen_parity.py` (torchvision 0.29, MONAI 1.6).

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Module, Tensor};
use inference::arch::densenet::{DenseNet, DenseNetConfig};
use inference::arch::efficientnet::{EfficientNet, EfficientNetConfig};
use inference::arch::segresnet::{SegResNet, SegResNetConfig, UpsampleMode};
use inference::arch::Classifier;
use inference::weights::{build_from_tensors, load_state_dict, WeightSource};
use inference::InferenceError;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/parity")
        .join(name)
}

/// The state dict plus `__input` / `__output` taken out of it.
fn case(name: &str) -> (HashMap<String, Tensor>, Tensor, Tensor) {
    let mut t = load_state_dict(&fixture(name), WeightSource::Torchvision).expect("fixture loads");
    let x = t.remove("__input").expect("input");
    let y = t.remove("__output").expect("output");
    (t, x, y)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "output shapes differ");
    (a - b)
        .expect("sub")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("flat")
        .max(0)
        .expect("max")
        .to_scalar::<f32>()
        .expect("scalar")
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    let d = max_abs_diff(got, want);
    let scale = want
        .abs()
        .unwrap()
        .max_keepdim(0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-4, "{what}: max abs diff {d} (outputs up to {scale})");
    // Guard against a fixture that is all zeros passing trivially.
    assert!(
        scale > 1e-2,
        "{what}: reference output is degenerate ({scale})"
    );
}

#[test]
fn densenet_matches_torchvision() {
    let (t, x, y) = case("densenet_small.safetensors");
    let cfg = DenseNetConfig {
        in_channels: 3,
        num_classes: 5,
        growth_rate: 8,
        block_config: vec![2, 3, 2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    let m = build_from_tensors("densenet", t, DType::F32, &Device::Cpu, |vb| {
        DenseNet::new(&cfg, vb)
    })
    .expect("weights fit");
    assert_close(&m.forward(&x).unwrap(), &y, "densenet");
}

#[test]
fn densenet_single_channel_two_blocks() {
    let (t, x, y) = case("densenet_small_1ch.safetensors");
    let cfg = DenseNetConfig {
        in_channels: 1,
        num_classes: 3,
        growth_rate: 8,
        block_config: vec![2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    let m = build_from_tensors("densenet", t, DType::F32, &Device::Cpu, |vb| {
        DenseNet::new(&cfg, vb)
    })
    .expect("weights fit");
    assert_close(&m.forward(&x).unwrap(), &y, "densenet 1ch");
}

#[test]
fn chexnet_pth_checkpoint_imports_through_the_key_map() {
    let (_, x, y) = case("densenet_small.safetensors");
    let t = load_state_dict(
        &fixture("densenet_small_chexnet.pth"),
        WeightSource::Chexnet,
    )
    .expect("pth reads");
    assert!(t.contains_key("features.denseblock1.denselayer1.conv1.weight"));
    assert!(t.contains_key("classifier.weight"));
    let cfg = DenseNetConfig {
        in_channels: 3,
        num_classes: 5,
        growth_rate: 8,
        block_config: vec![2, 3, 2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    let m = build_from_tensors("densenet", t, DType::F32, &Device::Cpu, |vb| {
        DenseNet::new(&cfg, vb)
    })
    .expect("weights fit");
    assert_close(&m.forward(&x).unwrap(), &y, "chexnet pth");
}

fn small_efficientnet(width: f64, depth: f64, classes: usize, eps: f64) -> EfficientNetConfig {
    EfficientNetConfig {
        in_channels: 3,
        num_classes: classes,
        width_mult: width,
        depth_mult: depth,
        bn_eps: eps,
    }
}

#[test]
fn efficientnet_matches_torchvision() {
    let (t, x, y) = case("efficientnet_small.safetensors");
    let cfg = small_efficientnet(0.25, 0.34, 6, 1e-5);
    let m = build_from_tensors("efficientnet", t, DType::F32, &Device::Cpu, |vb| {
        EfficientNet::new(&cfg, vb)
    })
    .expect("weights fit");
    assert_close(&m.forward(&x).unwrap(), &y, "efficientnet");
}

#[test]
fn efficientnet_with_b5_epsilon_matches() {
    let (t, x, y) = case("efficientnet_small_eps3.safetensors");
    let cfg = small_efficientnet(0.25, 0.2, 4, 1e-3);
    let m = build_from_tensors("efficientnet", t, DType::F32, &Device::Cpu, |vb| {
        EfficientNet::new(&cfg, vb)
    })
    .expect("weights fit");
    assert_close(&m.forward(&x).unwrap(), &y, "efficientnet eps 1e-3");
    // The wrong epsilon must be caught by the same comparison.
    let (t, x, y) = case("efficientnet_small_eps3.safetensors");
    let wrong = small_efficientnet(0.25, 0.2, 4, 1e-5);
    let m = build_from_tensors("efficientnet", t, DType::F32, &Device::Cpu, |vb| {
        EfficientNet::new(&wrong, vb)
    })
    .expect("weights fit");
    assert!(max_abs_diff(&m.forward(&x).unwrap(), &y) > 1e-4);
}

#[test]
fn segresnet_matches_monai() {
    let (t, x, y) = case("segresnet_small.safetensors");
    let cfg = SegResNetConfig {
        in_channels: 4,
        out_channels: 3,
        init_filters: 4,
        blocks_down: vec![1, 2, 2, 4],
        blocks_up: vec![1, 1, 1],
        num_groups: 4,
        upsample_mode: UpsampleMode::Nontrainable,
    };
    let m = build_from_tensors("segresnet", t, DType::F32, &Device::Cpu, |vb| {
        SegResNet::new(&cfg, vb)
    })
    .expect("weights fit");
    assert_close(&m.forward(&x).unwrap(), &y, "segresnet");
}

#[test]
fn segresnet_deconv_matches_monai() {
    let (t, x, y) = case("segresnet_small_deconv.safetensors");
    let cfg = SegResNetConfig {
        in_channels: 4,
        out_channels: 3,
        init_filters: 4,
        blocks_down: vec![1, 1, 1],
        blocks_up: vec![1, 1],
        num_groups: 2,
        upsample_mode: UpsampleMode::Deconv,
    };
    let m = build_from_tensors("segresnet", t, DType::F32, &Device::Cpu, |vb| {
        SegResNet::new(&cfg, vb)
    })
    .expect("weights fit");
    assert_close(&m.forward(&x).unwrap(), &y, "segresnet deconv");
}

#[test]
fn weights_of_another_variant_name_the_first_bad_tensor() {
    let (t, _, _) = case("densenet_small.safetensors");
    // Asking for one more layer in the first block: that layer is missing.
    let cfg = DenseNetConfig {
        in_channels: 3,
        num_classes: 5,
        growth_rate: 8,
        block_config: vec![3, 3, 2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    let err = build_from_tensors("densenet", t, DType::F32, &Device::Cpu, |vb| {
        DenseNet::new(&cfg, vb)
    })
    .unwrap_err();
    // Shapes change first (transition1 sees more channels) or a layer is missing; both name the tensor.
    match &err {
        InferenceError::MissingTensor { name, .. } => {
            assert!(name.contains("denselayer3"), "{err}")
        }
        InferenceError::TensorShape { name, .. } => assert!(name.starts_with("features."), "{err}"),
        other => panic!("unexpected error {other}"),
    }
    // Fewer classes: the classifier is mis-shaped and named.
    let (t, _, _) = case("densenet_small.safetensors");
    let cfg = DenseNetConfig {
        in_channels: 3,
        num_classes: 14,
        growth_rate: 8,
        block_config: vec![2, 3, 2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    let err = build_from_tensors("densenet", t, DType::F32, &Device::Cpu, |vb| {
        DenseNet::new(&cfg, vb)
    })
    .unwrap_err();
    match &err {
        InferenceError::TensorShape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "classifier.weight");
            assert_eq!(expected, &vec![14, 34]);
            assert_eq!(found, &vec![5, 34]);
        }
        other => panic!("unexpected error {other}"),
    }
    // Fewer layers than the file has: the extra tensors are refused by name.
    let (t, _, _) = case("densenet_small.safetensors");
    let cfg = DenseNetConfig {
        in_channels: 3,
        num_classes: 5,
        growth_rate: 8,
        block_config: vec![2, 3, 2, 1],
        num_init_features: 16,
        bn_size: 2,
    };
    let err = build_from_tensors("densenet", t, DType::F32, &Device::Cpu, |vb| {
        DenseNet::new(&cfg, vb)
    })
    .unwrap_err();
    assert!(
        matches!(&err, InferenceError::UnexpectedTensor { name, .. } if name.contains("denseblock4.denselayer2"))
            || matches!(&err, InferenceError::TensorShape { .. }),
        "{err}"
    );
}

/// Full-size DenseNet-121 / EfficientNet-B0 / BraTS SegResNet against PyTorch.
/// Needs `python fixtures/gen_parity.py --full DIR` where torch is installed
/// and `MEDVISION_PARITY_FULL=DIR`.
#[test]
#[ignore = "needs full-size references generated with PyTorch (MEDVISION_PARITY_FULL)"]
fn full_size_architectures_match_pytorch() {
    let Ok(dir) = std::env::var("MEDVISION_PARITY_FULL") else {
        panic!("set MEDVISION_PARITY_FULL to the folder gen_parity.py --full wrote");
    };
    let load = |n: &str| {
        let mut t = load_state_dict(&Path::new(&dir).join(n), WeightSource::Torchvision)
            .expect("reference");
        let x = t.remove("__input").expect("input");
        let y = t.remove("__output").expect("output");
        (t, x, y)
    };
    let (t, x, y) = load("densenet121_full.safetensors");
    let cfg = DenseNetConfig::densenet121(3, 14);
    let m = build_from_tensors("densenet121", t, DType::F32, &Device::Cpu, |vb| {
        DenseNet::new(&cfg, vb)
    })
    .expect("fit");
    assert_close(&m.forward(&x).unwrap(), &y, "densenet121");
    let (t, x, y) = load("efficientnet_b0_full.safetensors");
    let cfg = EfficientNetConfig::b(0, 3, 6).expect("b0");
    let m = build_from_tensors("efficientnet_b0", t, DType::F32, &Device::Cpu, |vb| {
        EfficientNet::new(&cfg, vb)
    })
    .expect("fit");
    assert_close(&m.forward(&x).unwrap(), &y, "efficientnet_b0");
    let (t, x, y) = load("segresnet_brats_full.safetensors");
    let m = build_from_tensors("segresnet", t, DType::F32, &Device::Cpu, |vb| {
        SegResNet::new(&SegResNetConfig::brats(), vb)
    })
    .expect("fit");
    assert_close(&m.forward(&x).unwrap(), &y, "segresnet brats");
}
