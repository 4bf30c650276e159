//! DICOM parsing and pixel decoding, one frame at a time.
//!
//! ```no_run
//! use imaging::dicom;
//! # fn main() -> imaging::Result<()> {
//! let file = dicom::open(std::path::Path::new("CT_small.dcm"))?;
//! println!("{} × {} × {} frames, {}", file.rows().unwrap_or(0), file.columns().unwrap_or(0),
//!     file.frames(), file.transfer_syntax());
//! let frame = file.decode_frame(0)?;
//! let hu = imaging::pixel::modality_values(&frame);
//! # let _ = hu; Ok(()) }
//! ```
//!
//! Parsing and the codecs are dicom-rs (`dicom-object`, `dicom-pixeldata`):
//! JPEG baseline/extended (8-bit)/lossless and deflate in pure Rust, JPEG
//! 2000 through OpenJPEG, JPEG-LS through CharLS. Three codec paths are ours:
//! RLE (any sample size; dicom-rs stops at 16 bits), RGB JPEGs written
//! without a colour transform (decoded as RGB, as pydicom does) and the
//! JPEG 2000 sign fix-up when the codestream and Pixel Representation
//! disagree. 12-bit lossy JPEG (process 4) is refused as unsupported: no
//! Rust decoder implements it. This module adds what an upload of untrusted
//! files needs on top:
//! - files without the 128-byte preamble, or without the file meta group at
//!   all (a bare implicit/explicit VR data set, as some old systems export),
//!   are recognised by their first element;
//! - every declared element length is checked against the bytes that are
//!   really there *before* dicom-rs allocates a buffer of that length, so a
//!   file claiming a 4 GB element is refused instead of allocating 4 GB;
//! - decoding yields one frame (memory is one decoded frame on top of the
//!   file), with typed samples exactly as pydicom's `pixel_array` gives them
//!   (YBR converted to RGB, no masking of unused high bits);
//! - little-endian native and RLE pixel data are decoded straight from the
//!   file buffer (dicom-rs parses the header only), several times faster
//!   than pydicom: bench/imaging_decode.sh;
//! - every failure is an [`ImagingError`] worded for the uploader.

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use dicom_core::header::HasLength;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::meta::{FileMetaTable, FileMetaTableBuilder};
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_pixeldata::{PixelDecoder, PlanarConfiguration};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

pub use dicom_pixeldata::PhotometricInterpretation as Photometric;
pub use dicom_pixeldata::{VoiLutFunction, WindowLevel};

use crate::error::{ImagingError, Result};

mod rle;

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
const JPEG_DCT: [&str; 2] = ["1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"];
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
const JPEG_2000: [&str; 5] = [
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
];
const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

/// A parsed DICOM file: the dicom-rs object plus how it was found.
#[derive(Debug, Clone)]
pub struct DicomFile {
    obj: DefaultDicomObject,
    has_file_meta: bool,
    /// Pixel Data kept as bytes of the file instead of in `obj` (see
    /// [`DicomFile::object`]).
    raw_pixels: Option<RawPixels>,
}

/// The file's bytes and where its top-level Pixel Data value lies. Used for
/// little-endian native and RLE pixel data: dicom-rs would copy the value
/// twice (zero-filled buffer, then native words); slicing the file buffer
/// decodes straight into the output, which is what makes decoding several
/// times faster than pydicom's (see bench/README.md).
#[derive(Debug, Clone)]
struct RawPixels {
    file: std::sync::Arc<Vec<u8>>,
    /// Start of the value: samples, or the first item of encapsulated data.
    start: usize,
    /// Defined length (native) or `None` (encapsulated, up to the delimiter).
    len: Option<usize>,
}

/// Opens a DICOM file from disk. The whole file is read into memory (dicom-rs
/// parses in memory); callers bound file sizes with [`crate::limits`].
pub fn open(path: &Path) -> Result<DicomFile> {
    open_vec(std::fs::read(path)?)
}

/// Parses DICOM bytes: a Part 10 file (with or without the 128-byte preamble)
/// or a bare data set in implicit/explicit VR little endian or explicit VR
/// big endian whose first element is in group 0008.
pub fn open_bytes(bytes: &[u8]) -> Result<DicomFile> {
    if bytes.is_empty() {
        return Err(ImagingError::Empty);
    }
    open_vec(bytes.to_vec())
}

/// [`open_bytes`] taking ownership, so the pixel data need not be copied.
pub fn open_vec(bytes: Vec<u8>) -> Result<DicomFile> {
    if let Some(fast) = open_with_raw_pixels(&bytes)? {
        let (obj, start, len) = fast;
        return Ok(DicomFile {
            obj,
            has_file_meta: true,
            raw_pixels: Some(RawPixels {
                file: std::sync::Arc::new(bytes),
                start,
                len,
            }),
        });
    }
    parse_all(&bytes)
}

/// The fast path: a Part 10 file in implicit or explicit VR little endian
/// (native pixel data) or RLE Lossless, whose top-level Pixel Data is the
/// last element. dicom-rs parses the header up to the Pixel Data; the
/// pixel bytes stay in the file buffer. Anything else: `None`.
fn open_with_raw_pixels(
    bytes: &[u8],
) -> Result<Option<(DefaultDicomObject, usize, Option<usize>)>> {
    let Ok(Layout::Part10 { meta_start }) = detect_layout(bytes) else {
        return Ok(None);
    };
    let dataset_start = check_meta_lengths(bytes, meta_start + 4)?;
    let Ok(meta) = FileMetaTable::from_reader(&bytes[meta_start..dataset_start]) else {
        return Ok(None);
    };
    let ts = meta.transfer_syntax().to_string();
    if ![IMPLICIT_VR_LE, EXPLICIT_VR_LE, RLE_LOSSLESS].contains(&ts.as_str())
        || dataset_syntax(bytes, dataset_start, &ts) != ts
    {
        return Ok(None);
    }
    let Some(pixel) = check_dataset_lengths(bytes, dataset_start, &ts)? else {
        return Ok(None);
    };
    let encapsulated = pixel.len.is_none();
    if encapsulated != (ts == RLE_LOSSLESS) {
        return Ok(None);
    }
    let Some(syntax) = TransferSyntaxRegistry.get(&ts) else {
        return Ok(None);
    };
    let dataset =
        InMemDicomObject::read_dataset_with_ts(&bytes[dataset_start..pixel.header_at], syntax)
            .map_err(|e| read_error(&e))?;
    Ok(Some((
        dataset.with_exact_meta(meta),
        pixel.value_at,
        pixel.len,
    )))
}

/// The general path: dicom-rs parses everything, pixel data included.
fn parse_all(bytes: &[u8]) -> Result<DicomFile> {
    if bytes.is_empty() {
        return Err(ImagingError::Empty);
    }
    match detect_layout(bytes)? {
        Layout::Part10 { meta_start } => {
            let dataset_start = check_meta_lengths(bytes, meta_start + 4)?;
            let meta = FileMetaTable::from_reader(&bytes[meta_start..dataset_start])
                .map_err(|e| read_error(&e))?;
            let inflated;
            let (body, declared) = if meta.transfer_syntax() == DEFLATED_EXPLICIT_VR_LE {
                inflated = inflate(&bytes[dataset_start..])?;
                (&inflated[..], EXPLICIT_VR_LE)
            } else {
                (&bytes[dataset_start..], meta.transfer_syntax())
            };
            let read_as = dataset_syntax(body, 0, declared);
            check_dataset_lengths(body, 0, &read_as)?;
            let syntax =
                TransferSyntaxRegistry
                    .get(&read_as)
                    .ok_or_else(|| ImagingError::Unsupported {
                        detail: format!("transfer syntax {read_as}"),
                    })?;
            let dataset =
                InMemDicomObject::read_dataset_with_ts(body, syntax).map_err(|e| read_error(&e))?;
            Ok(DicomFile {
                obj: dataset.with_exact_meta(meta),
                has_file_meta: true,
                raw_pixels: None,
            })
        }
        Layout::Bare { ts } => {
            check_dataset_lengths(bytes, 0, ts)?;
            let syntax =
                TransferSyntaxRegistry
                    .get(ts)
                    .ok_or_else(|| ImagingError::Unsupported {
                        detail: format!("transfer syntax {ts}"),
                    })?;
            let dataset = InMemDicomObject::read_dataset_with_ts(bytes, syntax)
                .map_err(|e| read_error(&e))?;
            let obj = dataset
                .with_meta(FileMetaTableBuilder::new().transfer_syntax(ts))
                .map_err(|_| corrupt("the DICOM header could not be read"))?;
            Ok(DicomFile {
                obj,
                has_file_meta: false,
                raw_pixels: None,
            })
        }
    }
}

enum Layout {
    /// `DICM` magic at `meta_start` (128 with a preamble, 0 without).
    Part10 { meta_start: usize },
    /// No file meta group: a bare data set in this transfer syntax.
    Bare { ts: &'static str },
}

fn detect_layout(bytes: &[u8]) -> Result<Layout> {
    if bytes.get(128..132) == Some(b"DICM") {
        return Ok(Layout::Part10 { meta_start: 128 });
    }
    if bytes.starts_with(b"DICM") {
        return Ok(Layout::Part10 { meta_start: 0 });
    }
    if bytes.len() < 8 {
        return Err(ImagingError::NotRecognised);
    }
    let explicit_vr = is_vr(&bytes[4..6]);
    // Bare data sets start with the Identifying group (0008): Specific
    // Character Set, Image Type or at least SOP Class UID.
    if u16::from_le_bytes([bytes[0], bytes[1]]) == 0x0008 {
        let ts = if explicit_vr {
            EXPLICIT_VR_LE
        } else {
            IMPLICIT_VR_LE
        };
        return Ok(Layout::Bare { ts });
    }
    if u16::from_be_bytes([bytes[0], bytes[1]]) == 0x0008 && explicit_vr {
        return Ok(Layout::Bare { ts: EXPLICIT_VR_BE });
    }
    Err(ImagingError::NotRecognised)
}

fn is_vr(b: &[u8]) -> bool {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<dicom_core::VR>().ok())
        .is_some()
}

/// Whether an explicit VR has the short (2-byte) length form, PS3.5 7.1.2.
/// Everything else, including bytes that are no VR at all, has the long
/// form: dicom-rs reads an unknown VR as UN, and this check must walk the
/// file exactly as dicom-rs will read it.
fn has_short_length(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

#[derive(Clone, Copy)]
struct Encoding {
    explicit_vr: bool,
    big_endian: bool,
}

impl Encoding {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let two = [*b.get(at)?, *b.get(at + 1)?];
        Some(if self.big_endian {
            u16::from_be_bytes(two)
        } else {
            u16::from_le_bytes(two)
        })
    }

    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let four = [
            *b.get(at)?,
            *b.get(at + 1)?,
            *b.get(at + 2)?,
            *b.get(at + 3)?,
        ];
        Some(if self.big_endian {
            u32::from_be_bytes(four)
        } else {
            u32::from_le_bytes(four)
        })
    }
}

/// One element header as the length check sees it.
struct Header {
    tag: Tag,
    len: u32,
    header_len: usize,
    /// An SQ element: its defined-length contents are walked, not skipped.
    is_sequence: bool,
}

fn read_header(bytes: &[u8], at: usize, enc: Encoding) -> Option<Header> {
    let tag = Tag(enc.u16(bytes, at)?, enc.u16(bytes, at + 2)?);
    // Items and delimiters have no VR in any encoding.
    if tag.0 == 0xFFFE || !enc.explicit_vr {
        let is_sequence = tag.0 != 0xFFFE && implicit_is_sequence(tag);
        return Some(Header {
            tag,
            len: enc.u32(bytes, at + 4)?,
            header_len: 8,
            is_sequence,
        });
    }
    let vr = [*bytes.get(at + 4)?, *bytes.get(at + 5)?];
    if has_short_length(&vr) {
        Some(Header {
            tag,
            len: u32::from(enc.u16(bytes, at + 6)?),
            header_len: 8,
            is_sequence: false,
        })
    } else {
        Some(Header {
            tag,
            len: enc.u32(bytes, at + 8)?,
            header_len: 12,
            is_sequence: &vr == b"SQ",
        })
    }
}

/// In implicit VR the dictionary decides what is a sequence, as in dicom-rs.
fn implicit_is_sequence(tag: Tag) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .is_some_and(|e| e.vr() == VirtualVr::Exact(dicom_core::VR::SQ))
}

/// The syntax to parse the data set with. Some writers declare an explicit
/// VR syntax (often a JPEG one) but write the data set in implicit VR; like
/// pydicom, read what is there: no valid VR after the first tag means
/// implicit VR little endian. The meta keeps the declared syntax, which
/// still selects the pixel data codec.
fn dataset_syntax(bytes: &[u8], start: usize, declared: &str) -> String {
    let implicit_there = bytes.get(start + 4..start + 6).is_some_and(|vr| !is_vr(vr));
    let explicit_le_family = declared != IMPLICIT_VR_LE
        && declared != EXPLICIT_VR_BE
        && declared != DEFLATED_EXPLICIT_VR_LE;
    if implicit_there && explicit_le_family {
        IMPLICIT_VR_LE.to_string()
    } else {
        declared.to_string()
    }
}

/// Checks the lengths in the file meta group (always explicit VR little
/// endian) and returns where the data set starts.
fn check_meta_lengths(bytes: &[u8], start: usize) -> Result<usize> {
    let enc = Encoding {
        explicit_vr: true,
        big_endian: false,
    };
    let mut at = start;
    while let Some(h) = read_header(bytes, at, enc) {
        if h.tag.0 != 0x0002 {
            break;
        }
        let value_at = at + h.header_len;
        at = value_at + check_fits(bytes, value_at, &h)?;
    }
    Ok(at)
}

/// Walks every element header of the data set the way dicom-rs will read
/// it, entering sequences and items (of defined or undefined length), and
/// refuses any defined length longer than the bytes left. dicom-rs
/// allocates (and zero-fills) a value's declared length before reading it;
/// this is what keeps a forged length from costing gigabytes: after this
/// check no value dicom-rs allocates is larger than the file.
/// Where the last Pixel Data element of a data set lies.
struct PixelDataAt {
    header_at: usize,
    value_at: usize,
    /// `None` for undefined length (encapsulated).
    len: Option<usize>,
}

fn check_dataset_lengths(bytes: &[u8], start: usize, ts: &str) -> Result<Option<PixelDataAt>> {
    let enc = Encoding {
        explicit_vr: ts != IMPLICIT_VR_LE,
        big_endian: ts == EXPLICIT_VR_BE,
    };
    let mut at = start;
    // Inside encapsulated pixel data, items are compressed fragments.
    let mut in_fragments = false;
    let mut pixel_data = None;
    while let Some(h) = read_header(bytes, at, enc) {
        let value_at = at + h.header_len;
        if h.tag == Tag(0xFFFE, 0xE0DD) {
            in_fragments = false;
        }
        if h.tag == tags::PIXEL_DATA {
            pixel_data = Some(PixelDataAt {
                header_at: at,
                value_at,
                len: (h.len != UNDEFINED_LENGTH).then_some(h.len as usize),
            });
        } else if h.tag.0 != 0xFFFE && h.tag.0 < 0xFFFA {
            // Something other than trailing padding or signatures after the
            // pixel data: not the simple layout the fast path expects.
            pixel_data = pixel_data.filter(|_| false);
        }
        if h.len == UNDEFINED_LENGTH {
            in_fragments |= h.tag == tags::PIXEL_DATA;
            at = value_at;
            continue;
        }
        let len = check_fits(bytes, value_at, &h)?;
        let enter = if h.tag == Tag(0xFFFE, 0xE000) {
            !in_fragments
        } else {
            h.is_sequence
        };
        at = if enter { value_at } else { value_at + len };
    }
    Ok(pixel_data)
}

/// Deflated data sets are inflated here, under a cap, so their lengths can
/// be checked like any other (and a deflate bomb stops at the cap).
const MAX_INFLATED_BYTES: u64 = 1 << 30;

fn inflate(deflated: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|_| corrupt("the compressed (deflated) DICOM data set could not be inflated"))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(ImagingError::TooLarge {
            what: "the inflated DICOM data set".into(),
            limit: "1 GiB".into(),
        });
    }
    Ok(out)
}

fn check_fits(bytes: &[u8], value_at: usize, h: &Header) -> Result<usize> {
    let len = h.len as usize;
    let left = bytes.len().saturating_sub(value_at);
    if len > left {
        // A file cut short is missing a few bytes of its last element; a
        // length far beyond the file (the 4 GB case) is forged or garbage.
        if len <= left.saturating_mul(2).max(1 << 20) {
            let what = if h.tag == tags::PIXEL_DATA {
                "pixel data"
            } else {
                "the DICOM file"
            };
            return Err(ImagingError::Truncated { what: what.into() });
        }
        return Err(ImagingError::Corrupt {
            detail: format!(
                "element ({:04X},{:04X}) declares {} bytes but the file has only {} left",
                h.tag.0, h.tag.1, h.len, left
            ),
        });
    }
    Ok(len)
}

fn no_image() -> ImagingError {
    ImagingError::Unsupported {
        detail: "the file holds no image (no pixel data), e.g. a report or a DICOMDIR".into(),
    }
}

fn corrupt(detail: &str) -> ImagingError {
    ImagingError::Corrupt {
        detail: detail.to_string(),
    }
}

/// dicom-rs errors carry positions and internal names; the uploader gets one
/// of a few plain sentences. An unexpected end of data anywhere in the chain
/// means the file was cut short.
fn read_error(e: &(dyn std::error::Error + 'static)) -> ImagingError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::UnexpectedEof {
                return ImagingError::Truncated {
                    what: "the DICOM file".into(),
                };
            }
        }
        source = err.source();
    }
    let text = e.to_string();
    if text.contains("transfer syntax") || text.contains("Transfer syntax") {
        return ImagingError::Unsupported {
            detail: "the file's transfer syntax is missing or unknown".into(),
        };
    }
    corrupt("the DICOM header could not be read")
}

/// Typed samples of one frame, pixel-interleaved (R G B R G B … for colour),
/// row by row. The type follows Bits Allocated and Pixel Representation, as
/// numpy's dtype does in pydicom.
#[derive(Debug, Clone, PartialEq)]
pub enum FrameData {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
}

impl FrameData {
    pub fn len(&self) -> usize {
        match self {
            FrameData::U8(v) => v.len(),
            FrameData::I8(v) => v.len(),
            FrameData::U16(v) => v.len(),
            FrameData::I16(v) => v.len(),
            FrameData::U32(v) => v.len(),
            FrameData::I32(v) => v.len(),
            FrameData::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// numpy's name for the sample type (`uint16`, `int16`…).
    pub fn dtype(&self) -> &'static str {
        match self {
            FrameData::U8(_) => "uint8",
            FrameData::I8(_) => "int8",
            FrameData::U16(_) => "uint16",
            FrameData::I16(_) => "int16",
            FrameData::U32(_) => "uint32",
            FrameData::I32(_) => "int32",
            FrameData::F32(_) => "float32",
        }
    }

    /// Sample `i` as f64 (exact for every variant).
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        Some(match self {
            FrameData::U8(v) => f64::from(*v.get(i)?),
            FrameData::I8(v) => f64::from(*v.get(i)?),
            FrameData::U16(v) => f64::from(*v.get(i)?),
            FrameData::I16(v) => f64::from(*v.get(i)?),
            FrameData::U32(v) => f64::from(*v.get(i)?),
            FrameData::I32(v) => f64::from(*v.get(i)?),
            FrameData::F32(v) => f64::from(*v.get(i)?),
        })
    }

    /// Every sample as f32 (what the modality LUT and volumes work in).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            FrameData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            FrameData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            FrameData::U16(v) => v.iter().map(|&x| f32::from(x)).collect(),
            FrameData::I16(v) => v.iter().map(|&x| f32::from(x)).collect(),
            FrameData::U32(v) => v.iter().map(|&x| x as f32).collect(),
            FrameData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            FrameData::F32(v) => v.clone(),
        }
    }

    /// The samples as little-endian bytes (what pydicom's checksums hash).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            FrameData::U8(v) => v.clone(),
            FrameData::I8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            FrameData::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            FrameData::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            FrameData::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            FrameData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            FrameData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// The Palette Color lookup tables (PS3.3 C.7.6.3.1.5), entries widened to
/// 16 bits as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Palette {
    /// First stored value mapped (values below map to entry 0).
    pub first_mapped: i32,
    /// 8 or 16: bits per entry.
    pub bits: u16,
    pub red: Vec<u16>,
    pub green: Vec<u16>,
    pub blue: Vec<u16>,
}

/// A VOI LUT Sequence (0028,3010) item (PS3.3 C.11.2.1.1).
#[derive(Debug, Clone, PartialEq)]
pub struct VoiLut {
    /// First input value mapped; values below map to entry 0.
    pub min_pixel_value: i32,
    /// Bits per entry of the output range.
    pub bits_stored: u8,
    pub data: Vec<u16>,
    pub explanation: Option<String>,
}

/// A table lookup from the file: Modality LUT Sequence (0028,3000) item.
#[derive(Debug, Clone, PartialEq)]
pub struct ModalityLut {
    pub first_mapped: i32,
    pub data: Vec<u16>,
}

/// One decoded frame and what the file says about displaying it.
#[derive(Debug, Clone)]
pub struct Frame {
    pub rows: u32,
    pub columns: u32,
    pub samples_per_pixel: u16,
    /// After decoding: JPEG/JPEG 2000 colour and YBR frames are RGB here.
    pub photometric: Photometric,
    pub bits_stored: u16,
    pub data: FrameData,
    pub rescale_slope: f64,
    pub rescale_intercept: f64,
    /// Modality LUT Sequence, when the file has one instead of a rescale.
    pub modality_lut: Option<ModalityLut>,
    /// Window Center/Width pairs from the file, in file order.
    pub windows: Vec<WindowLevel>,
    pub voi_lut_function: VoiLutFunction,
    /// The first VOI LUT Sequence item, used when there is no window.
    pub voi_lut: Option<VoiLut>,
    pub palette: Option<Palette>,
}

impl DicomFile {
    /// The parsed header. For little-endian native and RLE files the Pixel
    /// Data element is left out of it (decoding reads it from the file
    /// buffer); use [`DicomFile::into_full_object`] for a complete object,
    /// e.g. to write the file back.
    pub fn object(&self) -> &DefaultDicomObject {
        &self.obj
    }

    /// The complete dicom-rs object, Pixel Data included.
    pub fn into_full_object(self) -> Result<DefaultDicomObject> {
        let Some(raw) = self.raw_pixels else {
            return Ok(self.obj);
        };
        let mut obj = self.obj;
        let value = &raw.file[raw.start..];
        let element = match raw.len {
            Some(len) => {
                let bytes = value.get(..len).ok_or_else(truncated_pixels)?;
                let vr = if obj
                    .element(tags::BITS_ALLOCATED)
                    .ok()
                    .and_then(|e| e.to_int::<u16>().ok())
                    .unwrap_or(8)
                    > 8
                {
                    dicom_core::VR::OW
                } else {
                    dicom_core::VR::OB
                };
                dicom_core::DataElement::new(
                    tags::PIXEL_DATA,
                    vr,
                    PrimitiveValue::from(bytes.to_vec()),
                )
            }
            None => {
                let (table, fragments) = raw_items(value)?;
                let offsets: Vec<u32> = table
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let fragments: Vec<Vec<u8>> = fragments.iter().map(|f| f.to_vec()).collect();
                dicom_core::DataElement::new(
                    tags::PIXEL_DATA,
                    dicom_core::VR::OB,
                    dicom_core::value::PixelFragmentSequence::new(offsets, fragments),
                )
            }
        };
        obj.put(element);
        Ok(obj)
    }

    /// False for a bare data set (no preamble, no meta group).
    pub fn has_file_meta(&self) -> bool {
        self.has_file_meta
    }

    pub fn transfer_syntax(&self) -> &str {
        self.obj.meta().transfer_syntax()
    }

    /// A string attribute, trimmed of DICOM padding; `None` if absent or empty.
    pub fn string(&self, tag: Tag) -> Option<String> {
        let s = self.obj.get(tag)?.to_str().ok()?;
        let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        (!s.is_empty()).then(|| s.to_string())
    }

    fn int<T: std::str::FromStr + TryFrom<i64>>(&self, tag: Tag) -> Option<T> {
        let v: i64 = self.obj.get(tag)?.to_int().ok()?;
        T::try_from(v).ok()
    }

    fn floats(&self, tag: Tag) -> Option<Vec<f64>> {
        self.obj
            .get(tag)?
            .to_multi_float64()
            .ok()
            .filter(|v| v.iter().all(|x| x.is_finite()))
    }

    pub fn rows(&self) -> Option<u32> {
        self.int(tags::ROWS)
    }

    pub fn columns(&self) -> Option<u32> {
        self.int(tags::COLUMNS)
    }

    /// Number of Frames, 1 when absent.
    pub fn frames(&self) -> u32 {
        self.int::<u32>(tags::NUMBER_OF_FRAMES)
            .filter(|&n| n > 0)
            .unwrap_or(1)
    }

    pub fn photometric(&self) -> Option<String> {
        self.string(tags::PHOTOMETRIC_INTERPRETATION)
    }

    pub fn bits_allocated(&self) -> Option<u16> {
        self.int(tags::BITS_ALLOCATED)
    }

    pub fn samples_per_pixel(&self) -> Option<u16> {
        self.int(tags::SAMPLES_PER_PIXEL)
    }

    pub fn modality(&self) -> Option<String> {
        self.string(tags::MODALITY)
    }

    pub fn sop_class_uid(&self) -> Option<String> {
        self.string(tags::SOP_CLASS_UID)
    }

    pub fn sop_instance_uid(&self) -> Option<String> {
        self.string(tags::SOP_INSTANCE_UID)
    }

    pub fn study_instance_uid(&self) -> Option<String> {
        self.string(tags::STUDY_INSTANCE_UID)
    }

    pub fn series_instance_uid(&self) -> Option<String> {
        self.string(tags::SERIES_INSTANCE_UID)
    }

    pub fn instance_number(&self) -> Option<i32> {
        self.int(tags::INSTANCE_NUMBER)
    }

    /// Image Position (Patient): the centre of the first voxel, LPS mm.
    pub fn image_position(&self) -> Option<[f64; 3]> {
        let v = self.floats(tags::IMAGE_POSITION_PATIENT)?;
        v.get(..3)?.try_into().ok()
    }

    /// Image Orientation (Patient): row then column direction cosines, LPS.
    pub fn image_orientation(&self) -> Option<[f64; 6]> {
        let v = self.floats(tags::IMAGE_ORIENTATION_PATIENT)?;
        v.get(..6)?.try_into().ok()
    }

    /// Pixel Spacing: between rows, then between columns, in mm.
    pub fn pixel_spacing(&self) -> Option<[f64; 2]> {
        let v = self.floats(tags::PIXEL_SPACING)?;
        v.get(..2)?.try_into().ok()
    }

    pub fn slice_thickness(&self) -> Option<f64> {
        self.floats(tags::SLICE_THICKNESS)?.first().copied()
    }

    pub fn has_pixel_data(&self) -> bool {
        self.raw_pixels.is_some()
            || self.obj.get(tags::PIXEL_DATA).is_some()
            || self.obj.get(tags::FLOAT_PIXEL_DATA).is_some()
    }

    /// Decodes frame `frame` (0-based). Memory: the decoded frame, plus for
    /// compressed syntaxes that frame's compressed bytes.
    pub fn decode_frame(&self, frame: u32) -> Result<Frame> {
        if !self.has_pixel_data() {
            return Err(no_image());
        }
        let geometry = Geometry::read(self)?;
        if frame >= geometry.frames {
            return Err(corrupt(&format!(
                "frame {} requested but the image has {}",
                frame + 1,
                geometry.frames
            )));
        }
        let (data, photometric) = if let Some(raw) = &self.raw_pixels {
            if raw.len.is_some() {
                self.raw_native_frame(raw, &geometry, frame)?
            } else {
                self.raw_rle_frame(raw, &geometry, frame)?
            }
        } else if let Some(float) = self.obj.get(tags::FLOAT_PIXEL_DATA) {
            (
                self.float_frame(float.value(), &geometry, frame)?,
                geometry.photometric.clone(),
            )
        } else {
            let element = self.obj.get(tags::PIXEL_DATA).ok_or_else(no_image)?;
            match element.value() {
                Value::Primitive(p) => self.native_frame(p, &geometry, frame)?,
                Value::PixelSequence(_) => self.encapsulated_frame(&geometry, frame)?,
                Value::Sequence(_) => return Err(corrupt("the pixel data is not an image")),
            }
        };
        let (windows, voi_lut_function, voi_lut) = self.voi(frame);
        Ok(Frame {
            rows: geometry.rows,
            columns: geometry.columns,
            samples_per_pixel: geometry.samples_per_pixel,
            photometric,
            bits_stored: geometry.bits_stored,
            data,
            rescale_slope: self.rescale(frame, tags::RESCALE_SLOPE).unwrap_or(1.0),
            rescale_intercept: self.rescale(frame, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
            modality_lut: self.modality_lut(),
            windows,
            voi_lut_function,
            voi_lut,
            palette: self.palette(),
        })
    }

    fn native_frame(
        &self,
        value: &PrimitiveValue,
        g: &Geometry,
        frame: u32,
    ) -> Result<(FrameData, Photometric)> {
        if g.bits_allocated == 1 {
            let all = value_bytes(value, 0, bit_frame_bytes(g, frame)?)?;
            return Ok((unpack_bits(&all, g, frame)?, g.photometric.clone()));
        }
        let (offset, stored_len) = g.native_frame_range(frame)?;
        let mut le = value_bytes(value, offset, stored_len)?;
        if self.transfer_syntax() == EXPLICIT_VR_BE
            && g.bits_allocated == 32
            && matches!(value, PrimitiveValue::U16(_))
        {
            // dicom-rs swapped each 16-bit OW word; a 32-bit sample of a big
            // endian file also has its two words in big-endian order.
            let mut swapped = le.into_owned();
            for sample in swapped.chunks_exact_mut(4) {
                sample.rotate_left(2);
            }
            le = Cow::Owned(swapped);
        }
        finish_native(le, g)
    }

    /// Native little-endian samples straight from the file buffer.
    fn raw_native_frame(
        &self,
        raw: &RawPixels,
        g: &Geometry,
        frame: u32,
    ) -> Result<(FrameData, Photometric)> {
        let value = raw
            .file
            .get(raw.start..raw.start + raw.len.unwrap_or(0))
            .ok_or_else(truncated_pixels)?;
        if g.bits_allocated == 1 {
            return Ok((unpack_bits(value, g, frame)?, g.photometric.clone()));
        }
        let (offset, stored_len) = g.native_frame_range(frame)?;
        let bytes = value
            .get(offset..offset + stored_len)
            .ok_or_else(truncated_pixels)?;
        finish_native(Cow::Borrowed(bytes), g)
    }

    /// RLE straight from the file buffer, with our decoder (all sample sizes).
    fn raw_rle_frame(
        &self,
        raw: &RawPixels,
        g: &Geometry,
        frame: u32,
    ) -> Result<(FrameData, Photometric)> {
        let fragments = raw_fragments(&raw.file[raw.start..])?;
        let fragment: Cow<[u8]> = if fragments.len() == g.frames as usize {
            Cow::Borrowed(
                fragments
                    .get(frame as usize)
                    .copied()
                    .ok_or_else(truncated_pixels)?,
            )
        } else if g.frames == 1 {
            Cow::Owned(fragments.concat())
        } else {
            return Err(ImagingError::Unsupported {
                detail: "multi-frame RLE data without one fragment per frame".into(),
            });
        };
        let mut photometric = g.photometric.clone();
        let mut data = rle::decode_frame(&fragment, g)?;
        // RLE keeps each sample in its own segment; YBR_FULL stays YBR_FULL.
        if photometric == Photometric::YbrFull && g.samples_per_pixel == 3 {
            crate::pixel::ybr_full_to_rgb(&mut data)?;
            photometric = Photometric::Rgb;
        }
        Ok((data, photometric))
    }

    fn encapsulated_frame(&self, g: &Geometry, frame: u32) -> Result<(FrameData, Photometric)> {
        let ts = self.transfer_syntax();
        if JPEG_DCT.contains(&ts) && g.photometric == Photometric::Rgb && g.samples_per_pixel == 3 {
            let fragment = self.frame_fragment(frame, g.frames)?;
            if jpeg_is_untransformed_rgb(&fragment) {
                return Ok((decode_untransformed_jpeg(&fragment, g)?, Photometric::Rgb));
            }
        }
        if ts == RLE_LOSSLESS && g.bits_allocated == 32 {
            // dicom-rs's RLE decoder stops at 16 bits; PS3.5 Annex G
            // defines any number of byte segments, so decode those here.
            let fragment = self.frame_fragment(frame, g.frames)?;
            return Ok((rle::decode_frame(&fragment, g)?, g.photometric.clone()));
        }
        // The codecs (JPEG, JPEG-LS in C++, JPEG 2000 ported from C) parse
        // attacker-controlled bitstreams; an index bug in one of them must
        // cost the upload of that file, not the worker. catch_unwind is the
        // last line: every error they report is mapped below first.
        let decoded = catch_unwind(AssertUnwindSafe(|| {
            self.obj
                .decode_pixel_data_frame(frame)
                .map(|px| (px.data().to_vec(), px.photometric_interpretation().clone()))
        }))
        .map_err(|_| corrupt("the compressed pixel data could not be decoded"))?
        .map_err(|e| pixel_error(&e))?;
        let (bytes, photometric) = decoded;
        let expected = g.decoded_frame_len()?;
        if bytes.len() < expected {
            return Err(ImagingError::Truncated {
                what: "pixel data".into(),
            });
        }
        let mut data = typed_samples(&bytes[..expected], g)?;
        if JPEG_2000.contains(&ts) {
            let fragment = self.frame_fragment(frame, g.frames)?;
            if let Some(siz) = j2k_siz(&fragment) {
                correct_j2k_sign(&mut data, siz, g);
            }
        }
        Ok((data, photometric))
    }

    /// The compressed bytes of one frame: its fragment when there is one per
    /// frame, all fragments for a single-frame image split over several.
    fn frame_fragment(&self, frame: u32, frames: u32) -> Result<Cow<'_, [u8]>> {
        let element = self.obj.get(tags::PIXEL_DATA);
        let Some(Value::PixelSequence(seq)) = element.map(|e| e.value()) else {
            return Err(corrupt("the compressed pixel data is missing"));
        };
        let fragments = seq.fragments();
        if fragments.len() == frames as usize {
            return fragments
                .get(frame as usize)
                .map(|f| Cow::Borrowed(f.as_slice()))
                .ok_or_else(|| ImagingError::Truncated {
                    what: "pixel data".into(),
                });
        }
        if frames == 1 {
            return Ok(Cow::Owned(fragments.iter().flatten().copied().collect()));
        }
        Err(ImagingError::Unsupported {
            detail: "multi-frame compressed pixel data without one fragment per frame".into(),
        })
    }

    fn float_frame(
        &self,
        value: &Value<InMemDicomObject, Vec<u8>>,
        g: &Geometry,
        frame: u32,
    ) -> Result<FrameData> {
        let Value::Primitive(PrimitiveValue::F32(v)) = value else {
            return Err(ImagingError::Unsupported {
                detail: "this kind of floating-point pixel data".into(),
            });
        };
        let n = g.samples_per_frame()?;
        let start = n * frame as usize;
        v.get(start..start + n)
            .map(|s| FrameData::F32(s.to_vec()))
            .ok_or_else(|| ImagingError::Truncated {
                what: "pixel data".into(),
            })
    }

    fn voi(&self, frame: u32) -> (Vec<WindowLevel>, VoiLutFunction, Option<VoiLut>) {
        let centers = self.floats(tags::WINDOW_CENTER).unwrap_or_default();
        let widths = self.floats(tags::WINDOW_WIDTH).unwrap_or_default();
        let mut windows: Vec<WindowLevel> = centers
            .iter()
            .zip(&widths)
            .map(|(&center, &width)| WindowLevel { center, width })
            .collect();
        if windows.is_empty() {
            // Enhanced multi-frame objects keep the window per frame.
            if let (Some(c), Some(w)) = (
                functional_group_f64(
                    &self.obj,
                    frame,
                    tags::FRAME_VOILUT_SEQUENCE,
                    tags::WINDOW_CENTER,
                ),
                functional_group_f64(
                    &self.obj,
                    frame,
                    tags::FRAME_VOILUT_SEQUENCE,
                    tags::WINDOW_WIDTH,
                ),
            ) {
                windows.push(WindowLevel {
                    center: c,
                    width: w,
                });
            }
        }
        let function = self
            .string(tags::VOILUT_FUNCTION)
            .and_then(|s| VoiLutFunction::try_from(s.as_str()).ok())
            .unwrap_or_default();
        (windows, function, self.voi_lut())
    }

    /// Rescale Slope/Intercept: top level, else the frame's (or the shared)
    /// Pixel Value Transformation of an enhanced multi-frame object.
    fn rescale(&self, frame: u32, tag: Tag) -> Option<f64> {
        self.floats(tag)
            .and_then(|v| v.first().copied())
            .or_else(|| {
                functional_group_f64(
                    &self.obj,
                    frame,
                    tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
                    tag,
                )
            })
    }

    fn voi_lut(&self) -> Option<VoiLut> {
        let item = self.obj.get(tags::VOILUT_SEQUENCE)?.items()?.first()?;
        let (min_pixel_value, bits, entries) = lut_descriptor(item)?;
        let data = lut_data(item.get(tags::LUT_DATA)?.value(), entries)?;
        let explanation = item
            .get(tags::LUT_EXPLANATION)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim().to_string());
        Some(VoiLut {
            min_pixel_value,
            bits_stored: u8::try_from(bits).ok()?,
            data,
            explanation,
        })
    }

    fn modality_lut(&self) -> Option<ModalityLut> {
        let item = self
            .obj
            .get(tags::MODALITY_LUT_SEQUENCE)?
            .items()?
            .first()?;
        let (first_mapped, _bits, entries) = lut_descriptor(item)?;
        let data = lut_data(item.get(tags::LUT_DATA)?.value(), entries)?;
        Some(ModalityLut { first_mapped, data })
    }

    fn palette(&self) -> Option<Palette> {
        if self.photometric().as_deref() != Some("PALETTE COLOR") {
            return None;
        }
        let obj: &InMemDicomObject = &self.obj;
        let (first_mapped, bits, entries) =
            palette_descriptor(obj, tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR)?;
        let channel = |tag| lut_data(obj.get(tag)?.value(), entries);
        Some(Palette {
            first_mapped,
            bits,
            red: channel(tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
            green: channel(tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
            blue: channel(tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA)?,
        })
    }
}

fn functional_group_f64(obj: &DefaultDicomObject, frame: u32, group: Tag, tag: Tag) -> Option<f64> {
    let from = |seq: Tag, index: usize| -> Option<f64> {
        let item = obj.get(seq)?.items()?.get(index)?;
        let inner = item.get(group)?.items()?.first()?;
        inner.get(tag)?.to_float64().ok()
    };
    from(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frame as usize)
        .or_else(|| from(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0))
}

/// LUT Descriptor: entries (0 means 65536), first mapped value (US or SS),
/// bits per entry.
fn lut_descriptor(item: &InMemDicomObject) -> Option<(i32, u16, usize)> {
    descriptor_at(item, tags::LUT_DESCRIPTOR)
}

fn palette_descriptor(obj: &InMemDicomObject, tag: Tag) -> Option<(i32, u16, usize)> {
    descriptor_at(obj, tag)
}

fn descriptor_at(obj: &InMemDicomObject, tag: Tag) -> Option<(i32, u16, usize)> {
    let v: Vec<i32> = obj.get(tag)?.to_multi_int().ok()?;
    let [entries, first, bits] = v.get(..3)?.try_into().ok()?;
    let entries = if entries == 0 {
        65536
    } else {
        entries as u16 as usize
    };
    // The first mapped value's VR may be US or SS; a negative read means SS.
    Some((first, u16::try_from(bits).ok()?, entries))
}

/// LUT Data is OW (or US): 16-bit words. An 8-bit table may be packed two
/// entries to a word, which shows as half as many words as entries.
fn lut_data(value: &Value<InMemDicomObject, Vec<u8>>, entries: usize) -> Option<Vec<u16>> {
    let Value::Primitive(p) = value else {
        return None;
    };
    let words: Vec<u16> = match p {
        PrimitiveValue::U16(v) => v.to_vec(),
        PrimitiveValue::U8(v) => v
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
        PrimitiveValue::I16(v) => v.iter().map(|&x| x as u16).collect(),
        _ => p
            .to_multi_int::<i32>()
            .ok()?
            .into_iter()
            .map(|x| x as u16)
            .collect(),
    };
    if words.len() >= entries {
        return Some(words[..entries].to_vec());
    }
    if words.len() * 2 >= entries {
        let unpacked: Vec<u16> = words
            .iter()
            .flat_map(|w| [w & 0xFF, w >> 8])
            .take(entries)
            .collect();
        return Some(unpacked);
    }
    None
}

/// Number of Frames for decoding: absent means 1, but a value that is not a
/// positive number means the frame layout is unknown.
fn strict_frames(file: &DicomFile) -> Result<u32> {
    let Some(element) = file.obj.get(tags::NUMBER_OF_FRAMES) else {
        return Ok(1);
    };
    if element.is_empty() {
        return Ok(1);
    }
    element
        .to_int::<u32>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| corrupt("Number of Frames is not a positive number"))
}

/// What decoding needs from the header, validated once.
pub(crate) struct Geometry {
    pub(crate) rows: u32,
    pub(crate) columns: u32,
    pub(crate) samples_per_pixel: u16,
    pub(crate) bits_allocated: u16,
    bits_stored: u16,
    pub(crate) signed: bool,
    planar: PlanarConfiguration,
    photometric: Photometric,
    frames: u32,
}

impl Geometry {
    fn read(file: &DicomFile) -> Result<Self> {
        let missing = |what: &str| corrupt(&format!("the image header lacks {what}"));
        let rows = file
            .rows()
            .filter(|&r| r > 0)
            .ok_or_else(|| missing("Rows"))?;
        let columns = file
            .columns()
            .filter(|&c| c > 0)
            .ok_or_else(|| missing("Columns"))?;
        let bits_allocated = file
            .bits_allocated()
            .ok_or_else(|| missing("Bits Allocated"))?;
        let bits_stored = file.int(tags::BITS_STORED).unwrap_or(bits_allocated);
        let samples_per_pixel = file.samples_per_pixel().unwrap_or(1);
        if !matches!(samples_per_pixel, 1 | 3 | 4) {
            return Err(corrupt(
                "the image has an impossible number of samples per pixel",
            ));
        }
        let photometric = Photometric::from(
            file.photometric()
                .ok_or_else(|| missing("Photometric Interpretation"))?
                .as_str(),
        );
        let signed = file.int::<u16>(tags::PIXEL_REPRESENTATION) == Some(1);
        let planar = if file.int::<u16>(tags::PLANAR_CONFIGURATION) == Some(1) {
            PlanarConfiguration::PixelFirst
        } else {
            PlanarConfiguration::Standard
        };
        Ok(Geometry {
            rows,
            columns,
            samples_per_pixel,
            bits_allocated,
            bits_stored,
            signed,
            planar,
            photometric,
            frames: strict_frames(file)?,
        })
    }

    fn samples_per_frame(&self) -> Result<usize> {
        (self.rows as usize)
            .checked_mul(self.columns as usize)
            .and_then(|n| n.checked_mul(usize::from(self.samples_per_pixel)))
            .ok_or_else(|| corrupt("the image dimensions are impossible"))
    }

    fn bytes_per_sample(&self) -> Result<usize> {
        match self.bits_allocated {
            8 | 16 | 32 | 64 => Ok(usize::from(self.bits_allocated / 8)),
            other => Err(ImagingError::Unsupported {
                detail: format!("{other}-bit pixel samples"),
            }),
        }
    }

    fn decoded_frame_len(&self) -> Result<usize> {
        self.samples_per_frame()?
            .checked_mul(self.bytes_per_sample()?)
            .ok_or_else(|| corrupt("the image dimensions are impossible"))
    }

    /// Byte offset and length of native frame `frame`.
    fn native_frame_range(&self, frame: u32) -> Result<(usize, usize)> {
        let len = self.native_frame_len()?;
        let offset = len
            .checked_mul(frame as usize)
            .ok_or_else(|| corrupt("the image dimensions are impossible"))?;
        Ok((offset, len))
    }

    /// Stored bytes of one native frame: YBR_FULL_422 keeps two chroma
    /// samples per two pixels (PS3.5 8.2.1), so 2 samples a pixel, not 3.
    fn native_frame_len(&self) -> Result<usize> {
        let full = self.decoded_frame_len()?;
        if self.photometric == Photometric::YbrFull422 && self.samples_per_pixel == 3 {
            Ok(full / 3 * 2)
        } else {
            Ok(full)
        }
    }
}

/// Native frame bytes (little endian) to typed, interleaved samples, with
/// YBR converted to RGB as pydicom does by default.
fn finish_native(mut le: Cow<'_, [u8]>, g: &Geometry) -> Result<(FrameData, Photometric)> {
    let mut photometric = g.photometric.clone();
    if photometric == Photometric::YbrFull422 && g.samples_per_pixel == 3 {
        le = Cow::Owned(expand_ybr_422(&le, g)?);
        photometric = Photometric::YbrFull;
    } else if g.planar == PlanarConfiguration::PixelFirst && g.samples_per_pixel > 1 {
        le = Cow::Owned(interleave_planes(&le, g));
    }
    let mut data = typed_samples(&le, g)?;
    if photometric == Photometric::YbrFull && g.samples_per_pixel == 3 {
        crate::pixel::ybr_full_to_rgb(&mut data)?;
        photometric = Photometric::Rgb;
    }
    Ok((data, photometric))
}

fn truncated_pixels() -> ImagingError {
    ImagingError::Truncated {
        what: "pixel data".into(),
    }
}

/// Items of encapsulated pixel data (PS3.5 A.4): the Basic Offset Table,
/// then the fragments, up to the sequence delimiter.
fn raw_items(value: &[u8]) -> Result<(&[u8], Vec<&[u8]>)> {
    let mut items = Vec::new();
    let mut at = 0;
    loop {
        let header = value.get(at..at + 8).ok_or_else(truncated_pixels)?;
        let tag = (
            u16::from_le_bytes([header[0], header[1]]),
            u16::from_le_bytes([header[2], header[3]]),
        );
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        at += 8;
        match tag {
            (0xFFFE, 0xE0DD) => break,
            (0xFFFE, 0xE000) => {
                items.push(value.get(at..at + len).ok_or_else(truncated_pixels)?);
                at += len;
            }
            _ => return Err(corrupt("the compressed pixel data is malformed")),
        }
    }
    if items.is_empty() {
        return Err(corrupt("the compressed pixel data is malformed"));
    }
    let table = items.remove(0);
    Ok((table, items))
}

fn raw_fragments(value: &[u8]) -> Result<Vec<&[u8]>> {
    raw_items(value).map(|(_, fragments)| fragments)
}

/// Bytes needed to hold 1-bit frames 0..=frame.
fn bit_frame_bytes(g: &Geometry, frame: u32) -> Result<usize> {
    Ok((g.samples_per_frame()? * (frame as usize + 1)).div_ceil(8))
}

/// `len` bytes at byte `offset` of a native pixel data value, little endian.
/// dicom-rs keeps OW as u16 (already byte-swapped from big endian files), so
/// only the frame's own words are converted, never the whole value.
fn value_bytes(value: &PrimitiveValue, offset: usize, len: usize) -> Result<Cow<'_, [u8]>> {
    let truncated = || ImagingError::Truncated {
        what: "pixel data".into(),
    };
    macro_rules! words {
        ($v:expr, $size:expr) => {{
            let first = offset / $size;
            let last = (offset + len).div_ceil($size);
            let words = $v.get(first..last).ok_or_else(truncated)?;
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let skip = offset % $size;
            Ok(Cow::Owned(bytes[skip..skip + len].to_vec()))
        }};
    }
    match value {
        PrimitiveValue::U8(v) => v
            .get(offset..offset + len)
            .map(Cow::Borrowed)
            .ok_or_else(truncated),
        PrimitiveValue::U16(v) => words!(v, 2),
        PrimitiveValue::I16(v) => words!(v, 2),
        PrimitiveValue::U32(v) => words!(v, 4),
        PrimitiveValue::I32(v) => words!(v, 4),
        PrimitiveValue::F32(v) => words!(v, 4),
        PrimitiveValue::F64(v) => words!(v, 8),
        PrimitiveValue::U64(v) => words!(v, 8),
        PrimitiveValue::I64(v) => words!(v, 8),
        _ => Err(corrupt("the pixel data has an unexpected value type")),
    }
}

fn unpack_bits(all: &[u8], g: &Geometry, frame: u32) -> Result<FrameData> {
    let per_frame = g.samples_per_frame()?;
    let first_bit = per_frame * frame as usize;
    if all.len() * 8 < first_bit + per_frame {
        return Err(truncated_pixels());
    }
    let bits = (first_bit..first_bit + per_frame)
        .map(|bit| (all[bit / 8] >> (bit % 8)) & 1)
        .collect();
    Ok(FrameData::U8(bits))
}

/// Planar configuration 1 (RRR…GGG…BBB…) to interleaved.
fn interleave_planes(planes: &[u8], g: &Geometry) -> Vec<u8> {
    let spp = usize::from(g.samples_per_pixel);
    let width = usize::from(g.bits_allocated / 8).max(1);
    let plane_len = planes.len() / spp;
    let pixels = plane_len / width;
    let mut out = Vec::with_capacity(planes.len());
    for p in 0..pixels {
        for s in 0..spp {
            let at = s * plane_len + p * width;
            out.extend_from_slice(&planes[at..at + width]);
        }
    }
    out
}

/// YBR_FULL_422 stores Y1 Y2 Cb Cr for each pair of pixels; repeat the
/// chroma to get full YBR (what pydicom does before converting to RGB).
fn expand_ybr_422(stored: &[u8], g: &Geometry) -> Result<Vec<u8>> {
    if g.bits_allocated != 8 {
        return Err(ImagingError::Unsupported {
            detail: "YBR_FULL_422 with more than 8 bits".into(),
        });
    }
    let mut out = Vec::with_capacity(stored.len() / 2 * 3);
    for quad in stored.chunks_exact(4) {
        out.extend_from_slice(&[quad[0], quad[2], quad[3], quad[1], quad[2], quad[3]]);
    }
    Ok(out)
}

fn typed_samples(le: &[u8], g: &Geometry) -> Result<FrameData> {
    // Indexed loops over fixed-size chunks: the compiler vectorises these,
    // which iterator chains over `chunks_exact` + `collect` did not.
    macro_rules! convert {
        ($t:ty, $n:expr) => {{
            let mut out: Vec<$t> = vec![0; le.len() / $n];
            for (dst, src) in out.iter_mut().zip(le.chunks_exact($n)) {
                let mut b = [0u8; $n];
                b.copy_from_slice(src);
                *dst = <$t>::from_le_bytes(b);
            }
            out
        }};
    }
    Ok(match (g.bits_allocated, g.signed) {
        (8, false) => FrameData::U8(le.to_vec()),
        (8, true) => FrameData::I8(le.iter().map(|&b| b as i8).collect()),
        (16, false) => FrameData::U16(convert!(u16, 2)),
        (16, true) => FrameData::I16(convert!(i16, 2)),
        (32, false) => FrameData::U32(convert!(u32, 4)),
        (32, true) => FrameData::I32(convert!(i32, 4)),
        (bits, _) => {
            return Err(ImagingError::Unsupported {
                detail: format!("{bits}-bit pixel samples"),
            })
        }
    })
}

/// Whether a 3-component JPEG of an RGB image holds RGB rather than YCbCr:
/// an Adobe marker with transform 0 says so; with neither a JFIF nor an
/// Adobe marker and component ids other than 1, 2, 3 the JPEG states no
/// colour space, and the DICOM header's RGB is trusted (as pydicom does)
/// over the JPEG default of YCbCr.
fn jpeg_is_untransformed_rgb(jpeg: &[u8]) -> bool {
    let (mut jfif, mut adobe, mut ids) = (false, None, None);
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        let segment = jpeg.get(at + 4..at + 2 + len).unwrap_or(&[]);
        match marker {
            0xE0 => jfif |= segment.starts_with(b"JFIF\0"),
            0xEE if segment.starts_with(b"Adobe") => adobe = segment.get(11).copied(),
            0xC0..=0xC3 if segment.len() >= 15 && segment[5] == 3 => {
                ids = Some([segment[6], segment[9], segment[12]]);
            }
            0xDA => break,
            _ => {}
        }
        at += 2 + len;
    }
    match adobe {
        Some(transform) => transform == 0,
        None => !jfif && ids.is_some_and(|ids| ids != [1, 2, 3]),
    }
}

fn decode_untransformed_jpeg(jpeg: &[u8], g: &Geometry) -> Result<FrameData> {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    decoder.set_color_transform(jpeg_decoder::ColorTransform::RGB);
    let pixels = catch_unwind(AssertUnwindSafe(|| decoder.decode()))
        .map_err(|_| corrupt("the compressed pixel data could not be decoded"))?
        .map_err(|_| corrupt("the compressed pixel data could not be decoded"))?;
    if pixels.len() < g.decoded_frame_len()? {
        return Err(ImagingError::Truncated {
            what: "pixel data".into(),
        });
    }
    typed_samples(&pixels[..g.decoded_frame_len()?], g)
}

/// Signedness and precision of the first component, from the JPEG 2000
/// SIZ marker segment (ISO/IEC 15444-1 A.5.1).
#[derive(Debug, Clone, Copy)]
struct J2kSiz {
    signed: bool,
    precision: u32,
}

fn j2k_siz(codestream: &[u8]) -> Option<J2kSiz> {
    // SOC (FF4F) is followed directly by SIZ (FF51); a JP2 wrapper puts
    // boxes first, so search for the pair.
    let at = codestream
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])?
        + 2;
    // Marker, Lsiz, Rsiz, 8 × 32-bit sizes, Csiz: the first Ssiz is at +40.
    let ssiz = *codestream.get(at + 40)?;
    Some(J2kSiz {
        signed: ssiz & 0x80 != 0,
        precision: u32::from(ssiz & 0x7F) + 1,
    })
}

/// When the codestream's signedness disagrees with Pixel Representation,
/// re-extend the sign at the codestream's precision, as pydicom does: a
/// 13-bit signed value written as unsigned would otherwise read as a large
/// positive number.
fn correct_j2k_sign(data: &mut FrameData, siz: J2kSiz, g: &Geometry) {
    if siz.signed == g.signed {
        return;
    }
    macro_rules! shift {
        ($v:expr, $bits:expr) => {{
            let shift = $bits - siz.precision.min($bits);
            if shift > 0 {
                for x in $v.iter_mut() {
                    *x = (*x << shift) >> shift;
                }
            }
        }};
    }
    match data {
        FrameData::I16(v) => shift!(v, 16),
        FrameData::U16(v) => shift!(v, 16),
        FrameData::I8(v) => shift!(v, 8),
        FrameData::U8(v) => shift!(v, 8),
        FrameData::I32(v) => shift!(v, 32),
        FrameData::U32(v) => shift!(v, 32),
        FrameData::F32(_) => {}
    }
}

fn pixel_error(e: &dicom_pixeldata::Error) -> ImagingError {
    let mut lower = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        lower.push_str(&format!("{err:?} {err}; ").to_lowercase());
        source = err.source();
    }
    if lower.contains("sampleprecision(12)") {
        // jpeg-decoder (pure Rust) has no 12-bit DCT: tests/dicom_corpus.rs
        // lists this as a known gap.
        return ImagingError::Unsupported {
            detail: "12-bit lossy JPEG (JPEG Extended) compression".into(),
        };
    }
    if lower.contains("unsupported transfer syntax") || lower.contains("unknown transfer syntax") {
        return ImagingError::Unsupported {
            detail: "this file's compression (transfer syntax) cannot be decoded".into(),
        };
    }
    if lower.contains("out of range")
        || lower.contains("eof")
        || lower.contains("end of")
        || lower.contains("truncat")
    {
        return ImagingError::Truncated {
            what: "pixel data".into(),
        };
    }
    corrupt("the compressed pixel data could not be decoded")
}
