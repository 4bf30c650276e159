//! PNG, JPEG, TIFF and BMP. Decoded under a pixel and memory limit (a small
//! file can declare a gigapixel image: a decompression bomb), then re-encoded
//! as PNG: only pixels survive, so EXIF (GPS, device serials, dates), PNG
//! text chunks and TIFF tags that may name the patient are dropped.

use std::io::{BufReader, Cursor};
use std::path::Path;

use image::{ImageFormat, ImageReader};

use crate::limits::Limits;
use crate::{ImagingError, Result};

/// A re-encoded raster image.
#[derive(Debug, Clone)]
pub struct Raster {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// `"MONOCHROME2"` for grey images, `"RGB"` otherwise (alpha dropped).
    pub photometric: &'static str,
}

/// Decodes the image at `path` (format from its bytes) and re-encodes it as
/// PNG without metadata.
pub fn reencode(path: &Path, limits: &Limits) -> Result<Raster> {
    let file = std::fs::File::open(path)?;
    let mut reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(|_| ImagingError::Io)?;
    if !matches!(
        reader.format(),
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Tiff | ImageFormat::Bmp)
    ) {
        return Err(ImagingError::NotRecognised);
    }
    let side = u32::try_from(limits.max_raster_pixels).unwrap_or(u32::MAX);
    let mut img_limits = image::Limits::default();
    img_limits.max_image_width = Some(side.min(1 << 16));
    img_limits.max_image_height = Some(side.min(1 << 16));
    // RGBA 16-bit is the widest decode buffer: 8 bytes per pixel.
    img_limits.max_alloc = Some(limits.max_raster_pixels.saturating_mul(8));
    reader.limits(img_limits);
    let (w, h) = reader.into_dimensions().map_err(decode_error)?;
    if (w as u64) * (h as u64) > limits.max_raster_pixels {
        return Err(ImagingError::TooLarge {
            what: "the image".into(),
            limit: format!("{} megapixels", limits.max_raster_pixels / 1_000_000),
        });
    }
    // Dimensions checked, now decode from the start under the same limits.
    let mut img = ImageReader::open(path)
        .map_err(|_| ImagingError::Io)?
        .with_guessed_format()
        .map_err(|_| ImagingError::Io)?;
    let mut decode_limits = image::Limits::default();
    decode_limits.max_alloc = Some(limits.max_raster_pixels.saturating_mul(8));
    img.limits(decode_limits);
    let decoded = img.decode().map_err(decode_error)?;
    let grey = !decoded.color().has_color();
    let wide = decoded.color().bytes_per_pixel() > decoded.color().channel_count();
    let out_img: image::DynamicImage = match (grey, wide) {
        (true, true) => decoded.into_luma16().into(),
        (true, false) => decoded.into_luma8().into(),
        (false, true) => decoded.into_rgb16().into(),
        (false, false) => decoded.into_rgb8().into(),
    };
    let mut png = Vec::new();
    out_img
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|_| ImagingError::Io)?;
    Ok(Raster {
        png,
        width: w,
        height: h,
        photometric: if grey { "MONOCHROME2" } else { "RGB" },
    })
}

fn decode_error(e: image::ImageError) -> ImagingError {
    match e {
        image::ImageError::Limits(_) => ImagingError::TooLarge {
            what: "the image".into(),
            limit: "the decoding limit".into(),
        },
        image::ImageError::Unsupported(_) => ImagingError::Unsupported {
            detail: "this variant of the image format".into(),
        },
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImagingError::Truncated {
                what: "the image".into(),
            }
        }
        _ => ImagingError::Corrupt {
            detail: "the image cannot be decoded".into(),
        },
    }
}
