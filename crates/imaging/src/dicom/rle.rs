//! RLE Lossless (PS3.5 Annex G) for sample sizes dicom-rs does not decode
//! (32 bits). One segment per byte of each sample, most significant byte
//! first; each segment is PackBits.

use super::{corrupt, Geometry};
use crate::error::{ImagingError, Result};

/// Decodes one frame's RLE fragment to little-endian, pixel-interleaved
/// samples.
pub(super) fn decode_frame(fragment: &[u8], g: &Geometry) -> Result<Vec<u8>> {
    let pixels = g.rows as usize * g.columns as usize;
    let bytes_per_sample = usize::from(g.bits_allocated / 8);
    let spp = usize::from(g.samples_per_pixel);
    let segments = spp * bytes_per_sample;
    let header = fragment.get(..64).ok_or_else(truncated)?;
    let word = |i: usize| {
        u32::from_le_bytes([header[4 * i], header[4 * i + 1], header[4 * i + 2], header[4 * i + 3]])
            as usize
    };
    if word(0) != segments {
        return Err(corrupt("the RLE header does not match the image"));
    }
    let mut out = vec![0u8; pixels * segments];
    for seg in 0..segments {
        let start = word(seg + 1);
        let end = if seg + 1 < segments {
            word(seg + 2)
        } else {
            fragment.len()
        };
        let data = fragment.get(start..end).ok_or_else(truncated)?;
        let plane = unpack_bits(data, pixels)?;
        // Segment `seg` is byte (bytes_per_sample - 1 - k) of sample s.
        let (sample, msb_index) = (seg / bytes_per_sample, seg % bytes_per_sample);
        let byte = bytes_per_sample - 1 - msb_index;
        for (p, value) in plane.into_iter().enumerate() {
            out[(p * spp + sample) * bytes_per_sample + byte] = value;
        }
    }
    Ok(out)
}

fn truncated() -> ImagingError {
    ImagingError::Truncated {
        what: "pixel data".into(),
    }
}

/// PackBits: n in 0..=127 copies n+1 literal bytes, -127..=-1 repeats the
/// next byte 1-n times, -128 does nothing.
fn unpack_bits(data: &[u8], len: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0;
    while out.len() < len && i < data.len() {
        let n = data[i] as i8;
        i += 1;
        if n >= 0 {
            let count = n as usize + 1;
            let literal = data.get(i..i + count).ok_or_else(truncated)?;
            out.extend_from_slice(literal);
            i += count;
        } else if n != -128 {
            let value = *data.get(i).ok_or_else(truncated)?;
            out.resize(out.len() + (1 - isize::from(n)) as usize, value);
            i += 1;
        }
    }
    if out.len() < len {
        return Err(truncated());
    }
    out.truncate(len);
    Ok(out)
}
