//! From decoded samples to what a screen shows: modality LUT (stored value →
//! Hounsfield units or other modality units), VOI (window or VOI LUT),
//! MONOCHROME1 inversion, colour conversion, and resampling. The output is an
//! 8-bit [`Plane`], grey or RGB, ready for [`crate::render::plane_to_png`].
//!
//! The grey pipeline follows PS3.3 C.11 in order: Modality LUT (C.11.1), VOI
//! LUT or window (C.11.2, with the LINEAR, LINEAR_EXACT and SIGMOID functions
//! of C.11.2.1.2/3), then the Presentation LUT, which for MONOCHROME1 is an
//! inversion (C.7.6.3.1.2).

use std::fmt;
use std::str::FromStr;

use crate::dicom::{Frame, FrameData, Palette, Photometric, VoiLut, VoiLutFunction};
use crate::error::{ImagingError, Result};

/// Named CT windows, centre/width in HU, as radiology departments use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtPreset {
    /// 40/80
    Brain,
    /// 80/200
    Subdural,
    /// 600/2800
    Bone,
    /// −600/1500
    Lung,
    /// 40/400
    Abdomen,
}

impl CtPreset {
    pub const ALL: [CtPreset; 5] = [
        CtPreset::Brain,
        CtPreset::Subdural,
        CtPreset::Bone,
        CtPreset::Lung,
        CtPreset::Abdomen,
    ];

    pub fn center(self) -> f64 {
        match self {
            CtPreset::Brain => 40.0,
            CtPreset::Subdural => 80.0,
            CtPreset::Bone => 600.0,
            CtPreset::Lung => -600.0,
            CtPreset::Abdomen => 40.0,
        }
    }

    pub fn width(self) -> f64 {
        match self {
            CtPreset::Brain => 80.0,
            CtPreset::Subdural => 200.0,
            CtPreset::Bone => 2800.0,
            CtPreset::Lung => 1500.0,
            CtPreset::Abdomen => 400.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CtPreset::Brain => "brain",
            CtPreset::Subdural => "subdural",
            CtPreset::Bone => "bone",
            CtPreset::Lung => "lung",
            CtPreset::Abdomen => "abdomen",
        }
    }
}

impl fmt::Display for CtPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CtPreset {
    type Err = ImagingError;

    /// Case-insensitive preset name (`brain`, `Lung`…).
    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase();
        CtPreset::ALL
            .into_iter()
            .find(|p| p.name() == wanted)
            .ok_or_else(|| ImagingError::Unsupported {
                detail: format!(
                    "window preset {s:?} (known: brain, subdural, bone, lung, abdomen)"
                ),
            })
    }
}

/// Which VOI to apply to a grey image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// The file's first window (with its VOI LUT Function), else its VOI LUT
    /// Sequence, else [`Window::MinMax`].
    FromFile,
    Preset(CtPreset),
    /// Centre and width in modality units (HU for CT), LINEAR function.
    Explicit {
        center: f64,
        width: f64,
    },
    /// The frame's full range.
    MinMax,
}

/// Samples per pixel of an 8-bit display plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    Grey,
    Rgb,
}

impl Channels {
    pub fn count(self) -> usize {
        match self {
            Channels::Grey => 1,
            Channels::Rgb => 3,
        }
    }
}

/// An 8-bit image: `width × height × channels` bytes, row-major, interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: u32,
    pub height: u32,
    pub channels: Channels,
    pub data: Vec<u8>,
}

/// YBR_FULL → RGB in place, 8-bit, with pydicom's coefficients and rounding
/// (PS3.3 C.7.6.3.1.2; ISO/IEC 10918-5 section 7), so results match it.
pub fn ybr_full_to_rgb(data: &mut FrameData) -> Result<()> {
    let FrameData::U8(samples) = data else {
        return Err(ImagingError::Unsupported {
            detail: "YBR colour with more than 8 bits per sample".into(),
        });
    };
    let (cb_g, cb_b) = (-0.114f32 * 1.772 / 0.587, 1.772f32);
    let (cr_r, cr_g) = (1.402f32, -0.299f32 * 1.402 / 0.587);
    for px in samples.chunks_exact_mut(3) {
        let y = f32::from(px[0]);
        let cb = f32::from(px[1]) - 128.0;
        let cr = f32::from(px[2]) - 128.0;
        let to_u8 = |v: f32| (v + 0.5).floor().clamp(0.0, 255.0) as u8;
        px[0] = to_u8(y + cr_r * cr);
        px[1] = to_u8(y + cb_g * cb + cr_g * cr);
        px[2] = to_u8(y + cb_b * cb);
    }
    Ok(())
}

/// The modality LUT applied to a grey frame: the Modality LUT Sequence if
/// the file has one, else `stored × slope + intercept` (HU for CT).
pub fn modality_values(frame: &Frame) -> Vec<f32> {
    if let Some(lut) = &frame.modality_lut {
        let last = lut.data.len().saturating_sub(1);
        return (0..frame.data.len())
            .map(|i| {
                let x = frame.data.get_f64(i).unwrap_or(0.0);
                let index = (x - f64::from(lut.first_mapped)).clamp(0.0, last as f64) as usize;
                f32::from(lut.data.get(index).copied().unwrap_or(0))
            })
            .collect();
    }
    let (slope, intercept) = (frame.rescale_slope, frame.rescale_intercept);
    if slope == 1.0 && intercept == 0.0 {
        return frame.data.to_f32();
    }
    (0..frame.data.len())
        .map(|i| (frame.data.get_f64(i).unwrap_or(0.0) * slope + intercept) as f32)
        .collect()
}

/// One VOI window function (PS3.3 C.11.2.1.2 LINEAR, C.11.2.1.3.1 SIGMOID,
/// C.11.2.1.3.2 LINEAR_EXACT) mapping modality values to 0‥255.
pub fn apply_window(values: &[f32], center: f64, width: f64, function: VoiLutFunction) -> Vec<u8> {
    let (y_min, y_max) = (0.0f64, 255.0f64);
    let span = y_max - y_min;
    let out = |y: f64| y.round().clamp(y_min, y_max) as u8;
    match function {
        VoiLutFunction::Linear => {
            // The standard requires width ≥ 1 for LINEAR.
            let w = width.max(1.0);
            let lo = center - 0.5 - (w - 1.0) / 2.0;
            let hi = center - 0.5 + (w - 1.0) / 2.0;
            let w1 = (w - 1.0).max(f64::MIN_POSITIVE);
            values
                .iter()
                .map(|&x| {
                    let x = f64::from(x);
                    if x <= lo {
                        out(y_min)
                    } else if x > hi {
                        out(y_max)
                    } else {
                        out(((x - (center - 0.5)) / w1 + 0.5) * span + y_min)
                    }
                })
                .collect()
        }
        VoiLutFunction::LinearExact => {
            let w = width.max(f64::MIN_POSITIVE);
            values
                .iter()
                .map(|&x| {
                    let x = f64::from(x);
                    if x <= center - w / 2.0 {
                        out(y_min)
                    } else if x > center + w / 2.0 {
                        out(y_max)
                    } else {
                        out(((x - center) / w + 0.5) * span + y_min)
                    }
                })
                .collect()
        }
        VoiLutFunction::Sigmoid => {
            let w = width.max(f64::MIN_POSITIVE);
            values
                .iter()
                .map(|&x| out(span / (1.0 + (-4.0 * (f64::from(x) - center) / w).exp()) + y_min))
                .collect()
        }
    }
}

/// A VOI LUT Sequence table (PS3.3 C.11.2.1.1): values below the first
/// mapped one take the first entry, above the last the last entry; the
/// output's `bits_stored` range is scaled to 0‥255.
pub fn apply_voi_lut(values: &[f32], lut: &VoiLut) -> Vec<u8> {
    let last = lut.data.len().saturating_sub(1);
    // Some files declare 16 bits but fill 12: scale by what the table holds.
    let declared = (1u32 << lut.bits_stored.clamp(1, 16)) - 1;
    let actual = u32::from(lut.data.iter().copied().max().unwrap_or(0));
    let top = f64::from(declared.min(actual.max(1)).max(actual));
    values
        .iter()
        .map(|&x| {
            let index = (f64::from(x) - f64::from(lut.min_pixel_value)).clamp(0.0, last as f64);
            let y = f64::from(lut.data.get(index as usize).copied().unwrap_or(0));
            (y / top * 255.0).round().clamp(0.0, 255.0) as u8
        })
        .collect()
}

fn min_max_window(values: &[f32]) -> Vec<u8> {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return vec![0; values.len()];
    }
    let range = f64::from(hi - lo);
    if range == 0.0 {
        return vec![128; values.len()];
    }
    values
        .iter()
        .map(|&v| {
            ((f64::from(v - lo)) / range * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// A frame as the viewer shows it: grey frames through modality LUT, `window`
/// and MONOCHROME1 inversion; colour frames (RGB, palette) to 8-bit RGB, the
/// window not applying to them.
pub fn to_display(frame: &Frame, window: Window) -> Result<Plane> {
    let (width, height) = (frame.columns, frame.rows);
    let pixels = width as usize * height as usize;
    let expected = pixels * usize::from(frame.samples_per_pixel);
    if frame.data.len() < expected {
        return Err(ImagingError::Truncated {
            what: "pixel data".into(),
        });
    }
    if frame.photometric == Photometric::PaletteColor {
        let palette = frame
            .palette
            .as_ref()
            .ok_or_else(|| ImagingError::Corrupt {
                detail: "a palette colour image without its palette".into(),
            })?;
        return Ok(Plane {
            width,
            height,
            channels: Channels::Rgb,
            data: palette_to_rgb(&frame.data, palette, pixels),
        });
    }
    if frame.samples_per_pixel == 3 {
        return Ok(Plane {
            width,
            height,
            channels: Channels::Rgb,
            data: colour_to_8bit(&frame.data, frame.bits_stored, expected),
        });
    }
    if frame.samples_per_pixel != 1 {
        return Err(ImagingError::Unsupported {
            detail: format!("{} samples per pixel", frame.samples_per_pixel),
        });
    }
    let values = modality_values(frame);
    let values = &values[..pixels];
    let mut grey = match window {
        Window::Preset(p) => apply_window(values, p.center(), p.width(), VoiLutFunction::Linear),
        Window::Explicit { center, width } => {
            apply_window(values, center, width, VoiLutFunction::Linear)
        }
        Window::MinMax => min_max_window(values),
        Window::FromFile => match (frame.windows.first(), &frame.voi_lut) {
            (Some(w), _) => apply_window(values, w.center, w.width, frame.voi_lut_function),
            (None, Some(lut)) => apply_voi_lut(values, lut),
            (None, None) => min_max_window(values),
        },
    };
    if frame.photometric == Photometric::Monochrome1 {
        invert(&mut grey);
    }
    Ok(Plane {
        width,
        height,
        channels: Channels::Grey,
        data: grey,
    })
}

/// MONOCHROME1: the lowest value is white.
pub fn invert(grey: &mut [u8]) {
    for v in grey {
        *v = 255 - *v;
    }
}

/// Palette Color indices to 8-bit RGB (PS3.3 C.7.6.3.1.5–6); a 16-bit table
/// keeps its high byte.
pub fn palette_to_rgb(indices: &FrameData, palette: &Palette, pixels: usize) -> Vec<u8> {
    let last = palette.red.len().saturating_sub(1);
    let shift = if palette.bits > 8 { 8 } else { 0 };
    let entry = |table: &[u16], i: usize| (table.get(i).copied().unwrap_or(0) >> shift) as u8;
    let mut out = Vec::with_capacity(pixels * 3);
    for p in 0..pixels {
        let x = indices.get_f64(p).unwrap_or(0.0);
        let i = (x - f64::from(palette.first_mapped)).clamp(0.0, last as f64) as usize;
        out.extend_from_slice(&[
            entry(&palette.red, i),
            entry(&palette.green, i),
            entry(&palette.blue, i),
        ]);
    }
    out
}

fn colour_to_8bit(data: &FrameData, bits_stored: u16, samples: usize) -> Vec<u8> {
    if let FrameData::U8(v) = data {
        return v[..samples].to_vec();
    }
    let top = ((1u64 << bits_stored.clamp(1, 32)) - 1) as f64;
    (0..samples)
        .map(|i| {
            (data.get_f64(i).unwrap_or(0.0) / top * 255.0)
                .round()
                .clamp(0.0, 255.0) as u8
        })
        .collect()
}

/// The largest size within `max_width × max_height` with the aspect ratio of
/// `width × height`, never enlarging. `pixel_spacing` (row, column mm) makes
/// non-square pixels look right: the aspect is the physical one.
pub fn fit_size(
    width: u32,
    height: u32,
    pixel_spacing: Option<[f64; 2]>,
    max_width: u32,
    max_height: u32,
) -> (u32, u32) {
    let (mut w, mut h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    if let Some([row, col]) = pixel_spacing.filter(|s| s.iter().all(|v| v.is_finite() && *v > 0.0))
    {
        // Stretch the shorter-spaced axis so both read in millimetres.
        if col > row {
            w *= col / row;
        } else {
            h *= row / col;
        }
    }
    let scale = (f64::from(max_width.max(1)) / w)
        .min(f64::from(max_height.max(1)) / h)
        .min(1.0);
    let out_w = (w * scale).round().clamp(1.0, f64::from(max_width.max(1)));
    let out_h = (h * scale).round().clamp(1.0, f64::from(max_height.max(1)));
    (out_w as u32, out_h as u32)
}

/// Resamples to exactly `width × height`. Shrinking averages the source
/// area each output pixel covers (a box filter, so fine detail such as a
/// thin fracture line is not skipped the way nearest-neighbour would);
/// enlarging interpolates bilinearly. Separable: rows, then columns.
pub fn resample(plane: &Plane, width: u32, height: u32) -> Plane {
    let (width, height) = (width.max(1), height.max(1));
    if width == plane.width && height == plane.height {
        return plane.clone();
    }
    let ch = plane.channels.count();
    let (sw, sh) = (plane.width as usize, plane.height as usize);
    let (dw, dh) = (width as usize, height as usize);
    let x_weights = weights(sw, dw);
    let y_weights = weights(sh, dh);
    // Horizontal pass into f32 (sh × dw).
    let mut tmp = vec![0f32; sh * dw * ch];
    for y in 0..sh {
        let src = &plane.data[y * sw * ch..(y + 1) * sw * ch];
        for (x, (start, ws)) in x_weights.iter().enumerate() {
            for c in 0..ch {
                let acc: f32 = ws
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * f32::from(src[(start + k) * ch + c]))
                    .sum();
                tmp[(y * dw + x) * ch + c] = acc;
            }
        }
    }
    let mut out = vec![0u8; dh * dw * ch];
    for (y, (start, ws)) in y_weights.iter().enumerate() {
        for x in 0..dw {
            for c in 0..ch {
                let acc: f32 = ws
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * tmp[((start + k) * dw + x) * ch + c])
                    .sum();
                out[(y * dw + x) * ch + c] = acc.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Plane {
        width,
        height,
        channels: plane.channels,
        data: out,
    }
}

/// For each output index: the first source index and the weights of the
/// source samples from there (summing to 1).
fn weights(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            if scale > 1.0 {
                let (a, b) = (i as f64 * scale, (i + 1) as f64 * scale);
                let first = a.floor() as usize;
                let last = (b.ceil() as usize).min(src);
                let ws = (first..last)
                    .map(|j| {
                        let overlap = (b.min(j as f64 + 1.0) - a.max(j as f64)).max(0.0);
                        (overlap / scale) as f32
                    })
                    .collect();
                (first, ws)
            } else {
                let centre = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f64);
                let j0 = centre.floor() as usize;
                let frac = (centre - j0 as f64) as f32;
                if j0 + 1 < src {
                    (j0, vec![1.0 - frac, frac])
                } else {
                    (j0, vec![1.0])
                }
            }
        })
        .collect()
}
