//! SegResNet (Myronenko 2018) as MONAI builds it, with MONAI's key names
//! (`convInit.conv`, `down_layers.i.j`, `up_samples.i.0.conv`, `up_layers.i.j`,
//! `conv_final.{0,2}`), so MONAI BraTS bundles load after the `module.`
//! prefix is stripped. 3D only; the convolutions are [`crate::ops`]'s.

use candle_core::{Module, Result, Tensor};
use candle_nn::{group_norm, GroupNorm, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::ops::{conv_transpose3d, upsample_trilinear3d, Conv3d};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpsampleMode {
    /// Trilinear interpolation (MONAI's default, no weights).
    Nontrainable,
    /// Transposed convolution, kernel 2 stride 2 (`up_samples.i.1.deconv`).
    Deconv,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegResNetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub init_filters: usize,
    pub blocks_down: Vec<usize>,
    pub blocks_up: Vec<usize>,
    pub num_groups: usize,
    pub upsample_mode: UpsampleMode,
}

impl SegResNetConfig {
    /// MONAI's BraTS configuration: 4 sequences in, 3 regions out
    /// (tumour core, whole tumour, enhancing tumour), 16 initial filters.
    pub fn brats() -> Self {
        Self {
            in_channels: 4,
            out_channels: 3,
            init_filters: 16,
            blocks_down: vec![1, 2, 2, 4],
            blocks_up: vec![1, 1, 1],
            num_groups: 8,
            upsample_mode: UpsampleMode::Nontrainable,
        }
    }

    /// Input sides must be multiples of this (one halving per down level).
    pub fn divisor(&self) -> usize {
        1 << (self.blocks_down.len() - 1)
    }
}

#[derive(Debug, Clone)]
struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv3d,
    norm2: GroupNorm,
    conv2: Conv3d,
}

impl ResBlock {
    fn new(c: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: group_norm(groups, c, 1e-5, vb.pp("norm1"))?,
            conv1: Conv3d::new(vb.pp("conv1").pp("conv"), c, c, 3, 1, false)?,
            norm2: group_norm(groups, c, 1e-5, vb.pp("norm2"))?,
            conv2: Conv3d::new(vb.pp("conv2").pp("conv"), c, c, 3, 1, false)?,
        })
    }
}

impl ResBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = self
            .conv1
            .forward_t(&self.norm1.forward(x)?.relu()?, train)?;
        let y = self
            .conv2
            .forward_t(&self.norm2.forward(&y)?.relu()?, train)?;
        y + x
    }
}

#[derive(Debug, Clone)]
enum Up {
    Linear,
    Deconv { weight: Tensor, bias: Tensor },
}

#[derive(Debug, Clone)]
pub struct SegResNet {
    conv_init: Conv3d,
    down: Vec<(Option<Conv3d>, Vec<ResBlock>)>,
    up: Vec<(Conv3d, Up, Vec<ResBlock>)>,
    final_norm: GroupNorm,
    final_conv: Conv3d,
    config: SegResNetConfig,
}

impl SegResNet {
    pub fn new(config: &SegResNetConfig, vb: VarBuilder) -> Result<Self> {
        let f = config.init_filters;
        let g = config.num_groups;
        let conv_init = Conv3d::new(
            vb.pp("convInit").pp("conv"),
            config.in_channels,
            f,
            3,
            1,
            false,
        )?;
        let mut down = Vec::new();
        for (i, &n) in config.blocks_down.iter().enumerate() {
            let c = f << i;
            let lvb = vb.pp("down_layers").pp(i.to_string());
            let pre = if i > 0 {
                Some(Conv3d::new(lvb.pp("0").pp("conv"), c / 2, c, 3, 2, false)?)
            } else {
                None
            };
            let blocks = (0..n)
                .map(|j| ResBlock::new(c, g, lvb.pp((j + 1).to_string())))
                .collect::<Result<Vec<_>>>()?;
            down.push((pre, blocks));
        }
        let n_up = config.blocks_up.len();
        let mut up = Vec::new();
        for (i, &n) in config.blocks_up.iter().enumerate() {
            let c = f << (n_up - i);
            let svb = vb.pp("up_samples").pp(i.to_string());
            let reduce = Conv3d::new(svb.pp("0").pp("conv"), c, c / 2, 1, 1, false)?;
            let mode = match config.upsample_mode {
                UpsampleMode::Nontrainable => Up::Linear,
                UpsampleMode::Deconv => {
                    let dvb = svb.pp("1").pp("deconv");
                    let init = candle_nn::init::DEFAULT_KAIMING_NORMAL;
                    Up::Deconv {
                        weight: dvb.get_with_hints((c / 2, c / 2, 2, 2, 2), "weight", init)?,
                        bias: dvb.get_with_hints(c / 2, "bias", candle_nn::Init::Const(0.0))?,
                    }
                }
            };
            let lvb = vb.pp("up_layers").pp(i.to_string());
            let blocks = (0..n)
                .map(|j| ResBlock::new(c / 2, g, lvb.pp(j.to_string())))
                .collect::<Result<Vec<_>>>()?;
            up.push((reduce, mode, blocks));
        }
        let final_norm = group_norm(g, f, 1e-5, vb.pp("conv_final").pp("0"))?;
        let final_conv = Conv3d::new(
            vb.pp("conv_final").pp("2").pp("conv"),
            f,
            config.out_channels,
            1,
            1,
            true,
        )?;
        Ok(Self {
            conv_init,
            down,
            up,
            final_norm,
            final_conv,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &SegResNetConfig {
        &self.config
    }
}

impl Module for SegResNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

impl SegResNet {
    /// (N, in_channels, D, H, W) -> (N, out_channels, D, H, W) logits; every
    /// spatial side must be a multiple of [`SegResNetConfig::divisor`].
    /// GroupNorm behaves the same in training; `train` picks the
    /// convolution path with the faster backward pass.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = self.conv_init.forward_t(x, train)?;
        let mut skips = Vec::with_capacity(self.down.len());
        for (pre, blocks) in &self.down {
            if let Some(p) = pre {
                x = p.forward_t(&x, train)?;
            }
            for b in blocks {
                x = b.forward_t(&x, train)?;
            }
            skips.push(x.clone());
        }
        skips.reverse();
        for (i, (reduce, mode, blocks)) in self.up.iter().enumerate() {
            let y = reduce.forward_t(&x, train)?;
            let y = match mode {
                Up::Linear => upsample_trilinear3d(&y, 2)?,
                Up::Deconv { weight, bias } => conv_transpose3d(&y, weight, Some(bias), 2, 0, 0)?,
            };
            x = (y + &skips[i + 1])?;
            for b in blocks {
                x = b.forward_t(&x, train)?;
            }
        }
        let x = self.final_norm.forward(&x)?.relu()?;
        self.final_conv.forward_t(&x, train)
    }
}
