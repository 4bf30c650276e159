//! RLE Lossless (PS3.5 Annex G), every sample size (dicom-rs stops at 16
//! bits). One segment per byte of each sample, most significant byte first;
//! each segment is PackBits, unpacked straight to its strided place in the
//! output (no per-segment buffer).

use super::{corrupt, typed_samples, FrameData, Geometry};
use crate::error::{ImagingError, Result};

/// Decodes one frame's RLE fragment to typed, pixel-interleaved samples.
pub(super) fn decode_frame(fragment: &[u8], g: &Geometry) -> Result<FrameData> {
    let all = decode_planes(fragment, g)?;
    let pixels = g.rows as usize * g.columns as usize;
    let planes: Vec<&[u8]> = all.chunks_exact(pixels.max(1)).collect();
    let bytes_per_sample = usize::from(g.bits_allocated / 8);
    // The common CT/MR case, composed in one vectorisable pass.
    if g.samples_per_pixel == 1 && bytes_per_sample == 2 {
        let (hi, lo) = (planes[0], planes[1]);
        let words = hi.iter().zip(lo).map(|(&h, &l)| u16::from_be_bytes([h, l]));
        return Ok(if g.signed {
            FrameData::I16(words.map(|w| w as i16).collect())
        } else {
            FrameData::U16(words.collect())
        });
    }
    if g.samples_per_pixel == 1 && bytes_per_sample == 1 {
        return Ok(if g.signed {
            FrameData::I8(all.into_iter().map(|b| b as i8).collect())
        } else {
            FrameData::U8(all)
        });
    }
    // Anything else: interleave to little-endian bytes, then type them.
    let spp = usize::from(g.samples_per_pixel);
    let mut le = vec![0u8; pixels * planes.len()];
    for (seg, plane) in planes.iter().enumerate() {
        let (sample, msb_index) = (seg / bytes_per_sample, seg % bytes_per_sample);
        let byte = bytes_per_sample - 1 - msb_index;
        for (p, &value) in plane.iter().enumerate() {
            le[(p * spp + sample) * bytes_per_sample + byte] = value;
        }
    }
    typed_samples(&le, g)
}

/// Every segment unpacked to a plane of `rows × columns` bytes, the planes
/// one after another in one buffer (one allocation per frame, not one per
/// segment: large allocations cost page faults).
fn decode_planes(fragment: &[u8], g: &Geometry) -> Result<Vec<u8>> {
    let pixels = g.rows as usize * g.columns as usize;
    let segments = usize::from(g.samples_per_pixel) * usize::from(g.bits_allocated / 8);
    let header = fragment.get(..64).ok_or_else(truncated)?;
    let word = |i: usize| {
        u32::from_le_bytes([
            header[4 * i],
            header[4 * i + 1],
            header[4 * i + 2],
            header[4 * i + 3],
        ]) as usize
    };
    if segments == 0 || segments > 15 || word(0) != segments {
        return Err(corrupt("the RLE header does not match the image"));
    }
    let mut out = Vec::with_capacity(pixels * segments);
    for seg in 0..segments {
        let start = word(seg + 1);
        let end = if seg + 1 < segments {
            word(seg + 2)
        } else {
            fragment.len()
        };
        let data = fragment.get(start..end).ok_or_else(truncated)?;
        unpack_bits(data, &mut out, pixels)?;
    }
    Ok(out)
}

fn truncated() -> ImagingError {
    ImagingError::Truncated {
        what: "pixel data".into(),
    }
}

/// PackBits: n in 0..=127 copies n+1 literal bytes, -127..=-1 repeats the
/// next byte 1-n times, -128 does nothing. Appends `len` bytes to `out`.
fn unpack_bits(data: &[u8], out: &mut Vec<u8>, len: usize) -> Result<()> {
    let len = out.len() + len;
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
    Ok(())
}
