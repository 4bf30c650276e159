//! Training with candle: AdamW with linear warm-up and a cosine schedule,
//! multi-label binary cross-entropy for the classifiers and BCE + soft Dice
//! for the segmenter. Used for the demo packs; the same loop fine-tunes
//! imported weights.

use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};

use crate::arch::segresnet::SegResNet;
use crate::arch::Classifier;
use crate::error::Result;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub steps: usize,
    pub warmup: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

impl Schedule {
    /// Learning rate at `step`: linear warm-up, then cosine decay to 2 % of the peak.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let t =
            (step - self.warmup) as f64 / (self.steps.saturating_sub(self.warmup)).max(1) as f64;
        let floor = 0.02 * self.lr;
        floor + (self.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
    }
}

/// Numerically stable mean binary cross-entropy on logits:
/// max(x, 0) - x·y + log(1 + e^{-|x|}).
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let t = targets.to_dtype(logits.dtype())?;
    let pos = logits.relu()?;
    let soft = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((pos - (logits * &t)?)? + soft)?.mean_all()
}

/// 1 - soft Dice per (image, region), averaged; `logits`, `targets` (N, K, …).
pub fn soft_dice_loss(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let (n, k) = (logits.dim(0)?, logits.dim(1)?);
    let p = candle_nn::ops::sigmoid(logits)?.reshape((n, k, ()))?;
    let t = targets.to_dtype(p.dtype())?.reshape((n, k, ()))?;
    let inter = (&p * &t)?.sum(2)?;
    let denom = (p.sum(2)? + t.sum(2)?)?;
    let dice = ((inter * 2.0)? + 1.0)?.div(&(denom + 1.0)?)?;
    (1.0 - dice)?.mean_all()
}

/// Runs the loop: `next_batch(step)` gives (inputs, targets), `loss` turns
/// the model's output and targets into a scalar, `log(step, loss)` reports.
pub fn fit(
    varmap: &VarMap,
    schedule: Schedule,
    mut next_batch: impl FnMut(usize) -> Result<(Tensor, Tensor)>,
    mut step_loss: impl FnMut(&Tensor, &Tensor) -> candle_core::Result<Tensor>,
    mut log: impl FnMut(usize, f32),
) -> Result<f32> {
    let params = ParamsAdamW {
        lr: schedule.lr,
        weight_decay: schedule.weight_decay,
        ..Default::default()
    };
    // Only weights that receive gradients are updated; BatchNorm running
    // statistics live in the same VarMap but never get a gradient.
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let mut last = f32::NAN;
    for step in 0..schedule.steps {
        opt.set_learning_rate(schedule.lr_at(step));
        let (x, y) = next_batch(step)?;
        let loss = step_loss(&x, &y)?;
        opt.backward_step(&loss)?;
        last = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        log(step, last);
    }
    Ok(last)
}

/// Trains a multi-label classifier (BatchNorm in training mode).
pub fn train_classifier(
    model: &dyn Classifier,
    varmap: &VarMap,
    schedule: Schedule,
    next_batch: impl FnMut(usize) -> Result<(Tensor, Tensor)>,
    log: impl FnMut(usize, f32),
) -> Result<f32> {
    fit(
        varmap,
        schedule,
        next_batch,
        |x, y| bce_with_logits(&model.forward_t(x, true)?, y),
        log,
    )
}

/// Trains a segmenter with BCE + soft Dice on each region.
pub fn train_segmenter(
    model: &SegResNet,
    varmap: &VarMap,
    schedule: Schedule,
    next_batch: impl FnMut(usize) -> Result<(Tensor, Tensor)>,
    log: impl FnMut(usize, f32),
) -> Result<f32> {
    fit(
        varmap,
        schedule,
        next_batch,
        |x, y| {
            let out = model.forward_t(x, true)?;
            bce_with_logits(&out, y)? + soft_dice_loss(&out, y)?
        },
        log,
    )
}
