//! DenseNet (Huang et al. 2017) with torchvision's key names, so torchvision,
//! torchxrayvision and CheXNet state dicts load after [`crate::weights::KeyMap`].
//!
//! `features.conv0 / norm0 / denseblockN.denselayerM.{norm1,conv1,norm2,conv2}
//! / transitionN.{norm,conv} / norm5`, then `classifier`.

use candle_core::{Module, Result, Tensor};
use candle_nn::{batch_norm, linear, BatchNorm, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::Classifier;
use crate::ops::{batch_norm_act, global_avg_pool, max_pool2d_nonneg, Act, Conv2d};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseNetConfig {
    pub in_channels: usize,
    pub num_classes: usize,
    pub growth_rate: usize,
    pub block_config: Vec<usize>,
    pub num_init_features: usize,
    pub bn_size: usize,
}

impl DenseNetConfig {
    /// DenseNet-121: growth 32, blocks (6, 12, 24, 16), 64 initial features.
    pub fn densenet121(in_channels: usize, num_classes: usize) -> Self {
        Self {
            in_channels,
            num_classes,
            growth_rate: 32,
            block_config: vec![6, 12, 24, 16],
            num_init_features: 64,
            bn_size: 4,
        }
    }

    /// Channels of the final feature map (1024 for DenseNet-121).
    pub fn num_features(&self) -> usize {
        let mut n = self.num_init_features;
        for (i, layers) in self.block_config.iter().enumerate() {
            n += layers * self.growth_rate;
            if i + 1 != self.block_config.len() {
                n /= 2;
            }
        }
        n
    }
}

fn bn(c: usize, vb: VarBuilder) -> Result<BatchNorm> {
    // torchvision: eps 1e-5, momentum 0.1.
    batch_norm(c, 1e-5, vb)
}

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    Conv2d::new(vb, cin, cout, k, stride, padding, false)
}

#[derive(Debug, Clone)]
struct DenseLayer {
    norm1: BatchNorm,
    conv1: Conv2d,
    norm2: BatchNorm,
    conv2: Conv2d,
}

impl DenseLayer {
    fn new(cin: usize, growth: usize, bn_size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: bn(cin, vb.pp("norm1"))?,
            conv1: conv(cin, bn_size * growth, 1, 1, 0, vb.pp("conv1"))?,
            norm2: bn(bn_size * growth, vb.pp("norm2"))?,
            conv2: conv(bn_size * growth, growth, 3, 1, 1, vb.pp("conv2"))?,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = batch_norm_act(&self.norm1, x, train, Act::Relu)?;
        let y = self.conv1.forward_t(&y, train)?;
        let y = batch_norm_act(&self.norm2, &y, train, Act::Relu)?;
        self.conv2.forward_t(&y, train)
    }
}

#[derive(Debug, Clone)]
struct Transition {
    norm: BatchNorm,
    conv: Conv2d,
}

#[derive(Debug, Clone)]
pub struct DenseNet {
    conv0: Conv2d,
    norm0: BatchNorm,
    blocks: Vec<(Vec<DenseLayer>, Option<Transition>)>,
    norm5: BatchNorm,
    classifier: Linear,
    config: DenseNetConfig,
}

impl DenseNet {
    pub fn new(config: &DenseNetConfig, vb: VarBuilder) -> Result<Self> {
        let f = vb.pp("features");
        let conv0 = conv(
            config.in_channels,
            config.num_init_features,
            7,
            2,
            3,
            f.pp("conv0"),
        )?;
        let norm0 = bn(config.num_init_features, f.pp("norm0"))?;
        let mut n = config.num_init_features;
        let mut blocks = Vec::with_capacity(config.block_config.len());
        for (i, &layers) in config.block_config.iter().enumerate() {
            let bvb = f.pp(format!("denseblock{}", i + 1));
            let mut block = Vec::with_capacity(layers);
            for j in 0..layers {
                block.push(DenseLayer::new(
                    n + j * config.growth_rate,
                    config.growth_rate,
                    config.bn_size,
                    bvb.pp(format!("denselayer{}", j + 1)),
                )?);
            }
            n += layers * config.growth_rate;
            let transition = if i + 1 != config.block_config.len() {
                let tvb = f.pp(format!("transition{}", i + 1));
                let t = Transition {
                    norm: bn(n, tvb.pp("norm"))?,
                    conv: conv(n, n / 2, 1, 1, 0, tvb.pp("conv"))?,
                };
                n /= 2;
                Some(t)
            } else {
                None
            };
            blocks.push((block, transition));
        }
        let norm5 = bn(n, f.pp("norm5"))?;
        let classifier = linear(n, config.num_classes, vb.pp("classifier"))?;
        Ok(Self {
            conv0,
            norm0,
            blocks,
            norm5,
            classifier,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &DenseNetConfig {
        &self.config
    }
}

impl Classifier for DenseNet {
    fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.conv0.forward_t(x, train)?;
        let x = batch_norm_act(&self.norm0, &x, train, Act::Relu)?;
        // MaxPool2d(3, stride 2, padding 1), after a ReLU.
        let mut x = max_pool2d_nonneg(&x, 3, 2, 1)?;
        for (layers, transition) in &self.blocks {
            let mut feats = vec![x];
            for layer in layers {
                let input = Tensor::cat(&feats, 1)?;
                feats.push(layer.forward_t(&input, train)?);
            }
            x = Tensor::cat(&feats, 1)?;
            if let Some(t) = transition {
                let y = batch_norm_act(&t.norm, &x, train, Act::Relu)?;
                x = t.conv.forward_t(&y, train)?.avg_pool2d(2)?;
            }
        }
        batch_norm_act(&self.norm5, &x, train, Act::Identity)
    }

    fn head_t(&self, features: &Tensor, _train: bool) -> Result<Tensor> {
        let x = global_avg_pool(&features.relu()?)?;
        self.classifier.forward(&x)
    }
}
