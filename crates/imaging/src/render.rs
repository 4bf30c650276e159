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
