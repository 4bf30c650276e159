//! A fast end-to-end check of the engine that CI can afford on every run:
//! a small DenseNet (same code as DenseNet-121, two blocks) trained with
//! the demo trainer on chest phantoms must rank the two large findings
//! correctly and Grad-CAM must point into their boxes. A broken layer,
//! gradient, optimiser step or heatmap fails it. The full-size demo packs
//! and the thresholds for every finding are in demo_quality.rs.

// Test helpers outside #[test] functions unwrap too: a failed setup is a
// failed test (clippy.toml's allow-unwrap-in-tests covers only #[test]).
#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use inference::arch::densenet::{DenseNet, DenseNetConfig};
use inference::arch::Classifier;
use inference::gradcam::{class_activation_maps, CamMethod};
use inference::metrics::auroc;
use inference::phantom::{chest_xray, ChestXray};
use inference::train::{train_classifier, Schedule};
use rand::rngs::StdRng;
use rand::SeedableRng;

const SIZE: usize = 64;
/// cardiomegaly, effusion
const LABELS: [usize; 2] = [0, 1];

fn batch(xs: &[ChestXray]) -> (Tensor, Tensor) {
    let px: Vec<f32> = xs
        .iter()
        .flat_map(|x| x.pixels.iter().map(|v| (v - 0.5) / 0.25))
        .collect();
    let ys: Vec<f32> = xs
        .iter()
        .flat_map(|x| LABELS.iter().map(|&l| f32::from(u8::from(x.labels[l]))))
        .collect();
    (
        Tensor::from_vec(px, (xs.len(), 1, SIZE, SIZE), &Device::Cpu).unwrap(),
        Tensor::from_vec(ys, (xs.len(), LABELS.len()), &Device::Cpu).unwrap(),
    )
}

#[test]
fn a_small_densenet_learns_and_grad_cam_points_at_the_finding() {
    let cfg = DenseNetConfig {
        in_channels: 1,
        num_classes: LABELS.len(),
        growth_rate: 12,
        // Two dense blocks: an 8x8 last feature map at 64 px, fine enough
        // for the pointing game (DenseNet-121 has 2x2 there).
        block_config: vec![3, 3],
        num_init_features: 24,
        bn_size: 2,
    };
    let vm = VarMap::new();
    let model =
        DenseNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let schedule = Schedule {
        steps: 240,
        warmup: 10,
        lr: 3e-3,
        weight_decay: 1e-4,
    };
    train_classifier(
        &model,
        &vm,
        schedule,
        |_| {
            let xs: Vec<ChestXray> = (0..16).map(|_| chest_xray(&mut rng, SIZE, 0.7)).collect();
            Ok(batch(&xs))
        },
        |_, _| {},
    )
    .unwrap();

    let mut trng = StdRng::seed_from_u64(12);
    let test: Vec<ChestXray> = (0..200).map(|_| chest_xray(&mut trng, SIZE, 0.7)).collect();
    let (x, _) = batch(&test);
    let logits = model.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    for (k, &l) in LABELS.iter().enumerate() {
        let scores: Vec<f32> = logits.iter().map(|r| r[k]).collect();
        let truth: Vec<bool> = test.iter().map(|s| s.labels[l]).collect();
        let a = auroc(&scores, &truth).unwrap();
        assert!(a >= 0.95, "label {l}: AUROC {a}");
        let (mut hits, mut total) = (0, 0);
        for (i, s) in test.iter().enumerate().filter(|(_, s)| s.labels[l]) {
            let xi = x.narrow(0, i, 1).unwrap();
            let map = &class_activation_maps(&model, &xi, k, CamMethod::GradCam).unwrap()[0];
            let tol = map.cell.0.max(map.cell.1) / 2.0;
            total += 1;
            hits += usize::from(
                s.boxes
                    .iter()
                    .filter(|b| b.label == l)
                    .any(|b| map.points_into(b.x0, b.y0, b.x1, b.y1, tol)),
            );
        }
        let pg = hits as f64 / total as f64;
        eprintln!("label {l}: AUROC {a:.4}, pointing game {pg:.3} ({hits}/{total})");
        assert!(pg >= 0.8, "label {l}: pointing game {pg} ({hits}/{total})");
    }
}
