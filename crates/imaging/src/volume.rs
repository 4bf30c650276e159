//! Series of single-frame DICOM slices assembled into volumes.
//!
//! # Convention (shared with [`crate::nifti`])
//! Coordinates are DICOM patient coordinates, **LPS**: +x towards the
//! patient's left, +y posterior, +z head, in millimetres. A voxel index is
//! `(i, j, k)` = (column, row, slice), `i` fastest in [`Volume::data`]:
//! `data[i + j * dims[0] + k * dims[0] * dims[1]]`. The affine maps
//! `(i, j, k, 1)` to the voxel *centre* in LPS mm:
//! - column 0 = row direction cosines (IOP[0..3]) × column spacing,
//! - column 1 = column direction cosines (IOP[3..6]) × row spacing,
//! - column 2 = the step from the first to the last slice / (n − 1), which
//!   follows a gantry tilt instead of assuming the normal,
//! - column 3 = Image Position (Patient) of the first slice.
//!
//! NIfTI's qform/sform is RAS: negate its first two rows to get this.
//!
//! Slices are sorted by their Image Position projected on the slice normal
//! (row × column cosines), never by Instance Number, which scanners number
//! in either direction. Spacing between slices is measured; when it is not
//! uniform, [`SliceSpacing::uniform`] says so, so a viewer or a model can
//! refuse or resample instead of silently stretching anatomy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dicom::{self, DicomFile};
use crate::error::{ImagingError, Result};
use crate::pixel;

/// Orientation cosines differing by less than this are the same plane.
const ORIENTATION_TOLERANCE: f64 = 1e-4;
/// Gaps within this fraction of the mean (or 0.01 mm) count as uniform.
const UNIFORM_TOLERANCE: f64 = 0.01;

/// Measured distances between consecutive slices along the normal, in mm.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceSpacing {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Every gap within 1 % of the mean (or 0.01 mm).
    pub uniform: bool,
    /// The gaps themselves, `slices − 1` of them, in slice order.
    pub gaps: Vec<f64>,
}

/// A volume of modality values (HU for CT).
#[derive(Debug, Clone)]
pub struct Volume {
    pub series_uid: String,
    /// Columns, rows, slices.
    pub dims: [usize; 3],
    /// Column spacing, row spacing, mean slice spacing, mm.
    pub spacing: [f64; 3],
    /// Voxel index → LPS mm (see the module documentation).
    pub affine: [[f64; 4]; 4],
    pub data: Vec<f32>,
    pub slice_spacing: SliceSpacing,
    /// The file of each slice, in volume order.
    pub slice_paths: Vec<PathBuf>,
}

impl Volume {
    /// The LPS position (mm) of the centre of voxel `(i, j, k)`.
    pub fn voxel_to_patient(&self, ijk: [f64; 3]) -> [f64; 3] {
        let a = &self.affine;
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = a[r][0] * ijk[0] + a[r][1] * ijk[1] + a[r][2] * ijk[2] + a[r][3];
        }
        out
    }

    /// The value at `(i, j, k)`, if inside.
    pub fn get(&self, i: usize, j: usize, k: usize) -> Option<f32> {
        let [nx, ny, nz] = self.dims;
        (i < nx && j < ny && k < nz)
            .then(|| self.data.get(i + j * nx + k * nx * ny).copied())
            .flatten()
    }
}

/// What sorting needs from each slice, read once from its header. The file
/// itself is not kept: slices are decoded one at a time when the volume is
/// filled, so memory is the volume plus one file, not the whole series.
struct Slice {
    path: PathBuf,
    thickness: Option<f64>,
    position: [f64; 3],
    orientation: [f64; 6],
    rows: u32,
    columns: u32,
    pixel_spacing: [f64; 2],
}

/// Groups files by Series Instance UID and builds one volume per series.
/// Files that are not images (reports, DICOMDIR) are refused like any
/// other bad input: the caller decides what to hand over.
pub fn build_volumes(paths: &[PathBuf]) -> Result<Vec<Volume>> {
    let mut series: BTreeMap<String, Vec<Slice>> = BTreeMap::new();
    for path in paths {
        let file = dicom::open(path)?;
        let uid = file
            .series_instance_uid()
            .ok_or_else(|| ImagingError::Corrupt {
                detail: "a slice has no Series Instance UID".into(),
            })?;
        series.entry(uid).or_default().push(slice_of(path, &file)?);
    }
    series
        .into_iter()
        .map(|(uid, slices)| assemble(uid, slices))
        .collect()
}

/// Builds the volume of one series; more than one series is an error.
pub fn build_volume(paths: &[PathBuf]) -> Result<Volume> {
    let mut volumes = build_volumes(paths)?;
    if volumes.len() != 1 {
        return Err(ImagingError::Unsupported {
            detail: format!(
                "{} series given where one volume was expected",
                volumes.len()
            ),
        });
    }
    volumes.pop().ok_or(ImagingError::Empty)
}

fn slice_of(path: &Path, file: &DicomFile) -> Result<Slice> {
    let missing = |what: &str| ImagingError::Corrupt {
        detail: format!("a slice lacks {what}, so it cannot be placed in a volume"),
    };
    if file.frames() != 1 {
        return Err(ImagingError::Unsupported {
            detail: "multi-frame instances in a slice series".into(),
        });
    }
    Ok(Slice {
        path: path.to_path_buf(),
        position: file
            .image_position()
            .ok_or_else(|| missing("Image Position (Patient)"))?,
        orientation: file
            .image_orientation()
            .ok_or_else(|| missing("Image Orientation (Patient)"))?,
        rows: file.rows().ok_or_else(|| missing("Rows"))?,
        columns: file.columns().ok_or_else(|| missing("Columns"))?,
        pixel_spacing: file
            .pixel_spacing()
            .ok_or_else(|| missing("Pixel Spacing"))?,
        thickness: file.slice_thickness(),
    })
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The slice normal: row cosines × column cosines.
pub fn slice_normal(orientation: [f64; 6]) -> [f64; 3] {
    let row = [orientation[0], orientation[1], orientation[2]];
    let col = [orientation[3], orientation[4], orientation[5]];
    cross(row, col)
}

fn assemble(series_uid: String, mut slices: Vec<Slice>) -> Result<Volume> {
    let first = slices.first().ok_or(ImagingError::Empty)?;
    let (orientation, rows, columns, pixel_spacing) = (
        first.orientation,
        first.rows,
        first.columns,
        first.pixel_spacing,
    );
    for s in &slices {
        let same_plane = s
            .orientation
            .iter()
            .zip(&orientation)
            .all(|(a, b)| (a - b).abs() < ORIENTATION_TOLERANCE);
        if !same_plane || s.rows != rows || s.columns != columns {
            return Err(ImagingError::Unsupported {
                detail: "a series whose slices differ in orientation or size".into(),
            });
        }
    }
    let normal = slice_normal(orientation);
    slices.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    let gaps: Vec<f64> = slices
        .windows(2)
        .map(|w| dot(w[1].position, normal) - dot(w[0].position, normal))
        .collect();
    if gaps.iter().any(|g| g.abs() < 1e-3) {
        return Err(ImagingError::Unsupported {
            detail: "two slices of the series share a position (several echoes or phases?)".into(),
        });
    }
    let slice_spacing = measure(gaps, first_thickness(&slices));
    let n = slices.len();
    let first_pos = slices[0].position;
    let step = if n > 1 {
        let last = slices[n - 1].position;
        [0, 1, 2].map(|a| (last[a] - first_pos[a]) / (n - 1) as f64)
    } else {
        normal.map(|c| c * slice_spacing.mean)
    };
    let (row_spacing, col_spacing) = (pixel_spacing[0], pixel_spacing[1]);
    let mut affine = [[0.0; 4]; 4];
    for r in 0..3 {
        affine[r][0] = orientation[r] * col_spacing;
        affine[r][1] = orientation[3 + r] * row_spacing;
        affine[r][2] = step[r];
        affine[r][3] = first_pos[r];
    }
    affine[3][3] = 1.0;

    let per_slice = rows as usize * columns as usize;
    let mut data = Vec::with_capacity(per_slice * n);
    let mut slice_paths = Vec::with_capacity(n);
    for s in slices {
        let frame = dicom::open(&s.path)?.decode_frame(0)?;
        if frame.samples_per_pixel != 1 {
            return Err(ImagingError::Unsupported {
                detail: "colour images as volume slices".into(),
            });
        }
        let values = pixel::modality_values(&frame);
        data.extend_from_slice(
            values
                .get(..per_slice)
                .ok_or_else(|| ImagingError::Truncated {
                    what: "pixel data".into(),
                })?,
        );
        slice_paths.push(s.path);
    }
    Ok(Volume {
        series_uid,
        dims: [columns as usize, rows as usize, n],
        spacing: [col_spacing, row_spacing, slice_spacing.mean],
        affine,
        data,
        slice_spacing,
        slice_paths,
    })
}

fn first_thickness(slices: &[Slice]) -> Option<f64> {
    slices.first()?.thickness.filter(|t| *t > 0.0)
}

/// Gap statistics; a single slice takes its Slice Thickness (or 1 mm).
fn measure(gaps: Vec<f64>, thickness: Option<f64>) -> SliceSpacing {
    if gaps.is_empty() {
        let t = thickness.unwrap_or(1.0);
        return SliceSpacing {
            mean: t,
            min: t,
            max: t,
            uniform: true,
            gaps,
        };
    }
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let min = gaps.iter().copied().fold(f64::INFINITY, f64::min);
    let max = gaps.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tolerance = (mean.abs() * UNIFORM_TOLERANCE).max(0.01);
    SliceSpacing {
        mean,
        min,
        max,
        uniform: max - min <= tolerance,
        gaps,
    }
}
