//! Writers for synthetic images (the `inference::phantom` generators), so
//! that phantoms enter the app through the same ingest path as a scanner's
//! files: a CT slice and a chest radiograph as DICOM Part 10, volumes as
//! NIfTI-1.
//!
//! Every DICOM file says what it is: Image Comments "Synthetic phantom - not
//! a patient", a PHANTOM^... patient name and UIDs under the `2.25` root
//! (PS3.5 B.2, a UUID written as one decimal integer), derived from a name
//! so that the same phantom always gets the same UIDs.
//!
//! ```no_run
//! use imaging::write::{write_ct_dicom, SynthMeta};
//!
//! let hu = vec![-1000.0f32; 64 * 64];
//! let mut meta = SynthMeta::phantom("HEAD", 7, 1);
//! meta.pixel_spacing_mm = [3.6, 3.6];
//! meta.centre(64, 64, 0.0);
//! write_ct_dicom("/tmp/phantom.dcm", &hu, 64, 64, &meta)?;
//! # Ok::<(), imaging::ImagingError>(())
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};

use crate::{ImagingError, Result};

/// Image Comments (0020,4000) of every file written here.
pub const SYNTHETIC_COMMENT: &str = "Synthetic phantom - not a patient";

/// Identifiers and geometry of one synthetic image.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthMeta {
    /// e.g. `PHANTOM^HEAD^0001`.
    pub patient_name: String,
    pub patient_id: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub frame_of_reference_uid: String,
    pub study_description: String,
    pub series_description: String,
    pub series_number: u32,
    pub instance_number: u32,
    /// Study and content date, `YYYYMMDD`.
    pub study_date: String,
    /// Row spacing then column spacing (the DICOM order), mm.
    pub pixel_spacing_mm: [f64; 2],
    pub slice_thickness_mm: f64,
    /// Centre of the first pixel in DICOM patient coordinates (LPS, mm).
    /// Rows run to the patient's left, columns to the back
    /// (Image Orientation 1\0\0\0\1\0). CT only.
    pub image_position_mm: [f64; 3],
}

impl SynthMeta {
    /// Phantom `index` of body part `body_part` ("HEAD", "CHEST") from
    /// generator seed `seed`: one patient, study and series per index.
    /// UIDs are derived from (body part, seed, index), so regenerating the
    /// same phantom gives the same UIDs and different phantoms never share
    /// them. Geometry defaults to 1 mm pixels at the origin.
    pub fn phantom(body_part: &str, seed: u64, index: u32) -> SynthMeta {
        let part = body_part.to_ascii_uppercase();
        let key = format!("medvision-phantom/{part}/{seed}/{index}");
        SynthMeta {
            patient_name: format!("PHANTOM^{part}^{index:04}"),
            patient_id: format!("PHANTOM-{part}-{seed}-{index:04}"),
            study_uid: uuid_uid(&format!("{key}/study")),
            series_uid: uuid_uid(&format!("{key}/series")),
            sop_uid: uuid_uid(&format!("{key}/instance/1")),
            frame_of_reference_uid: uuid_uid(&format!("{key}/frame-of-reference")),
            study_description: format!("Synthetic {} phantom", part.to_ascii_lowercase()),
            series_description: format!("Phantom seed {seed} index {index}"),
            series_number: 1,
            instance_number: 1,
            study_date: "20000101".into(),
            pixel_spacing_mm: [1.0, 1.0],
            slice_thickness_mm: 1.0,
            image_position_mm: [0.0; 3],
        }
    }

    /// The same series' slice `instance_number` at height `z_mm`, with its
    /// own SOP Instance UID: for writing a volume slice by slice.
    pub fn slice(&self, instance_number: u32, z_mm: f64) -> SynthMeta {
        SynthMeta {
            sop_uid: uuid_uid(&format!("{}/instance/{instance_number}", self.series_uid)),
            instance_number,
            image_position_mm: [self.image_position_mm[0], self.image_position_mm[1], z_mm],
            ..self.clone()
        }
    }

    /// Puts the centre of a `rows` x `cols` image at (0, 0, `z_mm`).
    pub fn centre(&mut self, rows: usize, cols: usize, z_mm: f64) {
        let [row_mm, col_mm] = self.pixel_spacing_mm;
        self.image_position_mm = [
            -(cols.saturating_sub(1) as f64) / 2.0 * col_mm,
            -(rows.saturating_sub(1) as f64) / 2.0 * row_mm,
            z_mm,
        ];
    }
}

/// A UID under `2.25` from a name: SHA-256 of the name, its first 128 bits
/// shaped as an RFC 9562 version 8 (custom) UUID, written as a decimal
/// integer. At most 44 characters.
pub fn uuid_uid(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

fn write_error(detail: impl Into<String>) -> ImagingError {
    ImagingError::Write {
        detail: detail.into(),
    }
}

/// A DS value: at most 16 characters (PS3.5 6.2), as precise as fits.
fn ds(v: f64) -> String {
    for decimals in (0..=10).rev() {
        let s = format!("{v:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        let s = if s == "-0" { "0".to_string() } else { s };
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.6e}")
}

fn ds_values(values: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|&v| ds(v)).collect())
}

fn strs(values: &[&str]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|v| v.to_string()).collect())
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

fn check_size(len: usize, rows: usize, cols: usize) -> Result<(u16, u16)> {
    let r = u16::try_from(rows).map_err(|_| write_error("more than 65535 rows"))?;
    let c = u16::try_from(cols).map_err(|_| write_error("more than 65535 columns"))?;
    if rows == 0 || cols == 0 || rows.checked_mul(cols) != Some(len) {
        return Err(write_error(format!(
            "{len} pixel values for a {rows} x {cols} image"
        )));
    }
    Ok((r, c))
}

/// Patient, study, series, equipment and SOP elements both writers share.
fn common(meta: &SynthMeta, sop_class: &str, modality: &str, body_part: &str) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put(
        &mut o,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        meta.sop_uid.as_str(),
    );
    put(&mut o, tags::STUDY_DATE, VR::DA, meta.study_date.as_str());
    put(&mut o, tags::CONTENT_DATE, VR::DA, meta.study_date.as_str());
    put(&mut o, tags::STUDY_TIME, VR::TM, "120000");
    put(&mut o, tags::CONTENT_TIME, VR::TM, "120000");
    put(
        &mut o,
        tags::ACCESSION_NUMBER,
        VR::SH,
        PrimitiveValue::Empty,
    );
    put(&mut o, tags::MODALITY, VR::CS, modality);
    put(&mut o, tags::MANUFACTURER, VR::LO, "MedVision");
    put(
        &mut o,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        "Synthetic phantom",
    );
    put(
        &mut o,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        PrimitiveValue::Empty,
    );
    put(
        &mut o,
        tags::STUDY_DESCRIPTION,
        VR::LO,
        meta.study_description.as_str(),
    );
    put(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        meta.series_description.as_str(),
    );
    put(
        &mut o,
        tags::PATIENT_NAME,
        VR::PN,
        meta.patient_name.as_str(),
    );
    put(&mut o, tags::PATIENT_ID, VR::LO, meta.patient_id.as_str());
    put(
        &mut o,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        PrimitiveValue::Empty,
    );
    put(&mut o, tags::PATIENT_SEX, VR::CS, "O");
    put(&mut o, tags::BODY_PART_EXAMINED, VR::CS, body_part);
    put(
        &mut o,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        meta.study_uid.as_str(),
    );
    put(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        meta.series_uid.as_str(),
    );
    put(&mut o, tags::STUDY_ID, VR::SH, "1");
    put(
        &mut o,
        tags::SERIES_NUMBER,
        VR::IS,
        meta.series_number.to_string(),
    );
    put(
        &mut o,
        tags::INSTANCE_NUMBER,
        VR::IS,
        meta.instance_number.to_string(),
    );
    put(&mut o, tags::IMAGE_COMMENTS, VR::LT, SYNTHETIC_COMMENT);
    put(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
    put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, 1u16);
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put(&mut o, tags::BITS_ALLOCATED, VR::US, 16u16);
    put(
        &mut o,
        tags::PIXEL_SPACING,
        VR::DS,
        ds_values(&meta.pixel_spacing_mm),
    );
    o
}

fn save(obj: InMemDicomObject, path: &Path) -> Result<()> {
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| write_error(format!("file meta group: {e}")))?;
    file.write_to_file(path)
        .map_err(|e| write_error(format!("{}: {e}", path.display())))
}

/// Writes a CT Image Storage file (explicit VR little endian, 16-bit
/// signed pixels) from Hounsfield units, row-major `rows * cols`.
///
/// Stored value = round(HU) - intercept, slope 1: the intercept is -1024
/// (the usual CT choice) when every value fits, otherwise the middle of the
/// range. Values are rounded to whole HU; a range wider than 65535 HU or a
/// non-finite value is refused. Window 40/80 (brain).
pub fn write_ct_dicom(
    path: impl AsRef<Path>,
    hu: &[f32],
    rows: usize,
    cols: usize,
    meta: &SynthMeta,
) -> Result<()> {
    let (r, c) = check_size(hu.len(), rows, cols)?;
    if hu.iter().any(|v| !v.is_finite()) {
        return Err(write_error("a Hounsfield value is not finite"));
    }
    let rounded: Vec<i64> = hu.iter().map(|&v| v.round() as i64).collect();
    let lo = rounded.iter().copied().min().unwrap_or(0);
    let hi = rounded.iter().copied().max().unwrap_or(0);
    let fits =
        |intercept: i64| lo - intercept >= i16::MIN as i64 && hi - intercept <= i16::MAX as i64;
    let intercept = if fits(-1024) {
        -1024
    } else {
        lo + (hi - lo) / 2
    };
    if !fits(intercept) {
        return Err(write_error(format!(
            "Hounsfield values from {lo} to {hi} do not fit 16 bits"
        )));
    }
    let stored: Vec<u16> = rounded
        .iter()
        .map(|&v| (v - intercept) as i16 as u16)
        .collect();

    let mut o = common(meta, uids::CT_IMAGE_STORAGE, "CT", "HEAD");
    put(
        &mut o,
        tags::IMAGE_TYPE,
        VR::CS,
        strs(&["DERIVED", "SECONDARY", "AXIAL"]),
    );
    put(
        &mut o,
        tags::SLICE_THICKNESS,
        VR::DS,
        ds(meta.slice_thickness_mm),
    );
    put(&mut o, tags::KVP, VR::DS, "120");
    put(&mut o, tags::PATIENT_POSITION, VR::CS, "HFS");
    put(&mut o, tags::ACQUISITION_NUMBER, VR::IS, "1");
    put(
        &mut o,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        ds_values(&meta.image_position_mm),
    );
    put(
        &mut o,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        ds_values(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
    );
    put(
        &mut o,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        meta.frame_of_reference_uid.as_str(),
    );
    put(
        &mut o,
        tags::POSITION_REFERENCE_INDICATOR,
        VR::LO,
        PrimitiveValue::Empty,
    );
    put(
        &mut o,
        tags::SLICE_LOCATION,
        VR::DS,
        ds(meta.image_position_mm[2]),
    );
    put(&mut o, tags::ROWS, VR::US, r);
    put(&mut o, tags::COLUMNS, VR::US, c);
    put(&mut o, tags::BITS_STORED, VR::US, 16u16);
    put(&mut o, tags::HIGH_BIT, VR::US, 15u16);
    put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, 1u16);
    put(&mut o, tags::WINDOW_CENTER, VR::DS, "40");
    put(&mut o, tags::WINDOW_WIDTH, VR::DS, "80");
    put(
        &mut o,
        tags::WINDOW_CENTER_WIDTH_EXPLANATION,
        VR::LO,
        "BRAIN",
    );
    put(
        &mut o,
        tags::RESCALE_INTERCEPT,
        VR::DS,
        ds(intercept as f64),
    );
    put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
    put(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
    put(
        &mut o,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(stored.into()),
    );
    save(o, path.as_ref())
}

/// Writes a Digital X-Ray Image Storage - For Presentation file (PA chest,
/// MONOCHROME2, 16-bit unsigned, 12 bits stored) from values in [0, 1]
/// (brighter = more attenuation), row-major `rows * cols`: stored =
/// round(v * 4095), values outside [0, 1] clipped. Window 2048/4096 (the
/// whole range).
pub fn write_dx_dicom(
    path: impl AsRef<Path>,
    pixels: &[f32],
    rows: usize,
    cols: usize,
    meta: &SynthMeta,
) -> Result<()> {
    let (r, c) = check_size(pixels.len(), rows, cols)?;
    if pixels.iter().any(|v| !v.is_finite()) {
        return Err(write_error("a pixel value is not finite"));
    }
    let stored: Vec<u16> = pixels
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 4095.0).round() as u16)
        .collect();

    let mut o = common(
        meta,
        uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
        "DX",
        "CHEST",
    );
    put(
        &mut o,
        tags::IMAGE_TYPE,
        VR::CS,
        strs(&["DERIVED", "PRIMARY"]),
    );
    put(
        &mut o,
        tags::PRESENTATION_INTENT_TYPE,
        VR::CS,
        "FOR PRESENTATION",
    );
    put(&mut o, tags::VIEW_POSITION, VR::CS, "PA");
    put(&mut o, tags::IMAGE_LATERALITY, VR::CS, "U");
    // Displayed as if facing the patient: rows run to the patient's left,
    // columns to the feet.
    put(&mut o, tags::PATIENT_ORIENTATION, VR::CS, strs(&["L", "F"]));
    put(&mut o, tags::KVP, VR::DS, "120");
    put(&mut o, tags::DETECTOR_TYPE, VR::CS, PrimitiveValue::Empty);
    put(
        &mut o,
        tags::IMAGER_PIXEL_SPACING,
        VR::DS,
        ds_values(&meta.pixel_spacing_mm),
    );
    let chest = InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from("51185008")),
        DataElement::new(
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            PrimitiveValue::from("SCT"),
        ),
        DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from("Chest")),
    ]);
    o.put(DataElement::new(
        tags::ANATOMIC_REGION_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![chest]),
    ));
    put(&mut o, tags::ROWS, VR::US, r);
    put(&mut o, tags::COLUMNS, VR::US, c);
    put(&mut o, tags::BITS_STORED, VR::US, 12u16);
    put(&mut o, tags::HIGH_BIT, VR::US, 11u16);
    put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, 0u16);
    put(&mut o, tags::PIXEL_INTENSITY_RELATIONSHIP, VR::CS, "LOG");
    // -1: higher stored values mean less X-ray reached the detector, i.e.
    // more attenuation, which MONOCHROME2 shows brighter.
    put(
        &mut o,
        tags::PIXEL_INTENSITY_RELATIONSHIP_SIGN,
        VR::SS,
        -1i16,
    );
    put(&mut o, tags::WINDOW_CENTER, VR::DS, "2048");
    put(&mut o, tags::WINDOW_WIDTH, VR::DS, "4096");
    put(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "0");
    put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
    put(&mut o, tags::RESCALE_TYPE, VR::LO, "US");
    put(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put(&mut o, tags::PRESENTATION_LUT_SHAPE, VR::CS, "IDENTITY");
    put(
        &mut o,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(stored.into()),
    );
    save(o, path.as_ref())
}

/// NIfTI datatypes written here.
#[derive(Debug, Clone, Copy)]
enum Voxels<'a> {
    Float32(&'a [f32]),
    Uint8(&'a [u8]),
}

/// Writes a float32 NIfTI-1 volume; `.nii.gz` is gzipped, `.nii` is not,
/// anything else is refused.
///
/// `shape` is `[nx, ny, nz]` and `data` has x fastest, then y, then z: a
/// row-major `(z, y, x)` array, the layout of `BrainMri` channels and of a
/// stack of row-major slices. The affine (sform and qform, code 1) maps
/// voxel (i, j, k) to RAS+ mm as `(-(i - ci) dx, -(j - cj) dy, (k - ck) dz)`
/// around the volume centre `c`: i runs to the patient's left, j to the
/// back, k up, the same orientation as an axial DICOM series with Image
/// Orientation 1\0\0\0\1\0, so columns, rows and slices of the phantoms
/// keep their meaning.
pub fn write_nifti(
    path: impl AsRef<Path>,
    data: &[f32],
    shape: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<()> {
    if data.iter().any(|v| !v.is_finite()) {
        return Err(write_error("a voxel value is not finite"));
    }
    write_nifti_voxels(path.as_ref(), Voxels::Float32(data), shape, spacing_mm)
}

/// [`write_nifti`] for a label map (uint8, intent NIFTI_INTENT_LABEL), e.g.
/// `BrainMri::seg`.
pub fn write_nifti_labels(
    path: impl AsRef<Path>,
    labels: &[u8],
    shape: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<()> {
    write_nifti_voxels(path.as_ref(), Voxels::Uint8(labels), shape, spacing_mm)
}

fn write_nifti_voxels(
    path: &Path,
    voxels: Voxels,
    shape: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let gzip = if name.ends_with(".nii.gz") {
        true
    } else if name.ends_with(".nii") {
        false
    } else {
        return Err(write_error("a NIfTI file name ends in .nii or .nii.gz"));
    };
    let len = match voxels {
        Voxels::Float32(v) => v.len(),
        Voxels::Uint8(v) => v.len(),
    };
    if shape.iter().any(|&d| d == 0 || d > i16::MAX as usize)
        || shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) != Some(len)
    {
        return Err(write_error(format!(
            "{len} voxels for a {} x {} x {} volume",
            shape[0], shape[1], shape[2]
        )));
    }
    if spacing_mm.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(write_error("voxel spacing must be positive"));
    }
    let header = nifti1_header(voxels, shape, spacing_mm);
    let file = BufWriter::new(File::create(path)?);
    if gzip {
        let mut gz = GzEncoder::new(file, Compression::default());
        write_nifti_body(&mut gz, &header, voxels)?;
        gz.finish()?.flush()?;
    } else {
        let mut file = file;
        write_nifti_body(&mut file, &header, voxels)?;
        file.flush()?;
    }
    Ok(())
}

fn write_nifti_body(out: &mut impl Write, header: &[u8], voxels: Voxels) -> Result<()> {
    out.write_all(header)?;
    match voxels {
        Voxels::Float32(v) => {
            for chunk in v.chunks(1 << 16) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
                out.write_all(&bytes)?;
            }
        }
        Voxels::Uint8(v) => out.write_all(v)?,
    }
    Ok(())
}

/// The 348-byte NIfTI-1 header (nifti1.h offsets, little endian) and the
/// 4-byte empty extension flag; data follows at 352.
fn nifti1_header(voxels: Voxels, shape: [usize; 3], spacing: [f64; 3]) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    let i16_at = |h: &mut [u8], at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let i32_at = |h: &mut [u8], at: usize, v: i32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let f32_at =
        |h: &mut [u8], at: usize, v: f64| h[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes());
    i32_at(&mut h, 0, 348);
    h[38] = b'r';
    let dims = [
        3,
        shape[0] as i16,
        shape[1] as i16,
        shape[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (k, d) in dims.iter().enumerate() {
        i16_at(&mut h, 40 + 2 * k, *d);
    }
    let (datatype, bitpix, intent) = match voxels {
        Voxels::Float32(_) => (16, 32, 0),
        // NIFTI_INTENT_LABEL
        Voxels::Uint8(_) => (2, 8, 1002),
    };
    i16_at(&mut h, 68, intent);
    i16_at(&mut h, 70, datatype);
    i16_at(&mut h, 72, bitpix);
    // pixdim[0] is qfac: +1, the qform below is a proper rotation.
    let pixdim = [1.0, spacing[0], spacing[1], spacing[2], 0.0, 0.0, 0.0, 0.0];
    for (k, p) in pixdim.iter().enumerate() {
        f32_at(&mut h, 76 + 4 * k, *p);
    }
    f32_at(&mut h, 108, 352.0);
    f32_at(&mut h, 112, 1.0);
    f32_at(&mut h, 116, 0.0);
    // NIFTI_UNITS_MM (time units unset: a 3D volume).
    h[123] = 2;
    let descrip = SYNTHETIC_COMMENT.as_bytes();
    h[148..148 + descrip.len()].copy_from_slice(descrip);

    let centre = shape.map(|d| (d as f64 - 1.0) / 2.0);
    let offset = [
        centre[0] * spacing[0],
        centre[1] * spacing[1],
        -centre[2] * spacing[2],
    ];
    // NIFTI_XFORM_SCANNER_ANAT for both.
    i16_at(&mut h, 252, 1);
    i16_at(&mut h, 254, 1);
    // diag(-1, -1, 1) is a half turn about z: quaternion (0, 0, 0, 1).
    f32_at(&mut h, 256, 0.0);
    f32_at(&mut h, 260, 0.0);
    f32_at(&mut h, 264, 1.0);
    for (k, o) in offset.iter().enumerate() {
        f32_at(&mut h, 268 + 4 * k, *o);
    }
    let srow = [
        [-spacing[0], 0.0, 0.0, offset[0]],
        [0.0, -spacing[1], 0.0, offset[1]],
        [0.0, 0.0, spacing[2], offset[2]],
    ];
    for (r, row) in srow.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            f32_at(&mut h, 280 + 16 * r + 4 * c, *v);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_sixteen_characters() {
        assert_eq!(ds(0.1 + 0.2), "0.3");
        assert_eq!(ds(-1024.0), "-1024");
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(-117.87890625), "-117.87890625");
        for v in [1.0 / 3.0, -123456.789012345, 1e-12, 98765432.123] {
            assert!(ds(v).len() <= 16, "{}", ds(v));
            assert!((ds(v).parse::<f64>().unwrap() - v).abs() <= 1e-6 * v.abs().max(1.0));
        }
    }

    #[test]
    fn uids_are_valid_and_distinct() {
        let a = uuid_uid("a");
        let b = uuid_uid("b");
        assert_ne!(a, b);
        for u in [&a, &b] {
            assert!(u.starts_with("2.25.") && u.len() <= 64);
            let n = &u[5..];
            assert!(n.chars().all(|c| c.is_ascii_digit()) && !n.starts_with('0'));
        }
        assert_eq!(a, uuid_uid("a"));
    }
}
