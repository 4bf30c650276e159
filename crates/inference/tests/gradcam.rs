//! Grad-CAM and Grad-CAM++ against the textbook computation in PyTorch
//! (fixtures/gen_parity.py `gradcam`), on the same DenseNet weights.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use candle_core::{DType, Device, IndexOp};
use inference::arch::densenet::{DenseNet, DenseNetConfig};
use inference::gradcam::{class_activation_maps, CamMethod};
use inference::weights::{build_from_tensors, load_state_dict, WeightSource};

fn model() -> DenseNet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/parity");
    let mut t = load_state_dict(
        &dir.join("densenet_small.safetensors"),
        WeightSource::Torchvision,
    )
    .unwrap();
    t.remove("__input");
    t.remove("__output");
    let cfg = DenseNetConfig {
        in_channels: 3,
        num_classes: 5,
        growth_rate: 8,
        block_config: vec![2, 3, 2, 2],
        num_init_features: 16,
        bn_size: 2,
    };
    build_from_tensors("densenet", t, DType::F32, &Device::Cpu, |vb| {
        DenseNet::new(&cfg, vb)
    })
    .unwrap()
}

#[test]
fn grad_cam_and_plus_plus_match_pytorch() {
    let m = model();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/parity/densenet_small_gradcam.safetensors");
    let r = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let x = &r["__input"];
    let class = r["__class"].to_vec1::<f32>().unwrap()[0] as usize;
    for (method, key) in [
        (CamMethod::GradCam, "__gradcam"),
        (CamMethod::GradCamPlusPlus, "__gradcampp"),
    ] {
        let maps = class_activation_maps(&m, x, class, method).unwrap();
        assert_eq!(maps.len(), 2);
        for (i, map) in maps.iter().enumerate() {
            let want = r[key]
                .i((i, 0))
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!((map.width, map.height), (128, 128));
            assert!(map.has_evidence);
            let diff = map
                .values
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-3, "{method:?} image {i}: max diff {diff}");
            // The peak is where PyTorch's map peaks.
            let (wi, _) =
                want.iter().enumerate().fold(
                    (0, f32::MIN),
                    |acc, (j, &v)| if v > acc.1 { (j, v) } else { acc },
                );
            assert!(want[map.peak.1 * 128 + map.peak.0] > 0.999 * want[wi]);
        }
    }
}

#[test]
fn a_label_out_of_range_is_an_error() {
    let m = model();
    let x = candle_core::Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
    let err = class_activation_maps(&m, &x, 9, CamMethod::GradCam)
        .unwrap_err()
        .to_string();
    assert!(err.contains("out of range"), "{err}");
}

#[test]
fn overlay_is_a_png_of_the_image_size() {
    let m = model();
    let x = candle_core::Tensor::randn(0f32, 1.0, (1, 3, 64, 64), &Device::Cpu).unwrap();
    let map = &class_activation_maps(&m, &x, 0, CamMethod::GradCam).unwrap()[0];
    let png = map.overlay_png(&vec![0.5; 64 * 64], 0.5).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(map.overlay_png(&[0.5; 10], 0.5).is_err());
}
