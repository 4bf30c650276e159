//! From pixels as the imaging library hands them over (Hounsfield units,
//! display intensities, MR signal) to the tensors a pack was trained on,
//! refusing input whose statistics say it cannot be what the model expects.

use candle_core::{Device, Tensor};

use crate::error::{InferenceError, Result};
use crate::ops::resize_bilinear;
use crate::pack::{InputSpec, Preprocessing};

/// One 2D image as the caller has it: row-major `height * width` values.
#[derive(Debug, Clone)]
pub struct Plane<'a> {
    pub values: &'a [f32],
    pub width: usize,
    pub height: usize,
}

/// A 3D multi-channel volume: `channels[c]` is row-major (D, H, W).
#[derive(Debug, Clone)]
pub struct Volume {
    pub shape: [usize; 3],
    pub channels: Vec<Vec<f32>>,
    /// Voxel size in mm (z, y, x), for lesion volumes in mL.
    pub spacing: [f32; 3],
}

/// Refuses input that cannot be right for `spec` before it reaches the model.
pub fn check_raw(values: &[f32], spec: &InputSpec, what: &str) -> Result<()> {
    if values.is_empty() {
        return Err(InferenceError::Input(format!("{what} is empty")));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(InferenceError::Input(format!(
            "{what} contains NaN or infinite values"
        )));
    }
    let [lo, hi] = spec.raw_range;
    let outside = values.iter().filter(|&&v| v < lo || v > hi).count();
    if outside * 100 > values.len() {
        return Err(InferenceError::Input(format!(
            "{:.0} % of {what} lies outside {lo}..{hi}, the range this model expects ({})",
            outside as f64 * 100.0 / values.len() as f64,
            expectation(&spec.preprocessing)
        )));
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    if var.sqrt() < spec.min_std as f64 {
        return Err(InferenceError::Input(format!(
            "{what} is almost constant (standard deviation {:.3} < {}): a blank or saturated image",
            var.sqrt(),
            spec.min_std
        )));
    }
    // A HU model fed display pixels passes the range check when 0..255 sits
    // inside -1024..3071; what gives it away is that nothing is air.
    if let Preprocessing::CtWindows { .. } = spec.preprocessing {
        let air = values.iter().filter(|&&v| v < -500.0).count();
        if air * 100 < values.len() {
            return Err(InferenceError::Input(format!(
                "{what} has no air (no values below -500 HU): it does not look like CT in Hounsfield units"
            )));
        }
    }
    Ok(())
}

fn expectation(p: &Preprocessing) -> &'static str {
    match p {
        Preprocessing::CtWindows { .. } => "CT in Hounsfield units",
        Preprocessing::Radiograph { .. } => "radiograph intensities scaled to 0..1",
        Preprocessing::MriZscore { .. } => "MR signal, non-negative",
    }
}

/// One 2D image -> (C, H, W) network input at the pack's size.
pub fn prepare_plane(plane: &Plane, spec: &InputSpec, device: &Device) -> Result<Tensor> {
    if plane.values.len() != plane.width * plane.height || plane.width == 0 || plane.height == 0 {
        return Err(InferenceError::Input(format!(
            "image has {} values for {}x{} pixels",
            plane.values.len(),
            plane.width,
            plane.height
        )));
    }
    check_raw(plane.values, spec, "the image")?;
    let (h, w) = match spec.size.as_slice() {
        [h, w] => (*h, *w),
        other => {
            return Err(InferenceError::Invalid(format!(
                "a 2D model needs a 2D size, pack says {other:?}"
            )))
        }
    };
    let t = Tensor::from_slice(
        plane.values,
        (1, 1, plane.height, plane.width),
        &Device::Cpu,
    )?;
    let t = resize_bilinear(&t, h, w)?;
    let t = match &spec.preprocessing {
        Preprocessing::CtWindows { windows, mean, std } => {
            if windows.len() != spec.channels {
                return Err(InferenceError::Invalid(format!(
                    "{} CT windows for {} channels",
                    windows.len(),
                    spec.channels
                )));
            }
            let chans = windows
                .iter()
                .map(|[c, wd]| {
                    let lo = c - wd / 2.0;
                    ((&t - lo as f64)? / *wd as f64)?.clamp(0f32, 1f32)
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            ((Tensor::cat(&chans, 1)? - *mean as f64)? / *std as f64)?
        }
        Preprocessing::Radiograph { mean, std } => {
            let t = ((t.clamp(0f32, 1f32)? - *mean as f64)? / *std as f64)?;
            t.repeat((1, spec.channels, 1, 1))?
        }
        Preprocessing::MriZscore { .. } => {
            return Err(InferenceError::Invalid(
                "MRI preprocessing is for volumes, not planes".into(),
            ))
        }
    };
    Ok(t.squeeze(0)?.to_device(device)?)
}

/// A multi-sequence MR volume -> (C, D, H, W), each channel z-scored over
/// its non-zero voxels (background stays 0), as BraTS models are trained.
pub fn prepare_volume(volume: &Volume, spec: &InputSpec, device: &Device) -> Result<Tensor> {
    let Preprocessing::MriZscore { sequences } = &spec.preprocessing else {
        return Err(InferenceError::Invalid(
            "this pack does not take volumes".into(),
        ));
    };
    if volume.channels.len() != spec.channels {
        return Err(InferenceError::Input(format!(
            "{} sequences given, the model needs {} ({})",
            volume.channels.len(),
            spec.channels,
            sequences.join(", ")
        )));
    }
    let [d, h, w] = volume.shape;
    if d * h * w == 0 {
        return Err(InferenceError::Input("the volume is empty".into()));
    }
    let mut out = Vec::with_capacity(volume.channels.len());
    for (c, name) in volume.channels.iter().zip(sequences) {
        if c.len() != d * h * w {
            return Err(InferenceError::Input(format!(
                "sequence {name} has {} voxels, the volume is {d}x{h}x{w}",
                c.len()
            )));
        }
        check_raw(c, spec, &format!("sequence {name}"))?;
        let fg: Vec<f64> = c.iter().filter(|v| **v != 0.0).map(|&v| v as f64).collect();
        if fg.len() < 8 {
            return Err(InferenceError::Input(format!(
                "sequence {name} has no signal"
            )));
        }
        let mean = fg.iter().sum::<f64>() / fg.len() as f64;
        let std = (fg.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / fg.len() as f64)
            .sqrt()
            .max(1e-6);
        out.extend(c.iter().map(|&v| {
            if v == 0.0 {
                0.0
            } else {
                ((v as f64 - mean) / std) as f32
            }
        }));
    }
    Ok(Tensor::from_vec(
        out,
        (volume.channels.len(), d, h, w),
        device,
    )?)
}
