//! Convolutions candle lacks: 3D convolution and its transpose, trilinear
//! upsampling, and a depthwise 2D convolution that does not split into one
//! convolution per channel.
//!
//! Everything is written with candle's differentiable primitives (conv2d,
//! narrow, cat, index_select, broadcast arithmetic), so autograd (training,
//! Grad-CAM) and every backend (CPU, CUDA with or without cuDNN) work without
//! a kernel of our own.

use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// 3D convolution, PyTorch semantics: `x` is (N, C, D, H, W), `w` is
/// (O, C, kD, kH, kW), the same stride and zero padding on every axis.
///
/// The kD depth offsets are gathered once into the channel axis with depth
/// folded into the batch, so the whole 3D convolution is a single 2D
/// convolution over (N·D', kD·C, H, W) with the kernel laid out as
/// (O, kD·C, kH, kW): one GEMM instead of kD smaller ones plus sums.
pub fn conv3d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    conv3d_with(x, w, bias, stride, padding, false)
}

fn conv3d_with(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    gemm: bool,
) -> Result<Tensor> {
    let (n, c, d, _, _) = x.dims5()?;
    let (o, ci, kd, kh, kw) = w.dims5()?;
    if c != ci {
        candle_core::bail!("conv3d: input has {c} channels, kernel expects {ci}")
    }
    if stride == 0 {
        candle_core::bail!("conv3d: stride must be at least 1")
    }
    let dp = d + 2 * padding;
    if dp < kd {
        candle_core::bail!("conv3d: depth {d} (+2x{padding} padding) is smaller than kernel {kd}")
    }
    let d_out = (dp - kd) / stride + 1;
    let x = if padding > 0 {
        x.pad_with_zeros(2, padding, padding)?
    } else {
        x.clone()
    };
    // (N, Dp, C, H, W): depth next to the batch so a depth window is a narrow.
    let x = x.permute((0, 2, 1, 3, 4))?.contiguous()?;
    let (_, _, _, h, wd) = x.dims5()?;
    let mut taps = Vec::with_capacity(kd);
    for k in 0..kd {
        let tap = if stride == 1 {
            x.narrow(1, k, d_out)?
        } else {
            let idx: Vec<u32> = (0..d_out).map(|i| (k + i * stride) as u32).collect();
            let idx = Tensor::new(idx.as_slice(), x.device())?;
            x.index_select(&idx, 1)?
        };
        taps.push(tap);
    }
    // (N, D', kD·C, H, W) -> (N·D', kD·C, H, W)
    let folded = Tensor::cat(&taps, 2)?.reshape((n * d_out, kd * c, h, wd))?;
    let w2 = w
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?
        .reshape((o, kd * c, kh, kw))?;
    let y = if gemm {
        conv2d_gemm(&folded, &w2, None, stride, padding)?
    } else {
        folded.conv2d(&w2, padding, stride, 1, 1)?
    };
    let (_, _, ho, wo) = y.dims4()?;
    let y = y
        .reshape((n, d_out, o, ho, wo))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, o, 1, 1, 1))?),
        None => Ok(y),
    }
}

/// Transposed 3D convolution, PyTorch semantics: `w` is (C, O, kD, kH, kW).
///
/// Each depth tap is a 2D transposed convolution over the depth-folded input;
/// its result lands at output depths `i·stride + k` (zeros interleaved by a
/// reshape), and the taps are summed before cropping `padding`.
pub fn conv_transpose3d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let (n, c, d, h, wd) = x.dims5()?;
    let (ci, o, kd, _, _) = w.dims5()?;
    if c != ci {
        candle_core::bail!("conv_transpose3d: input has {c} channels, kernel expects {ci}")
    }
    if stride == 0 || output_padding >= stride.max(1) && output_padding > 0 {
        candle_core::bail!("conv_transpose3d: output_padding must be smaller than stride")
    }
    let folded = x
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?
        .reshape((n * d, c, h, wd))?;
    let full_d = (d - 1) * stride + kd + output_padding;
    let mut acc: Option<Tensor> = None;
    for k in 0..kd {
        let wk = w.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
        let y = folded.conv_transpose2d(&wk, padding, output_padding, stride, 1)?;
        let (_, _, ho, wo) = y.dims4()?;
        // (N, D, O, H', W') -> interleave stride-1 zero slices after each depth.
        let y = y.reshape((n, d, 1, o, ho, wo))?;
        let y = if stride > 1 {
            let zeros = Tensor::zeros((n, d, stride - 1, o, ho, wo), y.dtype(), y.device())?;
            Tensor::cat(&[&y, &zeros], 2)?
                .reshape((n, d * stride, o, ho, wo))?
                .narrow(1, 0, (d - 1) * stride + 1)?
        } else {
            y.reshape((n, d, o, ho, wo))?
        };
        let placed = y.pad_with_zeros(1, k, full_d - k - ((d - 1) * stride + 1))?;
        acc = Some(match acc {
            Some(a) => (a + placed)?,
            None => placed,
        });
    }
    let Some(acc) = acc else {
        candle_core::bail!("conv_transpose3d: kernel depth is 0")
    };
    let acc = acc.narrow(1, padding, full_d - 2 * padding)?;
    let y = acc.permute((0, 2, 1, 3, 4))?.contiguous()?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, o, 1, 1, 1))?),
        None => Ok(y),
    }
}

/// Trilinear upsampling of (N, C, D, H, W) by an integer factor, equal to
/// `torch.nn.Upsample(scale_factor=s, mode="trilinear", align_corners=False)`.
pub fn upsample_trilinear3d(x: &Tensor, scale: usize) -> Result<Tensor> {
    if x.rank() != 5 {
        candle_core::bail!(
            "upsample_trilinear3d expects (N, C, D, H, W), got {:?}",
            x.dims()
        )
    }
    let x = resize_linear_dim(x, 2, x.dim(2)? * scale)?;
    let x = resize_linear_dim(&x, 3, x.dim(3)? * scale)?;
    resize_linear_dim(&x, 4, x.dim(4)? * scale)
}

/// Bilinear upsampling of (N, C, H, W) to an exact size (`align_corners=False`),
/// for heatmaps; the size need not be a multiple of the input.
pub fn resize_bilinear(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let x = resize_linear_dim(x, 2, out_h)?;
    resize_linear_dim(&x, 3, out_w)
}

/// Linear interpolation along `dim` to `out` samples, PyTorch's
/// `align_corners=False` sampling (source = (i + 0.5) / scale - 0.5, clamped).
fn resize_linear_dim(x: &Tensor, dim: usize, out: usize) -> Result<Tensor> {
    let len = x.dim(dim)?;
    let scale = out as f64 / len as f64;
    let mut lo = Vec::with_capacity(out);
    let mut hi = Vec::with_capacity(out);
    let mut frac = Vec::with_capacity(out);
    for i in 0..out {
        let src = ((i as f64 + 0.5) / scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(len - 1);
        let i1 = (i0 + 1).min(len - 1);
        lo.push(i0 as u32);
        hi.push(i1 as u32);
        frac.push((src - i0 as f64).min(1.0) as f32);
    }
    let dev = x.device();
    let a = x.index_select(&Tensor::new(lo.as_slice(), dev)?, dim)?;
    let b = x.index_select(&Tensor::new(hi.as_slice(), dev)?, dim)?;
    let mut shape = vec![1usize; x.rank()];
    shape[dim] = out;
    let t = Tensor::new(frac.as_slice(), dev)?
        .to_dtype(x.dtype())?
        .reshape(shape)?;
    a.broadcast_add(&(b - &a)?.broadcast_mul(&t)?)
}

/// Depthwise 2D convolution (groups = channels, one filter per channel),
/// `w` is (C, 1, k, k) as PyTorch stores it.
///
/// candle runs a grouped convolution as one convolution per group and a
/// concatenation, which for EfficientNet's 100-1000 channel depthwise layers
/// costs more than the rest of the network. Here it is k² shifted
/// multiply-adds over the whole tensor: O(k²·N·C·H·W), vectorised, and
/// differentiable. Stride 2 subsamples through a reshape.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    // Inference on the CPU (no gradient wanted): a direct kernel that reads
    // the input once instead of materialising k² shifted copies.
    if x.device().is_cpu() && x.dtype() == DType::F32 && !x.track_op() && !w.track_op() {
        let (wc, one, _, _) = w.dims4()?;
        if wc != c || one != 1 {
            candle_core::bail!(
                "depthwise_conv2d: kernel {:?} does not match {c} channels",
                w.dims()
            )
        }
        return x
            .contiguous()?
            .apply_op2_no_bwd(&w.contiguous()?, &DepthwiseCpu { stride, padding });
    }
    let (wc, one, kh, kw) = w.dims4()?;
    if wc != c || one != 1 {
        candle_core::bail!(
            "depthwise_conv2d: kernel {:?} does not match {c} channels",
            w.dims()
        )
    }
    let x = x
        .pad_with_zeros(2, padding, padding)?
        .pad_with_zeros(3, padding, padding)?;
    let ho1 = h + 2 * padding - kh + 1;
    let wo1 = wd + 2 * padding - kw + 1;
    let w = w.reshape((c, kh * kw))?;
    let mut acc: Option<Tensor> = None;
    for i in 0..kh {
        let rows = x.narrow(2, i, ho1)?;
        for j in 0..kw {
            let tap = rows.narrow(3, j, wo1)?;
            let wt = w.narrow(1, i * kw + j, 1)?.reshape((1, c, 1, 1))?;
            let term = tap.broadcast_mul(&wt)?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
    }
    let Some(y) = acc else {
        candle_core::bail!("depthwise_conv2d: empty kernel")
    };
    // Output of a strided conv = every stride-th row/column of the stride-1 one.
    subsample(
        &y,
        stride,
        (h + 2 * padding - kh) / stride + 1,
        (wd + 2 * padding - kw) / stride + 1,
    )
}

/// 2D convolution (groups = 1) as an explicit im2col and one batched matrix
/// product, built from differentiable primitives.
///
/// Forward it matches candle's `conv2d`; the point is the backward pass:
/// candle differentiates `conv2d` through a direct-loop `conv_transpose2d`
/// on the CPU, which made a DenseNet-121 training step several times slower
/// than the forward pass. Here the gradients are matrix products too. The
/// training path of every architecture uses it; inference keeps candle's
/// `conv2d` (and cuDNN on GPUs).
pub fn conv2d_gemm(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (o, ci, kh, kw) = w.dims4()?;
    if c != ci {
        candle_core::bail!("conv2d: input has {c} channels, kernel expects {ci}")
    }
    if h + 2 * padding < kh || wd + 2 * padding < kw || stride == 0 {
        candle_core::bail!("conv2d: input {h}x{wd} (+2x{padding}) is smaller than kernel {kh}x{kw}")
    }
    let ho = (h + 2 * padding - kh) / stride + 1;
    let wo = (wd + 2 * padding - kw) / stride + 1;
    let cols = if kh == 1 && kw == 1 && padding == 0 {
        subsample(x, stride, ho, wo)?.reshape((n, c, ho * wo))?
    } else {
        let xp = x
            .pad_with_zeros(2, padding, padding)?
            .pad_with_zeros(3, padding, padding)?;
        let h1 = h + 2 * padding - kh + 1;
        let w1 = wd + 2 * padding - kw + 1;
        let mut taps = Vec::with_capacity(kh * kw);
        for i in 0..kh {
            for j in 0..kw {
                let tap = xp.narrow(2, i, h1)?.narrow(3, j, w1)?;
                taps.push(subsample(&tap, stride, ho, wo)?);
            }
        }
        // (N, kh·kw·C, Ho·Wo), tap-major to match the permuted kernel below.
        Tensor::cat(&taps, 1)?.reshape((n, kh * kw * c, ho * wo))?
    };
    let wm = w.permute((0, 2, 3, 1))?.reshape((1, o, kh * kw * c))?;
    let y = wm.broadcast_matmul(&cols)?.reshape((n, o, ho, wo))?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, o, 1, 1))?),
        None => Ok(y),
    }
}

/// A 2D convolution layer (PyTorch `nn.Conv2d` keys `weight`, `bias`) that
/// runs candle's `conv2d` at inference and [`conv2d_gemm`] when training.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    pub fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (cout, cin, k, k),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1.0 / ((cin * k * k) as f64).sqrt();
            Some(vb.get_with_hints(
                cout,
                "bias",
                candle_nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if train {
            return conv2d_gemm(
                x,
                &self.weight,
                self.bias.as_ref(),
                self.stride,
                self.padding,
            );
        }
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// Every `stride`-th row and column, starting at 0: what a strided window
/// operation keeps of its stride-1 result.
fn subsample(y: &Tensor, stride: usize, ho: usize, wo: usize) -> Result<Tensor> {
    if stride == 1 {
        return Ok(y.clone());
    }
    let (n, c, h1, w1) = y.dims4()?;
    let y = y
        .pad_with_zeros(2, 0, (ho * stride).saturating_sub(h1))?
        .pad_with_zeros(3, 0, (wo * stride).saturating_sub(w1))?
        .narrow(2, 0, ho * stride)?
        .narrow(3, 0, wo * stride)?;
    y.reshape((n, c, ho, stride, wo, stride))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((n, c, ho, wo))
}

/// Max pooling with a k×k window, stride and zero padding, for inputs that
/// are non-negative (after a ReLU), where zero padding equals PyTorch's
/// -inf padding. candle's own max_pool2d has no backward pass when the
/// window and stride differ (DenseNet's stem is 3×3 stride 2); this one is
/// built from elementwise maxima and differentiates like PyTorch's.
pub fn max_pool2d_nonneg(x: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = x
        .pad_with_zeros(2, padding, padding)?
        .pad_with_zeros(3, padding, padding)?;
    let h1 = h + 2 * padding - k + 1;
    let w1 = w + 2 * padding - k + 1;
    let mut acc: Option<Tensor> = None;
    for i in 0..k {
        for j in 0..k {
            let tap = x.narrow(2, i, h1)?.narrow(3, j, w1)?;
            acc = Some(match acc {
                Some(a) => a.maximum(&tap)?,
                None => tap,
            });
        }
    }
    let Some(y) = acc else {
        candle_core::bail!("max_pool2d: empty window")
    };
    subsample(
        &y,
        stride,
        (h + 2 * padding - k) / stride + 1,
        (w + 2 * padding - k) / stride + 1,
    )
}

/// An activation fused into [`batch_norm_act`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Identity,
    Relu,
    Silu,
}

/// BatchNorm followed by an activation. At inference on the CPU it is one
/// multi-threaded pass (candle's eval BatchNorm is four single-threaded
/// broadcast passes, which dominated EfficientNet at batch 16); training
/// and tracked inputs take candle's differentiable path.
pub fn batch_norm_act(
    bn: &candle_nn::BatchNorm,
    x: &Tensor,
    train: bool,
    act: Act,
) -> Result<Tensor> {
    use candle_core::ModuleT;
    if train || !x.device().is_cpu() || x.dtype() != DType::F32 || x.track_op() || x.rank() < 2 {
        let y = bn.forward_t(x, train)?;
        return match act {
            Act::Identity => Ok(y),
            Act::Relu => y.relu(),
            Act::Silu => candle_nn::ops::silu(&y),
        };
    }
    let var = bn.running_var().to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mean = bn.running_mean().to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let (gamma, beta) = match bn.weight_and_bias() {
        Some((w, b)) => (
            w.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            b.to_dtype(DType::F32)?.to_vec1::<f32>()?,
        ),
        None => (vec![1.0; var.len()], vec![0.0; var.len()]),
    };
    let eps = bn.eps() as f32;
    let scale: Vec<f32> = var
        .iter()
        .zip(&gamma)
        .map(|(v, g)| g / (v + eps).sqrt())
        .collect();
    let shift: Vec<f32> = mean
        .iter()
        .zip(&scale)
        .zip(&beta)
        .map(|((m, s), b)| b - m * s)
        .collect();
    x.contiguous()?
        .apply_op1_no_bwd(&AffineAct { scale, shift, act })
}

struct AffineAct {
    scale: Vec<f32>,
    shift: Vec<f32>,
    act: Act,
}

impl candle_core::CustomOp1 for AffineAct {
    fn name(&self) -> &'static str {
        "batch-norm-act"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let Some((a, b)) = layout.contiguous_offsets() else {
            candle_core::bail!("batch-norm-act: input must be contiguous")
        };
        let x = &storage.as_slice::<f32>()?[a..b];
        let dims = layout.shape().dims();
        let c = dims[1];
        if c != self.scale.len() {
            candle_core::bail!(
                "batch-norm-act: {} channels, BatchNorm has {}",
                c,
                self.scale.len()
            )
        }
        let plane: usize = dims[2..].iter().product::<usize>().max(1);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(plane)
            .zip(x.par_chunks(plane))
            .enumerate()
            .for_each(|(i, (o, xi))| {
                let (s, t) = (self.scale[i % c], self.shift[i % c]);
                match self.act {
                    Act::Identity => o.iter_mut().zip(xi).for_each(|(o, x)| *o = x * s + t),
                    Act::Relu => o
                        .iter_mut()
                        .zip(xi)
                        .for_each(|(o, x)| *o = (x * s + t).max(0.0)),
                    Act::Silu => o.iter_mut().zip(xi).for_each(|(o, x)| {
                        let y = x * s + t;
                        *o = y / (1.0 + (-y).exp());
                    }),
                }
            });
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The CPU forward kernel of [`depthwise_conv2d`], one (image, channel)
/// plane per task.
struct DepthwiseCpu {
    stride: usize,
    padding: usize,
}

impl candle_core::CustomOp2 for DepthwiseCpu {
    fn name(&self) -> &'static str {
        "depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("depthwise-conv2d: inputs must be contiguous")
        };
        let x = &s1.as_slice::<f32>()?[a0..a1];
        let w = &s2.as_slice::<f32>()?[b0..b1];
        let (n, c, h, wd) = l1.shape().dims4()?;
        let (_, _, kh, kw) = l2.shape().dims4()?;
        let (s, p) = (self.stride, self.padding);
        if h + 2 * p < kh || wd + 2 * p < kw {
            candle_core::bail!("depthwise-conv2d: input smaller than the kernel")
        }
        let ho = (h + 2 * p - kh) / s + 1;
        let wo = (wd + 2 * p - kw) / s + 1;
        let mut out = vec![0f32; n * c * ho * wo];
        out.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(plane, o)| {
                let ch = plane % c;
                let xin = &x[plane * h * wd..(plane + 1) * h * wd];
                let k = &w[ch * kh * kw..(ch + 1) * kh * kw];
                for oy in 0..ho {
                    let orow = &mut o[oy * wo..(oy + 1) * wo];
                    for ky in 0..kh {
                        let iy = (oy * s + ky) as isize - p as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let irow = &xin[iy as usize * wd..(iy as usize + 1) * wd];
                        for kx in 0..kw {
                            let kv = k[ky * kw + kx];
                            // Output columns whose input column lies inside the row.
                            let first = p.saturating_sub(kx).div_ceil(s);
                            let last = (wd + p).saturating_sub(kx).div_ceil(s).min(wo);
                            for (ox, ov) in orow.iter_mut().enumerate().take(last).skip(first) {
                                *ov += kv * irow[ox * s + kx - p];
                            }
                        }
                    }
                }
            });
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((n, c, ho, wo)),
        ))
    }
}

/// A `torch.nn.Conv3d` (weight, optional bias) read from a `VarBuilder`.
#[derive(Debug, Clone)]
pub struct Conv3d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv3d {
    pub fn new(
        vb: VarBuilder,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        bias: bool,
    ) -> Result<Self> {
        let fan_in = (cin * k * k * k) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let init = candle_nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let weight = vb.get_with_hints((cout, cin, k, k, k), "weight", init)?;
        let bias = if bias {
            Some(vb.get_with_hints(cout, "bias", init)?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
            padding: k / 2,
        })
    }
}

impl Conv3d {
    /// Training runs the depth-folded 2D convolution through
    /// [`conv2d_gemm`], whose backward pass is matrix products.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        conv3d_with(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            train,
        )
    }
}

impl Module for Conv3d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

/// Global average over the spatial axes: (N, C, …) -> (N, C).
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c) = (x.dim(0)?, x.dim(1)?);
    x.reshape((n, c, ()))?.mean(D::Minus1)
}

/// Checks a tensor holds only finite values (NaN or ±inf anywhere is refused).
pub fn all_finite(x: &Tensor) -> Result<bool> {
    let flat = x.flatten_all()?.to_dtype(DType::F32)?;
    // NaN·0 and ±inf·0 are NaN, finite·0 is 0: one reduction catches both.
    let s = (flat * 0.0)?.sum_all()?.to_scalar::<f32>()?;
    Ok(s == 0.0)
}
