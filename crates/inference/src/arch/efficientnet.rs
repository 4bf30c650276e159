//! EfficientNet-B0…B7 (Tan & Le 2019) with torchvision's key names
//! (`features.{stage}.{block}.block.{i}…`, `classifier.1`).
//!
//! candle-transformers has an EfficientNet, but with its own key layout and a
//! grouped convolution that candle runs as one convolution per channel; this
//! one loads torchvision state dicts directly and runs depthwise layers
//! through [`crate::ops::depthwise_conv2d`].

use candle_core::{Module, Result, Tensor};
use candle_nn::{
    batch_norm, conv2d, linear, BatchNorm, BatchNormConfig, Conv2d, Linear, VarBuilder,
};
use serde::{Deserialize, Serialize};

use super::Classifier;
use crate::ops::{self, batch_norm_act, depthwise_conv2d, global_avg_pool, Act};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficientNetConfig {
    pub in_channels: usize,
    pub num_classes: usize,
    pub width_mult: f64,
    pub depth_mult: f64,
    /// BatchNorm epsilon: 1e-5 for B0-B4, 1e-3 for B5-B7 (torchvision).
    pub bn_eps: f64,
}

impl EfficientNetConfig {
    /// The compound-scaled variant `b` (0..=7).
    pub fn b(b: u8, in_channels: usize, num_classes: usize) -> Option<Self> {
        let (w, d) = match b {
            0 => (1.0, 1.0),
            1 => (1.0, 1.1),
            2 => (1.1, 1.2),
            3 => (1.2, 1.4),
            4 => (1.4, 1.8),
            5 => (1.6, 2.2),
            6 => (1.8, 2.6),
            7 => (2.0, 3.1),
            _ => return None,
        };
        Some(Self {
            in_channels,
            num_classes,
            width_mult: w,
            depth_mult: d,
            bn_eps: if b >= 5 { 1e-3 } else { 1e-5 },
        })
    }

    /// (expand, kernel, stride, in, out, layers) per stage, scaled.
    fn stages(&self) -> Vec<(usize, usize, usize, usize, usize, usize)> {
        const BASE: [(usize, usize, usize, usize, usize, usize); 7] = [
            (1, 3, 1, 32, 16, 1),
            (6, 3, 2, 16, 24, 2),
            (6, 5, 2, 24, 40, 2),
            (6, 3, 2, 40, 80, 3),
            (6, 5, 1, 80, 112, 3),
            (6, 5, 2, 112, 192, 4),
            (6, 3, 1, 192, 320, 1),
        ];
        BASE.iter()
            .map(|&(e, k, s, i, o, n)| {
                (
                    e,
                    k,
                    s,
                    make_divisible(i as f64 * self.width_mult),
                    make_divisible(o as f64 * self.width_mult),
                    (n as f64 * self.depth_mult).ceil() as usize,
                )
            })
            .collect()
    }

    /// Channels of the last feature map (1280 for B0).
    pub fn num_features(&self) -> usize {
        4 * self.stages()[6].4
    }
}

/// torchvision's `_make_divisible(v, 8)`.
fn make_divisible(v: f64) -> usize {
    let mut n = 8usize.max(((v + 4.0) as usize) / 8 * 8);
    if (n as f64) < 0.9 * v {
        n += 8;
    }
    n
}

/// `Conv2dNormActivation`: conv (no bias) `.0`, BatchNorm `.1`, optional SiLU.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Option<ops::Conv2d>,
    depthwise: Option<(Tensor, usize, usize)>,
    bn: BatchNorm,
    act: bool,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        depthwise: bool,
        act: bool,
        eps: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let padding = (k - 1) / 2;
        let (conv, depthwise) = if depthwise {
            let w = vb.pp("0").get_with_hints(
                (cout, 1, k, k),
                "weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?;
            (None, Some((w, stride, padding)))
        } else {
            (
                Some(ops::Conv2d::new(
                    vb.pp("0"),
                    cin,
                    cout,
                    k,
                    stride,
                    padding,
                    false,
                )?),
                None,
            )
        };
        let bn_cfg = BatchNormConfig {
            eps,
            ..Default::default()
        };
        Ok(Self {
            conv,
            depthwise,
            bn: batch_norm(cout, bn_cfg, vb.pp("1"))?,
            act,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = match (&self.conv, &self.depthwise) {
            (Some(c), _) => c.forward_t(x, train)?,
            (None, Some((w, s, p))) => depthwise_conv2d(x, w, *s, *p)?,
            (None, None) => candle_core::bail!("ConvBn without a convolution"),
        };
        let act = if self.act { Act::Silu } else { Act::Identity };
        batch_norm_act(&self.bn, &y, train, act)
    }
}

#[derive(Debug, Clone)]
struct SqueezeExcitation {
    fc1: Conv2d,
    fc2: Conv2d,
}

impl Module for SqueezeExcitation {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, _, _) = x.dims4()?;
        let s = global_avg_pool(x)?.reshape((n, c, 1, 1))?;
        let s = candle_nn::ops::silu(&self.fc1.forward(&s)?)?;
        let s = candle_nn::ops::sigmoid(&self.fc2.forward(&s)?)?;
        x.broadcast_mul(&s)
    }
}

#[derive(Debug, Clone)]
struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se: SqueezeExcitation,
    project: ConvBn,
    residual: bool,
}

impl MbConv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        expand_ratio: usize,
        k: usize,
        stride: usize,
        cin: usize,
        cout: usize,
        eps: f64,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("block");
        let expanded = make_divisible((cin * expand_ratio) as f64);
        let mut i = 0;
        let expand = if expanded != cin {
            i += 1;
            Some(ConvBn::new(
                cin,
                expanded,
                1,
                1,
                false,
                true,
                eps,
                vb.pp("0"),
            )?)
        } else {
            None
        };
        let depthwise = ConvBn::new(
            expanded,
            expanded,
            k,
            stride,
            true,
            true,
            eps,
            vb.pp(i.to_string()),
        )?;
        let squeeze = 1.max(cin / 4);
        let se_vb = vb.pp((i + 1).to_string());
        let se = SqueezeExcitation {
            fc1: conv2d(expanded, squeeze, 1, Default::default(), se_vb.pp("fc1"))?,
            fc2: conv2d(squeeze, expanded, 1, Default::default(), se_vb.pp("fc2"))?,
        };
        let project = ConvBn::new(
            expanded,
            cout,
            1,
            1,
            false,
            false,
            eps,
            vb.pp((i + 2).to_string()),
        )?;
        Ok(Self {
            expand,
            depthwise,
            se,
            project,
            residual: stride == 1 && cin == cout,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = match &self.expand {
            Some(e) => e.forward_t(x, train)?,
            None => x.clone(),
        };
        let y = self.depthwise.forward_t(&y, train)?;
        let y = self.se.forward(&y)?;
        let y = self.project.forward_t(&y, train)?;
        // Stochastic depth is a training regulariser only; it is the
        // identity at inference and left out of our (short) demo training.
        if self.residual {
            y + x
        } else {
            Ok(y)
        }
    }
}

#[derive(Debug, Clone)]
pub struct EfficientNet {
    stem: ConvBn,
    blocks: Vec<MbConv>,
    top: ConvBn,
    classifier: Linear,
    config: EfficientNetConfig,
}

impl EfficientNet {
    pub fn new(config: &EfficientNetConfig, vb: VarBuilder) -> Result<Self> {
        let f = vb.pp("features");
        let eps = config.bn_eps;
        let stages = config.stages();
        let stem = ConvBn::new(
            config.in_channels,
            stages[0].3,
            3,
            2,
            false,
            true,
            eps,
            f.pp("0"),
        )?;
        let mut blocks = Vec::new();
        for (si, &(e, k, s, cin, cout, n)) in stages.iter().enumerate() {
            let svb = f.pp((si + 1).to_string());
            for bi in 0..n {
                let (cin, s) = if bi == 0 { (cin, s) } else { (cout, 1) };
                blocks.push(MbConv::new(
                    e,
                    k,
                    s,
                    cin,
                    cout,
                    eps,
                    svb.pp(bi.to_string()),
                )?);
            }
        }
        let last_in = stages[6].4;
        let top = ConvBn::new(
            last_in,
            4 * last_in,
            1,
            1,
            false,
            true,
            eps,
            f.pp((stages.len() + 1).to_string()),
        )?;
        let classifier = linear(4 * last_in, config.num_classes, vb.pp("classifier").pp("1"))?;
        Ok(Self {
            stem,
            blocks,
            top,
            classifier,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &EfficientNetConfig {
        &self.config
    }
}

impl Classifier for EfficientNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.stem.forward_t(x, train)?;
        for b in &self.blocks {
            x = b.forward_t(&x, train)?;
        }
        self.top.forward_t(&x, train)
    }

    fn head_t(&self, features: &Tensor, _train: bool) -> Result<Tensor> {
        // Dropout before the classifier is skipped: demo training is short
        // and BatchNorm already regularises; at inference it is the identity.
        self.classifier.forward(&global_avg_pool(features)?)
    }
}
