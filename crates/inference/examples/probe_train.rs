//! Times training steps of each demo architecture (used to size the demo).
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use inference::arch::densenet::{DenseNet, DenseNetConfig};
use inference::arch::efficientnet::{EfficientNet, EfficientNetConfig};
use inference::arch::segresnet::{SegResNet, SegResNetConfig};
use inference::train::{train_classifier, train_segmenter, Schedule};

fn main() -> inference::Result<()> {
    let dev = Device::Cpu;
    let sched = Schedule {
        steps: 3,
        warmup: 1,
        lr: 1e-3,
        weight_decay: 1e-4,
    };
    for (size, batch) in [(64usize, 16usize), (96, 16)] {
        let vm = VarMap::new();
        let m = DenseNet::new(
            &DenseNetConfig::densenet121(1, 5),
            VarBuilder::from_varmap(&vm, DType::F32, &dev),
        )?;
        let t = Instant::now();
        train_classifier(
            &m,
            &vm,
            sched,
            |_| {
                Ok((
                    Tensor::randn(0f32, 1., (batch, 1, size, size), &dev)?,
                    Tensor::zeros((batch, 5), DType::F32, &dev)?,
                ))
            },
            |_, _| {},
        )?;
        println!(
            "densenet121 {size}px batch {batch}: {:.2} s/step",
            t.elapsed().as_secs_f64() / 3.0
        );
    }
    for (size, batch) in [(64usize, 16usize), (96, 16)] {
        let vm = VarMap::new();
        let m = EfficientNet::new(
            &EfficientNetConfig::b(0, 3, 6).expect("b0"),
            VarBuilder::from_varmap(&vm, DType::F32, &dev),
        )?;
        let t = Instant::now();
        train_classifier(
            &m,
            &vm,
            sched,
            |_| {
                Ok((
                    Tensor::randn(0f32, 1., (batch, 3, size, size), &dev)?,
                    Tensor::zeros((batch, 6), DType::F32, &dev)?,
                ))
            },
            |_, _| {},
        )?;
        println!(
            "efficientnet-b0 {size}px batch {batch}: {:.2} s/step",
            t.elapsed().as_secs_f64() / 3.0
        );
    }
    for (size, init) in [(32usize, 8usize), (32, 16)] {
        let vm = VarMap::new();
        let mut cfg = SegResNetConfig::brats();
        cfg.init_filters = init;
        let m = SegResNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
        let t = Instant::now();
        train_segmenter(
            &m,
            &vm,
            sched,
            |_| {
                Ok((
                    Tensor::randn(0f32, 1., (2, 4, size, size, size), &dev)?,
                    Tensor::zeros((2, 3, size, size, size), DType::F32, &dev)?,
                ))
            },
            |_, _| {},
        )?;
        println!(
            "segresnet init {init} {size}^3 batch 2: {:.2} s/step",
            t.elapsed().as_secs_f64() / 3.0
        );
    }
    Ok(())
}
