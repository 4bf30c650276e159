//! Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al.
//! 2018): where in the image the classifier's evidence for a label sits.
//!
//! The map shows where the model looked, not a lesion outline; the UI and
//! the PDF say so. Gradients come from candle's autograd: the last feature
//! map is detached into a `Var`, the head runs on it, and the class score is
//! differentiated with respect to that `Var` only, so the (possibly large)
//! backbone never holds a backward graph.

use candle_core::{DType, IndexOp, Tensor, Var, D};

use crate::arch::Classifier;
use crate::error::{InferenceError, Result};
use crate::ops::resize_bilinear;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CamMethod {
    GradCam,
    GradCamPlusPlus,
}

/// One attention map at the input's resolution, scaled to [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub width: usize,
    pub height: usize,
    /// Row-major, `height * width` values in [0, 1].
    pub values: Vec<f32>,
    /// Where the map peaks (x, y), in input pixels.
    pub peak: (usize, usize),
    /// False when no location had positive evidence for the label (the
    /// map is then all zeros rather than noise scaled up to look confident).
    pub has_evidence: bool,
    /// Size of one feature-map cell in input pixels (x, y): the map cannot
    /// localise more finely than this.
    pub cell: (f32, f32),
}

/// Attention maps for `class` for every image of the batch `x` (N, C, H, W).
pub fn class_activation_maps(
    model: &dyn Classifier,
    x: &Tensor,
    class: usize,
    method: CamMethod,
) -> Result<Vec<Heatmap>> {
    let (n, _, h, w) = x.dims4()?;
    let features = model.features_t(x, false)?.detach();
    let (_, _, fh, fw) = features.dims4()?;
    let var = Var::from_tensor(&features)?;
    let logits = model.head_t(var.as_tensor(), false)?;
    let labels = logits.dim(1)?;
    if class >= labels {
        return Err(InferenceError::Invalid(format!(
            "label index {class} out of range: the model has {labels} labels"
        )));
    }
    // Images are independent at inference (BatchNorm uses running stats),
    // so the gradient of the summed scores is each image's own gradient.
    let score = logits.i((.., class))?.sum_all()?;
    let grads = score.backward()?;
    let g = grads
        .get(var.as_tensor())
        .ok_or_else(|| InferenceError::Invalid("no gradient reached the feature map".into()))?
        .to_dtype(DType::F32)?;
    let a = features.to_dtype(DType::F32)?;
    let weights = match method {
        // w_k = mean over positions of dS/dA_k
        CamMethod::GradCam => g.mean_keepdim(D::Minus1)?.mean_keepdim(D::Minus2)?,
        // α = g² / (2g² + ΣA·g³), w_k = Σ α·relu(g)
        CamMethod::GradCamPlusPlus => {
            let g2 = g.sqr()?;
            let g3 = (&g2 * &g)?;
            let sum_a = a.sum_keepdim(D::Minus1)?.sum_keepdim(D::Minus2)?;
            let denom = ((&g2 * 2.0)? + g3.broadcast_mul(&sum_a)?)?;
            // Where the denominator vanishes the gradient is zero too: α = 0.
            let safe = denom.abs()?.ge(1e-12)?;
            let ones = Tensor::ones_like(&denom)?;
            let alpha = safe.where_cond(
                &(g2 / safe.where_cond(&denom, &ones)?)?,
                &ones.zeros_like()?,
            )?;
            (alpha * g.relu()?)?
                .sum_keepdim(D::Minus1)?
                .sum_keepdim(D::Minus2)?
        }
    };
    let cam = a.broadcast_mul(&weights)?.sum_keepdim(1)?.relu()?;
    let up = resize_bilinear(&cam, h, w)?;
    let mut maps = Vec::with_capacity(n);
    for i in 0..n {
        let values = up.i((i, 0))?.flatten_all()?.to_vec1::<f32>()?;
        maps.push(normalise(
            values,
            w,
            h,
            (w as f32 / fw as f32, h as f32 / fh as f32),
        ));
    }
    Ok(maps)
}

fn normalise(mut values: Vec<f32>, width: usize, height: usize, cell: (f32, f32)) -> Heatmap {
    let (mut peak_i, mut peak_v) = (0usize, 0f32);
    for (i, v) in values.iter().enumerate() {
        if *v > peak_v {
            peak_v = *v;
            peak_i = i;
        }
    }
    let has_evidence = peak_v > 0.0 && peak_v.is_finite();
    if has_evidence {
        values.iter_mut().for_each(|v| *v /= peak_v);
    } else {
        values.iter_mut().for_each(|v| *v = 0.0);
    }
    Heatmap {
        width,
        height,
        values,
        peak: (peak_i % width, peak_i / width),
        has_evidence,
        cell,
    }
}

impl Heatmap {
    /// The pointing game (Zhang et al. 2016): does the map's maximum fall in
    /// the box, allowing `tolerance` pixels (the original uses 15 px at 224;
    /// a coarse map cannot do better than half a feature cell)?
    pub fn points_into(&self, x0: usize, y0: usize, x1: usize, y1: usize, tolerance: f32) -> bool {
        let (px, py) = (self.peak.0 as f32 + 0.5, self.peak.1 as f32 + 0.5);
        let dx = (x0 as f32 - px).max(px - x1 as f32).max(0.0);
        let dy = (y0 as f32 - py).max(py - y1 as f32).max(0.0);
        self.has_evidence && (dx * dx + dy * dy).sqrt() <= tolerance
    }

    /// The map as a colour overlay on a grey image (`base` in [0, 1], same
    /// size), as PNG bytes. Colour only where attention exceeds 20 %, so the
    /// anatomy stays readable under it.
    pub fn overlay_png(&self, base: &[f32], alpha: f32) -> Result<Vec<u8>> {
        if base.len() != self.width * self.height {
            return Err(InferenceError::Invalid(format!(
                "overlay base has {} pixels, heatmap {}x{}",
                base.len(),
                self.width,
                self.height
            )));
        }
        let mut rgb = Vec::with_capacity(base.len() * 3);
        for (&b, &v) in base.iter().zip(&self.values) {
            let g = b.clamp(0.0, 1.0) * 255.0;
            let (r, gg, bb) = jet(v);
            let a = if v > 0.2 { alpha * v.min(1.0) } else { 0.0 };
            rgb.push(((1.0 - a) * g + a * r) as u8);
            rgb.push(((1.0 - a) * g + a * gg) as u8);
            rgb.push(((1.0 - a) * g + a * bb) as u8);
        }
        encode_png(&rgb, self.width, self.height, png::ColorType::Rgb)
    }

    /// The map alone as an 8-bit grey PNG (what is stored as the artefact).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        let grey: Vec<u8> = self
            .values
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0) as u8)
            .collect();
        encode_png(&grey, self.width, self.height, png::ColorType::Grayscale)
    }
}

/// The "jet" colour map: blue (low) → cyan → yellow → red (high).
fn jet(v: f32) -> (f32, f32, f32) {
    let v = v.clamp(0.0, 1.0);
    let f = |c: f32| (1.5 - (4.0 * v - c).abs()).clamp(0.0, 1.0) * 255.0;
    (f(3.0), f(2.0), f(1.0))
}

pub(crate) fn encode_png(
    data: &[u8],
    width: usize,
    height: usize,
    color: png::ColorType,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc
        .write_header()
        .map_err(|e| InferenceError::Invalid(format!("png: {e}")))?;
    writer
        .write_image_data(data)
        .map_err(|e| InferenceError::Invalid(format!("png: {e}")))?;
    writer
        .finish()
        .map_err(|e| InferenceError::Invalid(format!("png: {e}")))?;
    Ok(out)
}
