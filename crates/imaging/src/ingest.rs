//! The whole ingest: expand the upload, recognise each file by content,
//! parse it, check its pixel data, de-identify it, write it to the output
//! folder under its sha256, and describe it for the index.
//!
//! All-or-nothing per study: a study (by de-identified Study Instance UID)
//! is stored only if every one of its files passed; otherwise every file of
//! it is rejected, the reason naming the file that failed, and none of it
//! is left in the output folder. NIfTI and raster files of one call form one
//! synthetic study (each NIfTI its own series, the rasters one series).
//!
//! Files are handled one at a time: memory holds one parsed file, never the
//! upload. Accepted bytes wait in a scratch folder inside `out_dir` (same
//! filesystem, so moving them is a rename) until their study is complete.
//!
//! DICOMDIR files (Media Storage Directory Storage) are skipped, not
//! rejected: they index the images, which are in the same upload.
//!
//! The content decides what a file is: a PNG named `IMG0001.dcm` is
//! ingested as a raster image (re-encoded, its metadata dropped), never fed
//! to the DICOM parser; a file no format recognises is refused.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use sha2::{Digest, Sha256};

use crate::archive::{self, Entry};
use crate::deid::{self, keyed_hash, remap_uid, DeidConfig};
use crate::limits::{human_bytes, Limits};
use crate::model::{
    Accepted, DeidChange, IdentityEntry, IngestReport, InstanceInfo, InstanceKind, Rejected, Source,
};
use crate::nifti;
use crate::raster;
use crate::sniff::{bare_dataset_is_big_endian, sniff, FileKind, SNIFF_LEN};
use crate::{ImagingError, Result};

/// Everything an ingest needs besides the files.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub limits: Limits,
    pub deid: DeidConfig,
}

/// SOP Class of a DICOMDIR.
const MEDIA_STORAGE_DIRECTORY: &str = "1.2.840.10008.1.3.10";
/// Secondary Capture Image Storage: the class of the headers synthesised
/// for NIfTI and raster files.
const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";

/// Ingests `sources` into `out_dir` (created if missing).
///
/// Errors only when the upload as a whole is refused (over a size or file
/// count limit) or `out_dir` cannot be written; each refused file is in
/// [`IngestReport::rejected`].
pub fn ingest(sources: &[Source], cfg: &IngestConfig, out_dir: &Path) -> Result<IngestReport> {
    std::fs::create_dir_all(out_dir)?;
    let scratch = tempfile::Builder::new()
        .prefix(".ingest-")
        .tempdir_in(out_dir)?;
    let expansion = archive::expand(sources, &cfg.limits, scratch.path())?;
    let staged_dir = scratch.path().join("staged");
    std::fs::create_dir(&staged_dir)?;

    let mut report = IngestReport::default();
    for (name, e) in expansion.refused {
        report.rejected.push(Rejected {
            file: name,
            reason: sentence(&e),
        });
    }
    let entries = expansion.entries;
    let synthetic = SyntheticIds::new(&entries, &cfg.deid.key)?;
    let total = entries.len();
    let mut outcomes = Vec::with_capacity(total);
    for (i, entry) in entries.iter().enumerate() {
        let ctx = FileCtx {
            cfg,
            staged_dir: &staged_dir,
            synthetic: &synthetic,
            position: i + 1,
            total,
        };
        outcomes.push(ingest_one(entry, &ctx));
    }
    settle(outcomes, out_dir, &mut report)?;
    Ok(report)
}

/// A file's fate before its study is settled.
enum Outcome {
    Staged(Box<Staged>),
    Failed {
        file: String,
        position: usize,
        total: usize,
        /// The study it would have joined, if that is known.
        study: Option<String>,
        error: ImagingError,
    },
    /// Not an instance (a DICOMDIR).
    Skipped,
}

struct Staged {
    accepted: Accepted,
    identity_map: Vec<IdentityEntry>,
}

struct FileCtx<'a> {
    cfg: &'a IngestConfig,
    staged_dir: &'a Path,
    synthetic: &'a SyntheticIds,
    position: usize,
    total: usize,
}

impl FileCtx<'_> {
    fn fail(&self, entry: &Entry, study: Option<String>, error: ImagingError) -> Outcome {
        Outcome::Failed {
            file: entry.name.clone(),
            position: self.position,
            total: self.total,
            study,
            error,
        }
    }
}

fn ingest_one(entry: &Entry, ctx: &FileCtx) -> Outcome {
    let kind = match content_kind(&entry.path) {
        Ok(k) => k,
        Err(e) => return ctx.fail(entry, None, e),
    };
    let synthetic_study = Some(ctx.synthetic.study_uid.clone());
    let result = match kind {
        FileKind::Dicom | FileKind::DicomNoMeta => return ingest_dicom(entry, kind, ctx),
        FileKind::Nifti1 | FileKind::Nifti2 => ingest_nifti(entry, false, ctx),
        FileKind::Gzip => ingest_nifti(entry, true, ctx),
        FileKind::Png | FileKind::Jpeg | FileKind::Tiff | FileKind::Bmp => {
            ingest_raster(entry, ctx)
        }
        FileKind::Zip => Err(ImagingError::Unsupported {
            detail: "an archive nested deeper than one level".into(),
        }),
        FileKind::Unknown => Err(ImagingError::NotRecognised),
    };
    match result {
        Ok(staged) => Outcome::Staged(Box::new(staged)),
        Err(e) if kind == FileKind::Unknown || kind == FileKind::Zip => ctx.fail(entry, None, e),
        Err(e) => ctx.fail(entry, synthetic_study, e),
    }
}

/// Sniffs the content; a gzip file counts as [`FileKind::Gzip`] only when
/// what it inflates to is a NIfTI header.
fn content_kind(path: &Path) -> Result<FileKind> {
    let kind = archive::head_kind(path)?;
    if kind != FileKind::Gzip {
        return Ok(kind);
    }
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let gz = flate2::read::MultiGzDecoder::new(BufReader::new(File::open(path)?));
    // A damaged gzip reads short; sniffing what came out is still right.
    let _ = gz.take(SNIFF_LEN as u64).read_to_end(&mut head);
    Ok(match sniff(&head) {
        FileKind::Nifti1 | FileKind::Nifti2 => FileKind::Gzip,
        _ => FileKind::Unknown,
    })
}

// ---------------------------------------------------------------- DICOM

fn ingest_dicom(entry: &Entry, kind: FileKind, ctx: &FileCtx) -> Outcome {
    let scan = check_declared_lengths(&entry.path, kind, &ctx.cfg.limits);
    // Whether the header before the pixel data can be read safely: every
    // length fits the file, or only the pixel data's does not.
    let header_readable = match &scan {
        Ok(()) => true,
        Err(ImagingError::Truncated { what }) => what == "pixel data",
        Err(_) => false,
    };
    let opened = scan.and_then(|()| open_dicom(&entry.path, kind));
    let mut obj = match opened {
        Ok(o) => o,
        Err(e) => {
            // A damaged file still belongs to its study, which must then be
            // refused whole: find the study from the header if possible.
            let study = if header_readable && kind == FileKind::Dicom {
                study_before_pixels(&entry.path).map(|uid| remap_uid(&ctx.cfg.deid.key, &uid))
            } else {
                None
            };
            return ctx.fail(entry, study, e);
        }
    };
    if obj.meta().media_storage_sop_class_uid() == MEDIA_STORAGE_DIRECTORY {
        return Outcome::Skipped;
    }
    // The failure of this file must take its whole study down, so the
    // de-identified study UID is known before anything else can fail.
    let study = text(&obj, Tag(0x0020, 0x000D)).map(|uid| remap_uid(&ctx.cfg.deid.key, &uid));
    match stage_dicom(entry, &mut obj, ctx) {
        Ok(staged) => Outcome::Staged(Box::new(staged)),
        Err(e) => ctx.fail(entry, study, e),
    }
}

fn stage_dicom(entry: &Entry, obj: &mut DefaultDicomObject, ctx: &FileCtx) -> Result<Staged> {
    if text(obj, Tag(0x0020, 0x000D)).is_none() {
        return Err(ImagingError::Corrupt {
            detail: "the file has no Study Instance UID".into(),
        });
    }
    check_pixels(obj)?;
    let outcome = deid::deidentify(obj, &ctx.cfg.deid).map_err(|e| match e {
        ImagingError::BurnedInAnnotation => e,
        ImagingError::Deidentification { .. } => e,
        other => ImagingError::Deidentification {
            detail: other.to_string(),
        },
    })?;
    let staged_path = ctx.staged_dir.join(format!("{}", ctx.position));
    obj.write_to_file(&staged_path)
        .map_err(|_| ImagingError::Deidentification {
            detail: "the de-identified file could not be written".into(),
        })?;
    decodes(&staged_path)?;
    let (sha256, bytes) = sha256_file(&staged_path)?;
    let mut info = instance_info(obj);
    info.transfer_syntax = Some(
        obj.meta()
            .transfer_syntax()
            .trim_end_matches(['\0', ' '])
            .to_string(),
    );
    info.burned_in_annotation = outcome.burned_in;
    let dicom_json = header_json(obj)?;
    Ok(Staged {
        accepted: Accepted {
            file: entry.name.clone(),
            kind: InstanceKind::Dicom,
            path: staged_path,
            sha256,
            bytes,
            info,
            deid: outcome.changes,
            dicom_json,
        },
        identity_map: outcome.identity_map,
    })
}

/// Opens a Part 10 file, or a bare dataset (implicit or explicit VR little
/// endian, told apart by whether a VR follows the first tag) to which a
/// file meta group is added.
/// Study Instance UID from the header up to the pixel data, for a file
/// whose pixel data cannot be read.
fn study_before_pixels(path: &Path) -> Option<String> {
    let obj = OpenFileOptions::new()
        .read_until(Tag(0x7FE0, 0x0010))
        .open_file(path)
        .ok()?;
    text(&obj, Tag(0x0020, 0x000D))
}

/// Call only after [`check_declared_lengths`] passed.
fn open_dicom(path: &Path, kind: FileKind) -> Result<DefaultDicomObject> {
    if kind == FileKind::Dicom {
        return OpenFileOptions::new().open_file(path).map_err(read_error);
    }
    let mut head = [0u8; 6];
    File::open(path)?.read_exact(&mut head)?;
    let ts = if bare_dataset_is_big_endian(&head) {
        dicom_transfer_syntax_registry::entries::EXPLICIT_VR_BIG_ENDIAN.erased()
    } else if head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase() {
        dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN.erased()
    } else {
        dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased()
    };
    let reader = BufReader::new(File::open(path)?);
    let dataset = InMemDicomObject::read_dataset_with_ts(reader, &ts).map_err(read_error)?;
    let class = text(&dataset, Tag(0x0008, 0x0016)).ok_or_else(|| ImagingError::Corrupt {
        detail: "the DICOM data has no SOP Class UID".into(),
    })?;
    let instance = text(&dataset, Tag(0x0008, 0x0018)).ok_or_else(|| ImagingError::Corrupt {
        detail: "the DICOM data has no SOP Instance UID".into(),
    })?;
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .transfer_syntax(ts.uid())
        .build()
        .map_err(|_| ImagingError::Corrupt {
            detail: "the DICOM data cannot be given a file header".into(),
        })?;
    Ok(dataset.with_exact_meta(meta))
}

/// Maps a parser failure to a doctor's sentence: running out of bytes is
/// truncation, anything else damage.
fn read_error(e: dicom_object::ReadError) -> ImagingError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::UnexpectedEof {
                return ImagingError::Truncated {
                    what: "the file".into(),
                };
            }
        }
        source = err.source();
    }
    ImagingError::Corrupt {
        detail: "the DICOM data cannot be read".into(),
    }
}

/// Walks the element headers before the parser does: the parser allocates
/// an element's declared length up front, so a 4 GB length in a 1 kB file
/// must be refused here, not discovered after the allocation. Checks every
/// defined length against the bytes left in the file, descending into
/// sequences and items. Deflated datasets are inflated first (see
/// [`walk_deflated`]).
///
/// A walk that runs out of bytes mid-header refuses the file as truncated
/// too: the parser would otherwise meet the same header and might trust a
/// length the walk could not check. Fewer than 8 bytes after the last
/// element are trailing padding, not an element.
pub fn check_declared_lengths(path: &Path, kind: FileKind, limits: &Limits) -> Result<()> {
    walk_lengths(path, kind, limits).map_err(|e| match e {
        ImagingError::Truncated { what } if what == HEADER_EOF => ImagingError::Truncated {
            what: "the file".into(),
        },
        other => other,
    })
}

fn implicit_is_sequence(tag: (u16, u16)) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
    dicom_dictionary_std::StandardDataDictionary
        .by_tag(Tag(tag.0, tag.1))
        .is_some_and(|e| matches!(e.vr(), dicom_core::dictionary::VirtualVr::Exact(VR::SQ)))
}

/// What a short read of an element header reports inside the walk.
const HEADER_EOF: &str = "an element header";

/// VRs with a 2-byte length in explicit VR (PS3.5 7.1.2), as dicom-encoding
/// reads them; every other VR, and an unknown one (read as UN), has a
/// 4-byte length after 2 reserved bytes.
fn is_short_length_vr(vr: &[u8; 2]) -> bool {
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

fn walk_lengths(path: &Path, kind: FileKind, limits: &Limits) -> Result<()> {
    let file_len = std::fs::metadata(path)?.len();
    let mut r = LenReader {
        inner: BufReader::new(File::open(path)?),
        pos: 0,
        len: file_len,
    };
    let (mut explicit, mut big_endian) = (true, false);
    if kind == FileKind::Dicom {
        r.skip(132)?;
        let ts = r.meta_transfer_syntax()?;
        match ts.as_str() {
            "1.2.840.10008.1.2" => explicit = false,
            "1.2.840.10008.1.2.2" => big_endian = true,
            "1.2.840.10008.1.2.1.99" => return walk_deflated(path, r.pos, limits),
            _ => {}
        }
    } else {
        let mut head = [0u8; 6];
        r.inner.read_exact(&mut head)?;
        r.inner.seek_relative(-6)?;
        explicit = head[4].is_ascii_uppercase() && head[5].is_ascii_uppercase();
        big_endian = bare_dataset_is_big_endian(&head);
    }
    walk_dataset(&mut r, explicit, big_endian, limits)
}

/// A deflated dataset is inflated (counted against
/// [`Limits::max_file_bytes`]) into an anonymous temporary file and walked
/// there as the explicit VR little endian dataset it is.
fn walk_deflated(path: &Path, dataset_at: u64, limits: &Limits) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(dataset_at))?;
    let mut inflated = tempfile::tempfile()?;
    let mut inflate =
        flate2::read::DeflateDecoder::new(BufReader::new(file)).take(limits.max_file_bytes + 1);
    let n = std::io::copy(&mut inflate, &mut inflated).map_err(|_| ImagingError::Corrupt {
        detail: "the deflated DICOM data cannot be decompressed".into(),
    })?;
    if n > limits.max_file_bytes {
        return Err(ImagingError::TooLarge {
            what: "the file once decompressed".into(),
            limit: human_bytes(limits.max_file_bytes),
        });
    }
    inflated.seek(SeekFrom::Start(0))?;
    let mut r = LenReader {
        inner: BufReader::new(inflated),
        pos: 0,
        len: n,
    };
    walk_dataset(&mut r, true, false, limits)
}

/// Undefined-length sequences and items need no bookkeeping: their
/// elements follow inline and are walked like any other, and delimiters
/// are skipped. Only encapsulated pixel data differs: its items are raw
/// fragments, skipped by length.
fn walk_dataset(
    r: &mut LenReader,
    explicit: bool,
    big_endian: bool,
    limits: &Limits,
) -> Result<()> {
    let mut in_encapsulated = false;
    while r.len - r.pos >= 8 {
        let tag = r.tag(big_endian)?;
        if tag.0 == 0xFFFE {
            let len = r.u32(big_endian)?;
            match tag.1 {
                0xE0DD => in_encapsulated = false,
                0xE000 if in_encapsulated && len != u32::MAX => r.skip_checked(len, tag, limits)?,
                // Other items' elements follow and are walked.
                _ => {}
            }
            continue;
        }
        let (vr, len) = if explicit {
            let mut vr = [0u8; 2];
            r.read(&mut vr)?;
            // Short-length VRs exactly as dicom-encoding lists them; any
            // other (or unknown, read as UN) has a 4-byte length.
            if !is_short_length_vr(&vr) {
                r.skip(2)?;
                (Some(vr), r.u32(big_endian)?)
            } else {
                (Some(vr), u32::from(r.u16(big_endian)?))
            }
        } else {
            (None, r.u32(big_endian)?)
        };
        if len == u32::MAX {
            // SQ, or UN / an unknown VR: dicom-parser reads the items of
            // either in the file's own encoding, so the walk does too (what
            // matters is what the parser will allocate).
            if tag == (0x7FE0, 0x0010) {
                in_encapsulated = true;
            }
            continue;
        }
        // Implicit VR carries no VR: the dictionary says which tags are
        // sequences, whose items' elements must be walked too.
        let is_sequence = match vr {
            Some(v) => &v == b"SQ",
            None => implicit_is_sequence(tag),
        };
        if is_sequence {
            if u64::from(len) > r.len - r.pos {
                return Err(length_error(len, tag, limits));
            }
            continue;
        }
        r.skip_checked(len, tag, limits)?;
    }
    Ok(())
}

fn length_error(len: u32, tag: (u16, u16), limits: &Limits) -> ImagingError {
    if u64::from(len) > limits.max_file_bytes || len >= 0xFFFF_0000 {
        return ImagingError::Corrupt {
            detail: format!(
                "an element declares a length of {}, larger than any real file",
                human_bytes(u64::from(len))
            ),
        };
    }
    ImagingError::Truncated {
        what: if tag == (0x7FE0, 0x0010) {
            "pixel data"
        } else {
            "the file"
        }
        .into(),
    }
}

struct LenReader {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
}

impl LenReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner
            .read_exact(buf)
            .map_err(|_| ImagingError::Truncated {
                what: HEADER_EOF.into(),
            })?;
        self.pos += buf.len() as u64;
        Ok(())
    }
    fn u16(&mut self, be: bool) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read(&mut b)?;
        Ok(if be {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }
    fn u32(&mut self, be: bool) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(&mut b)?;
        Ok(if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
    fn tag(&mut self, be: bool) -> Result<(u16, u16)> {
        Ok((self.u16(be)?, self.u16(be)?))
    }
    fn skip(&mut self, n: u64) -> Result<()> {
        if n > self.len - self.pos.min(self.len) {
            return Err(ImagingError::Truncated {
                what: HEADER_EOF.into(),
            });
        }
        self.inner.seek_relative(n as i64)?;
        self.pos += n;
        Ok(())
    }
    fn skip_checked(&mut self, len: u32, tag: (u16, u16), limits: &Limits) -> Result<()> {
        if u64::from(len) > self.len - self.pos {
            return Err(length_error(len, tag, limits));
        }
        self.skip(u64::from(len))
    }
    /// Reads the file meta group (always explicit VR little endian) and
    /// returns its Transfer Syntax UID, leaving the reader at the dataset.
    fn meta_transfer_syntax(&mut self) -> Result<String> {
        let mut ts = String::new();
        loop {
            if self.len - self.pos < 8 {
                return Ok(ts);
            }
            let (group, element) = self.tag(false)?;
            if group != 0x0002 {
                self.inner.seek_relative(-4)?;
                self.pos -= 4;
                return Ok(ts);
            }
            let mut vr = [0u8; 2];
            self.read(&mut vr)?;
            let len = if matches!(&vr, b"OB" | b"UN" | b"SQ" | b"UT" | b"UC" | b"UR" | b"OW") {
                self.skip(2)?;
                self.u32(false)?
            } else {
                u32::from(self.u16(false)?)
            };
            if element == 0x0010 && len <= 64 {
                let mut v = vec![0u8; len as usize];
                self.read(&mut v)?;
                ts = String::from_utf8_lossy(&v)
                    .trim_end_matches(['\0', ' '])
                    .to_string();
            } else {
                self.skip_checked(len, (group, element), &Limits::default())?;
            }
        }
    }
}

/// The stored file decodes: its first and last frame, through the same
/// decoder the viewer and the models use. The first catches a codec we
/// cannot read, the last a stream cut short; decoding every frame of a long
/// cine would cost more than it finds.
fn decodes(path: &Path) -> Result<()> {
    let file = crate::dicom::open(path)?;
    if !file.has_pixel_data() {
        return Ok(());
    }
    let last = file.frames().max(1) - 1;
    file.decode_frame(0)?;
    if last > 0 {
        file.decode_frame(last)?;
    }
    Ok(())
}

/// Pixel data is present and as long as the header says. Native: rows ×
/// columns × samples × bits allocated / 8 × frames bytes. Encapsulated: at
/// least one non-empty fragment, and no fewer fragments than frames.
/// Objects without Rows (structured reports, presentation states) carry no
/// pixels and pass.
fn check_pixels(obj: &InMemDicomObject) -> Result<()> {
    let rows = uint(obj, Tag(0x0028, 0x0010));
    let pixel = obj
        .get(Tag(0x7FE0, 0x0010))
        .or_else(|| obj.get(Tag(0x7FE0, 0x0008)))
        .or_else(|| obj.get(Tag(0x7FE0, 0x0009)));
    let Some(pixel) = pixel else {
        return match rows {
            Some(_) => Err(ImagingError::Corrupt {
                detail: "the image has no pixel data".into(),
            }),
            None => Ok(()),
        };
    };
    let rows = rows.unwrap_or(0);
    let cols = uint(obj, Tag(0x0028, 0x0011)).unwrap_or(0);
    let spp = uint(obj, Tag(0x0028, 0x0002)).unwrap_or(1).max(1);
    let bits = uint(obj, Tag(0x0028, 0x0100)).unwrap_or(0);
    let frames = uint(obj, Tag(0x0028, 0x0008)).unwrap_or(1).max(1);
    // 4:2:2 native data stores two luminance samples per chroma pair: two
    // samples per pixel on average, not three.
    let photometric = text(obj, Tag(0x0028, 0x0004)).unwrap_or_default();
    let spp = if photometric.ends_with("_422") {
        2
    } else {
        spp
    };
    match pixel.value() {
        Value::PixelSequence(seq) => {
            let fragments = seq.fragments();
            if fragments.iter().all(|f| f.is_empty()) {
                return Err(ImagingError::Truncated {
                    what: "pixel data".into(),
                });
            }
            if (fragments.len() as u64) < frames {
                return Err(ImagingError::Truncated {
                    what: format!(
                        "pixel data ({} of {frames} frames present)",
                        fragments.len()
                    ),
                });
            }
            Ok(())
        }
        Value::Primitive(v) => {
            let expected_bits = rows
                .saturating_mul(cols)
                .saturating_mul(spp)
                .saturating_mul(bits)
                .saturating_mul(frames);
            let expected = expected_bits.div_ceil(8);
            let have = v.calculate_byte_len() as u64;
            if expected == 0 {
                return Err(ImagingError::Corrupt {
                    detail: "the image dimensions are missing".into(),
                });
            }
            if have < expected {
                return Err(ImagingError::Truncated {
                    what: "pixel data".into(),
                });
            }
            Ok(())
        }
        Value::Sequence(_) => Err(ImagingError::Corrupt {
            detail: "the pixel data is not an image".into(),
        }),
    }
}

fn uint(obj: &InMemDicomObject, tag: Tag) -> Option<u64> {
    obj.get(tag)?.to_int::<u64>().ok()
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim_end_matches(['\0', ' ']).trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn floats<const N: usize>(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; N]> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    v.try_into().ok()
}

fn instance_info(obj: &InMemDicomObject) -> InstanceInfo {
    let int = |t| obj.get(t).and_then(|e| e.to_int::<i32>().ok());
    let modality = text(obj, Tag(0x0008, 0x0060)).unwrap_or_else(|| "OT".into());
    InstanceInfo {
        study_uid: text(obj, Tag(0x0020, 0x000D)).unwrap_or_default(),
        series_uid: text(obj, Tag(0x0020, 0x000E)).unwrap_or_default(),
        sop_uid: text(obj, Tag(0x0008, 0x0018)).unwrap_or_default(),
        modality,
        body_part: text(obj, Tag(0x0018, 0x0015)),
        study_description: text(obj, Tag(0x0008, 0x1030)),
        series_description: text(obj, Tag(0x0008, 0x103E)),
        series_number: int(Tag(0x0020, 0x0011)),
        instance_number: int(Tag(0x0020, 0x0013)),
        rows: uint(obj, Tag(0x0028, 0x0010)).unwrap_or(0) as u32,
        columns: uint(obj, Tag(0x0028, 0x0011)).unwrap_or(0) as u32,
        frames: uint(obj, Tag(0x0028, 0x0008)).unwrap_or(1).max(1) as u32,
        pixel_spacing: floats::<2>(obj, Tag(0x0028, 0x0030)),
        slice_thickness: obj
            .get(Tag(0x0018, 0x0050))
            .and_then(|e| e.to_float64().ok()),
        image_position: floats::<3>(obj, Tag(0x0020, 0x0032)),
        image_orientation: floats::<6>(obj, Tag(0x0020, 0x0037)),
        transfer_syntax: None,
        photometric: text(obj, Tag(0x0028, 0x0004)),
        bits_allocated: uint(obj, Tag(0x0028, 0x0100)).map(|b| b as u16),
        burned_in_annotation: false,
    }
}

/// PS3.18 F.2 JSON of the dataset, bulk pixel data left out (the viewer
/// gets pixels through the rendering endpoints, not the metadata).
fn header_json(obj: &mut DefaultDicomObject) -> Result<serde_json::Value> {
    let bulk = [
        Tag(0x7FE0, 0x0010),
        Tag(0x7FE0, 0x0008),
        Tag(0x7FE0, 0x0009),
    ];
    let taken: Vec<_> = bulk.iter().filter_map(|&t| obj.take(t)).collect();
    let json = dicom_json::to_value(&**obj);
    for e in taken {
        obj.put(e);
    }
    json.map_err(|_| ImagingError::Corrupt {
        detail: "the header cannot be expressed as DICOM JSON".into(),
    })
}

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h)?;
    Ok((hex::encode(h.finalize()), n))
}

// ------------------------------------------------------- NIfTI and raster

/// Study/series/instance UIDs for the non-DICOM files of one call, keyed
/// on their content so a re-upload of the same files gets the same UIDs.
struct SyntheticIds {
    key: [u8; 32],
    study_uid: String,
    raster_series_uid: String,
    /// Content sha256 per entry path.
    content: BTreeMap<PathBuf, String>,
}

impl SyntheticIds {
    fn new(entries: &[Entry], key: &[u8; 32]) -> Result<Self> {
        let mut content = BTreeMap::new();
        for e in entries {
            let kind = content_kind(&e.path).unwrap_or(FileKind::Unknown);
            if matches!(
                kind,
                FileKind::Nifti1
                    | FileKind::Nifti2
                    | FileKind::Gzip
                    | FileKind::Png
                    | FileKind::Jpeg
                    | FileKind::Tiff
                    | FileKind::Bmp
            ) {
                content.insert(e.path.clone(), sha256_file(&e.path)?.0);
            }
        }
        let mut all: Vec<&str> = content.values().map(String::as_str).collect();
        all.sort_unstable();
        let joined = all.join(",");
        let uid = |label: &str| {
            remap_uid(
                key,
                &format!(
                    "{label}:{}",
                    hex::encode(keyed_hash(key, b"synthetic", joined.as_bytes()))
                ),
            )
        };
        Ok(SyntheticIds {
            key: *key,
            study_uid: uid("study"),
            raster_series_uid: uid("raster-series"),
            content,
        })
    }

    fn for_file(&self, path: &Path, label: &str) -> String {
        let sha = self.content.get(path).map(String::as_str).unwrap_or("");
        remap_uid(&self.key, &format!("{label}:{}:{sha}", self.study_uid))
    }
}

/// A header for a non-DICOM file, in the same JSON model as DICOM ones.
fn synthetic_json(info: &InstanceInfo) -> Result<serde_json::Value> {
    let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let obj = InMemDicomObject::from_element_iter([
        s(Tag(0x0008, 0x0016), VR::UI, SECONDARY_CAPTURE),
        s(Tag(0x0008, 0x0018), VR::UI, &info.sop_uid),
        s(Tag(0x0008, 0x0060), VR::CS, &info.modality),
        s(Tag(0x0012, 0x0062), VR::CS, "YES"),
        s(Tag(0x0020, 0x000D), VR::UI, &info.study_uid),
        s(Tag(0x0020, 0x000E), VR::UI, &info.series_uid),
        DataElement::new(
            Tag(0x0028, 0x0008),
            VR::IS,
            PrimitiveValue::from(info.frames.to_string()),
        ),
        DataElement::new(
            Tag(0x0028, 0x0010),
            VR::US,
            PrimitiveValue::from(info.rows.min(u16::MAX as u32) as u16),
        ),
        DataElement::new(
            Tag(0x0028, 0x0011),
            VR::US,
            PrimitiveValue::from(info.columns.min(u16::MAX as u32) as u16),
        ),
    ]);
    dicom_json::to_value(&obj).map_err(|_| ImagingError::Io)
}

fn synthetic_info(
    ctx: &FileCtx,
    path: &Path,
    series_uid: String,
    rows: u32,
    columns: u32,
    frames: u32,
) -> InstanceInfo {
    InstanceInfo {
        study_uid: ctx.synthetic.study_uid.clone(),
        series_uid,
        sop_uid: ctx.synthetic.for_file(path, "sop"),
        modality: "OT".into(),
        body_part: None,
        study_description: None,
        series_description: None,
        series_number: None,
        instance_number: Some(ctx.position as i32),
        rows,
        columns,
        frames,
        pixel_spacing: None,
        slice_thickness: None,
        image_position: None,
        image_orientation: None,
        transfer_syntax: None,
        photometric: None,
        bits_allocated: None,
        burned_in_annotation: false,
    }
}

fn ingest_nifti(entry: &Entry, gzipped: bool, ctx: &FileCtx) -> Result<Staged> {
    let vol = nifti::open(&entry.path)?;
    // A .nii.gz is inflated while reading: its declared size is bounded
    // like an archive's.
    let declared = vol.data_bytes().saturating_add(vol.header.vox_offset);
    if declared
        > ctx
            .cfg
            .limits
            .max_uncompressed_bytes
            .min(ctx.cfg.limits.max_file_bytes)
    {
        return Err(ImagingError::TooLarge {
            what: "the NIfTI volume".into(),
            limit: human_bytes(
                ctx.cfg
                    .limits
                    .max_file_bytes
                    .min(ctx.cfg.limits.max_uncompressed_bytes),
            ),
        });
    }
    // Reads every voxel once: a truncated or damaged stream fails here,
    // not in the viewer.
    vol.for_each_slice(|_, _, _| Ok(()))?;
    let staged_path = ctx.staged_dir.join(format!("{}", ctx.position));
    let changes = deid_nifti_copy(&entry.path, &vol, gzipped, &staged_path)?;
    let (sha256, bytes) = sha256_file(&staged_path)?;
    let [nx, ny, nz, nt] = vol.shape();
    let series = ctx.synthetic.for_file(&entry.path, "nifti-series");
    let mut info = synthetic_info(
        ctx,
        &entry.path,
        series,
        ny as u32,
        nx as u32,
        (nz * nt) as u32,
    );
    let h = &vol.header;
    info.pixel_spacing = Some([h.pixdim[2], h.pixdim[1]]);
    info.slice_thickness = Some(h.pixdim[3]);
    let a = vol.affine_lps();
    info.image_position = Some([a[0][3], a[1][3], a[2][3]]);
    info.image_orientation = orientation(&a);
    info.photometric = Some("MONOCHROME2".into());
    info.bits_allocated = Some(h.bitpix as u16);
    info.series_description = Some(format!("NIfTI-{} volume", h.version));
    let dicom_json = synthetic_json(&info)?;
    Ok(Staged {
        accepted: Accepted {
            file: entry.name.clone(),
            kind: InstanceKind::Nifti,
            path: staged_path,
            sha256,
            bytes,
            info,
            deid: changes,
            dicom_json,
        },
        identity_map: Vec::new(),
    })
}

/// Row and column direction cosines from the LPS affine's first two columns.
fn orientation(a: &[[f64; 4]; 4]) -> Option<[f64; 6]> {
    let col = |j: usize| {
        let v = [a[0][j], a[1][j], a[2][j]];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        (n > 0.0).then(|| [v[0] / n, v[1] / n, v[2] / n])
    };
    let (r, c) = (col(0)?, col(1)?);
    Some([r[0], r[1], r[2], c[0], c[1], c[2]])
}

/// Largest header-plus-extensions region copied through memory.
const MAX_NIFTI_HEADER: u64 = 16 << 20;

/// Copies a NIfTI with its free-text fields (`descrip`, `aux_file`, and in
/// NIfTI-1 `db_name`) and header extensions (which can hold a whole DICOM
/// header) blanked; the voxels are streamed through unchanged.
fn deid_nifti_copy(
    src: &Path,
    vol: &nifti::NiftiVolume,
    gzipped: bool,
    dst: &Path,
) -> Result<Vec<DeidChange>> {
    let h = &vol.header;
    if h.vox_offset > MAX_NIFTI_HEADER {
        return Err(ImagingError::Unsupported {
            detail: "NIfTI header extensions larger than 16 MiB".into(),
        });
    }
    let file = BufReader::new(File::open(src)?);
    let mut input: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut header = vec![0u8; h.vox_offset as usize];
    input
        .read_exact(&mut header)
        .map_err(|_| ImagingError::Truncated {
            what: "the NIfTI header".into(),
        })?;
    let mut changes = Vec::new();
    let mut blank = |range: std::ops::Range<usize>, field: &str| {
        if let Some(bytes) = header.get_mut(range) {
            if bytes.iter().any(|&b| b != 0) {
                bytes.fill(0);
                changes.push(DeidChange {
                    tag: format!("nifti:{field}"),
                    keyword: field.into(),
                    action: "emptied".into(),
                });
            }
        }
    };
    let hdr_len = if h.version == 1 {
        blank(4..14, "data_type");
        blank(14..32, "db_name");
        blank(148..228, "descrip");
        blank(228..252, "aux_file");
        348
    } else {
        blank(240..320, "descrip");
        blank(320..344, "aux_file");
        540
    };
    blank(hdr_len + 4..h.vox_offset as usize, "extensions");
    blank(hdr_len..hdr_len + 4, "extension_flag");
    let out = BufWriter::new(File::create(dst)?);
    if gzipped {
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        gz.write_all(&header)?;
        std::io::copy(&mut input, &mut gz).map_err(|_| ImagingError::Truncated {
            what: "the NIfTI voxel data".into(),
        })?;
        gz.finish()?.flush()?;
    } else {
        let mut out = out;
        out.write_all(&header)?;
        std::io::copy(&mut input, &mut out)?;
        out.flush()?;
    }
    Ok(changes)
}

fn ingest_raster(entry: &Entry, ctx: &FileCtx) -> Result<Staged> {
    let img = raster::reencode(&entry.path, &ctx.cfg.limits)?;
    let staged_path = ctx.staged_dir.join(format!("{}", ctx.position));
    std::fs::write(&staged_path, &img.png)?;
    let (sha256, bytes) = sha256_file(&staged_path)?;
    let series = ctx.synthetic.raster_series_uid.clone();
    let mut info = synthetic_info(ctx, &entry.path, series, img.height, img.width, 1);
    info.photometric = Some(img.photometric.into());
    let dicom_json = synthetic_json(&info)?;
    Ok(Staged {
        accepted: Accepted {
            file: entry.name.clone(),
            kind: InstanceKind::Raster,
            path: staged_path,
            sha256,
            bytes,
            info,
            deid: vec![DeidChange {
                tag: "raster:metadata".into(),
                keyword: "EXIF and text chunks".into(),
                action: "removed".into(),
            }],
            dicom_json,
        },
        identity_map: Vec::new(),
    })
}

// ------------------------------------------------------------ settling

/// Applies all-or-nothing per study and moves what survives into
/// `out_dir/<sha256>`.
fn settle(outcomes: Vec<Outcome>, out_dir: &Path, report: &mut IngestReport) -> Result<()> {
    // The first failure of each study, to name in its siblings' reasons.
    let mut failed_studies: BTreeMap<String, String> = BTreeMap::new();
    for o in &outcomes {
        if let Outcome::Failed {
            study: Some(study),
            file,
            position,
            total,
            error,
        } = o
        {
            failed_studies.entry(study.clone()).or_insert_with(|| {
                format!("file {position} of {total}, {file}: {}", sentence(error))
            });
        }
    }
    let mut studies: BTreeMap<String, Vec<Staged>> = BTreeMap::new();
    for o in outcomes {
        match o {
            Outcome::Skipped => {}
            Outcome::Failed {
                file,
                position,
                total,
                error,
                ..
            } => report.rejected.push(Rejected {
                file,
                reason: format!("file {position} of {total}: {}", sentence(&error)),
            }),
            Outcome::Staged(staged) => {
                let study = staged.accepted.info.study_uid.clone();
                if let Some(why) = failed_studies.get(&study) {
                    let _ = std::fs::remove_file(&staged.accepted.path);
                    report.rejected.push(Rejected {
                        file: staged.accepted.file.clone(),
                        reason: format!("another file of the same study was refused ({why}); nothing of this study was stored"),
                    });
                } else {
                    studies.entry(study).or_default().push(*staged);
                }
            }
        }
    }
    for (_, files) in studies {
        commit_study(files, out_dir, report)?;
    }
    Ok(())
}

/// Moves one study's files into place; if a move fails, the ones already
/// moved are removed again and the study is rejected.
fn commit_study(files: Vec<Staged>, out_dir: &Path, report: &mut IngestReport) -> Result<()> {
    let mut moved: Vec<PathBuf> = Vec::new();
    let mut failed = false;
    for s in &files {
        let dest = out_dir.join(&s.accepted.sha256);
        let existed = dest.exists();
        if std::fs::rename(&s.accepted.path, &dest).is_err() {
            failed = true;
            break;
        }
        if !existed {
            moved.push(dest);
        }
    }
    if failed {
        for p in moved {
            let _ = std::fs::remove_file(p);
        }
        for s in files {
            report.rejected.push(Rejected {
                file: s.accepted.file,
                reason: "the study could not be stored; nothing of it was kept".into(),
            });
        }
        return Ok(());
    }
    for mut s in files {
        s.accepted.path = out_dir.join(&s.accepted.sha256);
        report.identity_map.extend(s.identity_map);
        report.accepted.push(s.accepted);
    }
    Ok(())
}

/// An error as the end of a sentence for the uploader.
fn sentence(e: &ImagingError) -> String {
    e.to_string()
}
