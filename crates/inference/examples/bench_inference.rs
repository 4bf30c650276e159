//! Forward-pass latency of each architecture on the CPU (or CUDA with the
//! `cuda` feature), for bench/inference.sh. Prints one JSON line per case:
//! {"arch", "batch", "size", "ms_per_batch", "images_per_s"}.
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use inference::arch::densenet::{DenseNet, DenseNetConfig};
use inference::arch::efficientnet::{EfficientNet, EfficientNetConfig};
use inference::arch::segresnet::{SegResNet, SegResNetConfig};
use inference::arch::Classifier;

fn time(mut f: impl FnMut() -> candle_core::Result<()>, reps: usize) -> candle_core::Result<f64> {
    f()?; // warm-up
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best * 1000.0)
}

fn main() -> candle_core::Result<()> {
    let dev = if cfg!(feature = "cuda") {
        Device::new_cuda(0)?
    } else {
        Device::Cpu
    };
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let batches: Vec<usize> = std::env::var("BATCHES")
        .unwrap_or_else(|_| "1,16".into())
        .split(',')
        .filter_map(|b| b.parse().ok())
        .collect();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let densenet = DenseNet::new(&DenseNetConfig::densenet121(3, 14), vb.pp("d"))?;
    let effnet = EfficientNet::new(&EfficientNetConfig::b(0, 3, 6).expect("b0"), vb.pp("e"))?;
    let seg = SegResNet::new(&SegResNetConfig::brats(), vb.pp("s"))?;
    for &b in &batches {
        for (name, model) in [
            ("densenet121", &densenet as &dyn Classifier),
            ("efficientnet_b0", &effnet),
        ] {
            let x = Tensor::randn(0f32, 1.0, (b, 3, 224, 224), &dev)?;
            let ms = time(
                || {
                    model
                        .forward(&x)
                        .and_then(|y| y.sum_all()?.to_scalar::<f32>().map(|_| ()))
                },
                reps,
            )?;
            println!("{{\"arch\":\"{name}\",\"batch\":{b},\"size\":224,\"ms_per_batch\":{ms:.2},\"images_per_s\":{:.2}}}", b as f64 * 1000.0 / ms);
        }
        // 3D: batches of 128^3 volumes are what GPUs see; 64^3 keeps the CPU run short.
        let side = if dev.is_cuda() { 128 } else { 64 };
        if b <= 2 {
            let x = Tensor::randn(0f32, 1.0, (b, 4, side, side, side), &dev)?;
            let ms = time(
                || {
                    seg.forward(&x)
                        .and_then(|y| y.sum_all()?.to_scalar::<f32>().map(|_| ()))
                },
                reps,
            )?;
            println!("{{\"arch\":\"segresnet\",\"batch\":{b},\"size\":{side},\"ms_per_batch\":{ms:.2},\"images_per_s\":{:.2}}}", b as f64 * 1000.0 / ms);
        }
    }
    Ok(())
}
