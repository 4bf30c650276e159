//! PNG previews and tiles for the viewer, rendered server-side so the viewer
//! needs no WebGL. [`plane_to_png`] is the shared last step: NIfTI and raster
//! images end there too.

use std::path::Path;

use crate::dicom;
use crate::error::{ImagingError, Result};
use crate::pixel::{self, Channels, Plane, Window};

/// An encoded PNG and its size in pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Renders frame `frame` of a DICOM file: `window` for grey images, colour
/// converted to RGB, scaled down (area average) to fit `max_size × max_size`
/// with the physical aspect ratio (Pixel Spacing) kept; never enlarged.
pub fn render_dicom_png(
    path: &Path,
    frame: u32,
    window: Window,
    max_size: u32,
) -> Result<Rendered> {
    let file = dicom::open(path)?;
    render_dicom_file(&file, frame, window, max_size)
}

/// [`render_dicom_png`] for a file already parsed.
pub fn render_dicom_file(
    file: &dicom::DicomFile,
    frame: u32,
    window: Window,
    max_size: u32,
) -> Result<Rendered> {
    let decoded = file.decode_frame(frame)?;
    let plane = pixel::to_display(&decoded, window)?;
    let (width, height) = pixel::fit_size(
        plane.width,
        plane.height,
        file.pixel_spacing(),
        max_size,
        max_size,
    );
    let plane = pixel::resample(&plane, width, height);
    Ok(Rendered {
        png: plane_to_png(&plane)?,
        width: plane.width,
        height: plane.height,
    })
}

/// Encodes an 8-bit grey or RGB plane as PNG. Only the image chunks are
/// written: no text, time or other metadata that could carry identity.
pub fn plane_to_png(plane: &Plane) -> Result<Vec<u8>> {
    let expected = plane.width as usize * plane.height as usize * plane.channels.count();
    if plane.width == 0 || plane.height == 0 || plane.data.len() != expected {
        return Err(ImagingError::Corrupt {
            detail: "the image to render has no pixels".into(),
        });
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, plane.width, plane.height);
    encoder.set_color(match plane.channels {
        Channels::Grey => png::ColorType::Grayscale,
        Channels::Rgb => png::ColorType::Rgb,
    });
    encoder.set_depth(png::BitDepth::Eight);
    // Previews are rendered per request and cached; fast beats smallest.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(|_| ImagingError::Io)?;
    writer
        .write_image_data(&plane.data)
        .map_err(|_| ImagingError::Io)?;
    writer.finish().map_err(|_| ImagingError::Io)?;
    Ok(out)
}

/// Renders frame `frame` of a stored file of any kind: a DICOM frame, a
/// NIfTI slice (`frame` = volume × slices + slice) or a raster image (frame
/// 0), windowed, fitted into `max_size × max_size`.
pub fn render_png(
    path: &Path,
    kind: crate::InstanceKind,
    frame: u32,
    window: Window,
    max_size: u32,
) -> Result<Rendered> {
    match kind {
        crate::InstanceKind::Dicom => render_dicom_png(path, frame, window, max_size),
        crate::InstanceKind::Nifti => render_nifti(path, frame, window, max_size),
        crate::InstanceKind::Raster => render_raster(path, max_size),
    }
}

fn finish(plane: Plane, spacing: Option<[f64; 2]>, max_size: u32) -> Result<Rendered> {
    let (width, height) = pixel::fit_size(plane.width, plane.height, spacing, max_size, max_size);
    let plane = pixel::resample(&plane, width, height);
    Ok(Rendered {
        png: plane_to_png(&plane)?,
        width: plane.width,
        height: plane.height,
    })
}

/// Grey values to 8 bits: a preset or explicit window as given, otherwise
/// the slice's own range (NIfTI carries no display window).
fn window_values(values: &[f32], window: Window) -> Vec<u8> {
    let (center, width) = match window {
        Window::Preset(p) => (p.center(), p.width()),
        Window::Explicit { center, width } => (center, width),
        Window::FromFile | Window::MinMax => {
            let (lo, hi) = values
                .iter()
                .filter(|v| v.is_finite())
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            if lo > hi {
                (0.0, 1.0)
            } else {
                let (lo, hi) = (f64::from(lo), f64::from(hi));
                ((lo + hi) / 2.0, (hi - lo).max(1.0))
            }
        }
    };
    pixel::apply_window(values, center, width, crate::dicom::VoiLutFunction::Linear)
}

fn render_nifti(path: &Path, frame: u32, window: Window, max_size: u32) -> Result<Rendered> {
    let vol = crate::nifti::open(path)?;
    let [nx, ny, nz, nt] = vol.shape();
    let nz = nz.max(1);
    let (z, t) = (frame as usize % nz, frame as usize / nz);
    if t >= nt.max(1) {
        return Err(ImagingError::Unsupported {
            detail: format!("frame {frame} is outside the NIfTI volume"),
        });
    }
    let values = vol.slice(z, t)?;
    let grey = window_values(&values, window);
    // NIfTI rows run along +y (anterior in RAS); screens draw top-down, so
    // flip to show anterior at the top, as radiology viewers do.
    let mut data = Vec::with_capacity(grey.len());
    for row in grey.chunks(nx.max(1)).rev() {
        data.extend_from_slice(row);
    }
    let p = vol.header.pixdim;
    let spacing = (p[1] > 0.0 && p[2] > 0.0).then_some([p[2], p[1]]);
    finish(
        Plane {
            width: u32::try_from(nx).unwrap_or(0),
            height: u32::try_from(ny).unwrap_or(0),
            channels: Channels::Grey,
            data,
        },
        spacing,
        max_size,
    )
}

fn render_raster(path: &Path, max_size: u32) -> Result<Rendered> {
    let img = image::open(path).map_err(|_| ImagingError::Corrupt {
        detail: "the stored image could not be decoded".into(),
    })?;
    let plane = if img.color().has_color() {
        let rgb = img.to_rgb8();
        Plane {
            width: rgb.width(),
            height: rgb.height(),
            channels: Channels::Rgb,
            data: rgb.into_raw(),
        }
    } else {
        let g = img.to_luma8();
        Plane {
            width: g.width(),
            height: g.height(),
            channels: Channels::Grey,
            data: g.into_raw(),
        }
    };
    finish(plane, None, max_size)
}
