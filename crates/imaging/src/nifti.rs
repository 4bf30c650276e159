//! NIfTI-1 and NIfTI-2 volumes (`.nii`, `.nii.gz`), 3D to 7D, either byte
//! order, every real-valued datatype and RGB24.
//!
//! Own header parser rather than the `nifti` crate: nifti-rs reads NIfTI-1
//! only (NIfTI-2 is its open issue Enet4/nifti-rs#89) and pulls nalgebra and
//! ndarray into a build that needs neither. Both headers are fixed layouts
//! (nifti1.h / nifti2.h), so reading them field by field is short and exact.
//!
//! Voxel values follow nibabel's `get_fdata()`: `scl_slope`/`scl_inter`
//! applied unless the slope is 0 or not finite. The affine follows nibabel's
//! `get_best_affine()`: sform when `sform_code` is set, else qform when
//! `qform_code` is set, else the pixdim-only affine centred on the volume.
//!
//! NIfTI's world space is RAS+ (+x towards the patient's Right, +y
//! Anterior, +z Superior); DICOM's patient space is LPS+ (+x Left, +y
//! Posterior, +z Superior).
//! [`NiftiVolume::affine_lps`] therefore negates the first two rows, which is
//! what lets a NIfTI overlay sit on a DICOM series in the viewer.
//!
//! Memory: the voxels are never loaded whole. [`NiftiVolume::slice`] reads one
//! z-slice (seeking in `.nii`, inflating up to it in `.nii.gz`), and
//! [`NiftiVolume::for_each_slice`] streams every slice in one pass.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::{ImagingError, Result};

/// Largest in-plane slice accepted (voxels): far beyond any scanner, small
/// enough that one slice always fits in memory.
const MAX_SLICE_VOXELS: u64 = 1 << 28;

/// The header fields the viewer and index need, both versions widened to
/// NIfTI-2's types.
#[derive(Debug, Clone, PartialEq)]
pub struct NiftiHeader {
    /// 1 or 2.
    pub version: u8,
    pub big_endian: bool,
    /// `dim[1..=dim[0]]`.
    pub dims: Vec<u64>,
    /// `pixdim[0..8]` (`pixdim[0]` is qfac).
    pub pixdim: [f64; 8],
    pub datatype: i16,
    pub bitpix: i16,
    pub vox_offset: u64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern: [f64; 3],
    pub qoffset: [f64; 3],
    pub srow: [[f64; 4]; 3],
    pub xyzt_units: u8,
    pub descrip: String,
}

/// An opened NIfTI file; voxels are read on demand.
#[derive(Debug, Clone)]
pub struct NiftiVolume {
    path: PathBuf,
    gzipped: bool,
    pub header: NiftiHeader,
}

/// Opens a `.nii` or `.nii.gz` (recognised by content, not by name).
pub fn open(path: impl AsRef<Path>) -> Result<NiftiVolume> {
    NiftiVolume::open(path)
}

fn corrupt(detail: &str) -> ImagingError {
    ImagingError::Corrupt {
        detail: format!("the NIfTI header is invalid ({detail})"),
    }
}

impl NiftiVolume {
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut magic = [0u8; 2];
        let gzipped = {
            let mut f = File::open(&path)?;
            let n = f.read(&mut magic)?;
            n == 2 && magic == [0x1f, 0x8b]
        };
        let mut reader = data_reader(&path, gzipped)?;
        let header = read_header(&mut reader)?;
        let vol = NiftiVolume {
            path,
            gzipped,
            header,
        };
        vol.check_size()?;
        Ok(vol)
    }

    /// x, y, z and the product of every further dimension (time, then
    /// vector components), each at least 1.
    pub fn shape(&self) -> [usize; 4] {
        let size = |v: u64| usize::try_from(v.max(1)).unwrap_or(usize::MAX);
        let d = |i: usize| size(self.header.dims.get(i).copied().unwrap_or(1));
        // Saturating: a hostile header multiplies to more than usize holds;
        // `check_size` refuses such a volume when it is opened.
        let t = self
            .header
            .dims
            .iter()
            .skip(3)
            .fold(1usize, |acc, &v| acc.saturating_mul(size(v)));
        [d(0), d(1), d(2), t]
    }

    /// Voxel to world (RAS+, mm), as nibabel's `affine`.
    pub fn affine_ras(&self) -> [[f64; 4]; 4] {
        let h = &self.header;
        if h.sform_code != 0 {
            let s = h.srow;
            return [s[0], s[1], s[2], [0.0, 0.0, 0.0, 1.0]];
        }
        if h.qform_code != 0 {
            return qform_affine(h);
        }
        let [nx, ny, nz, _] = self.shape();
        base_affine([nx, ny, nz], [h.pixdim[1], h.pixdim[2], h.pixdim[3]])
    }

    /// Voxel to DICOM patient coordinates (LPS+, mm): RAS with x and y negated.
    pub fn affine_lps(&self) -> [[f64; 4]; 4] {
        let mut a = self.affine_ras();
        for row in a.iter_mut().take(2) {
            for v in row.iter_mut() {
                *v = -*v;
            }
        }
        a
    }

    fn voxel_bytes(&self) -> usize {
        match self.header.datatype {
            128 => 3,
            2304 => 4,
            _ => (self.header.bitpix as usize / 8).max(1),
        }
    }

    fn slice_voxels(&self) -> usize {
        let [nx, ny, _, _] = self.shape();
        nx * ny
    }

    fn check_size(&self) -> Result<()> {
        let [nx, ny, nz, nt] = self.shape();
        let slice = (nx as u64)
            .checked_mul(ny as u64)
            .ok_or_else(|| corrupt("dimensions"))?;
        if slice > MAX_SLICE_VOXELS {
            return Err(ImagingError::Unsupported {
                detail: "the NIfTI slices are larger than any scanner produces".into(),
            });
        }
        let total = slice
            .checked_mul(nz as u64)
            .and_then(|v| v.checked_mul(nt as u64))
            .and_then(|v| v.checked_mul(self.voxel_bytes() as u64))
            .ok_or_else(|| corrupt("dimensions"))?;
        if !self.gzipped {
            let len = std::fs::metadata(&self.path)?.len();
            if self.header.vox_offset.saturating_add(total) > len {
                return Err(ImagingError::Truncated {
                    what: "the NIfTI voxel data".into(),
                });
            }
        }
        Ok(())
    }

    /// Voxel values of slice `z` of volume `t`, x fastest, scaled.
    pub fn slice(&self, z: usize, t: usize) -> Result<Vec<f32>> {
        let [_, _, nz, nt] = self.shape();
        if z >= nz || t >= nt {
            return Err(ImagingError::Unsupported {
                detail: format!("slice {z} of volume {t} is outside the NIfTI volume"),
            });
        }
        let slice_bytes = (self.slice_voxels() * self.voxel_bytes()) as u64;
        let skip = self.header.vox_offset + (t as u64 * nz as u64 + z as u64) * slice_bytes;
        let mut reader = data_reader(&self.path, self.gzipped)?;
        if self.gzipped {
            std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())?;
        } else {
            // A plain file: the BufReader over File seeks directly.
            reader_seek(&mut reader, skip)?;
        }
        let raw = read_slice(&mut reader, slice_bytes as usize)?;
        self.convert(&raw)
    }

    /// Bytes of voxel data the header declares.
    pub fn data_bytes(&self) -> u64 {
        let [nx, ny, nz, nt] = self.shape();
        [nx, ny, nz, nt, self.voxel_bytes()]
            .iter()
            .fold(1u64, |acc, &v| acc.saturating_mul(v as u64))
    }

    /// Streams every slice in file order (z fastest, then t), one slice in
    /// memory at a time.
    pub fn for_each_slice(
        &self,
        mut f: impl FnMut(usize, usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let [_, _, nz, nt] = self.shape();
        let slice_bytes = self.slice_voxels() * self.voxel_bytes();
        let mut reader = data_reader(&self.path, self.gzipped)?;
        std::io::copy(
            &mut (&mut reader).take(self.header.vox_offset),
            &mut std::io::sink(),
        )?;
        for t in 0..nt {
            for z in 0..nz {
                let raw = read_slice(&mut reader, slice_bytes)?;
                let values = self.convert(&raw)?;
                f(z, t, &values)?;
            }
        }
        Ok(())
    }

    fn convert(&self, raw: &[u8]) -> Result<Vec<f32>> {
        let h = &self.header;
        let be = h.big_endian;
        let (slope, inter) = if h.scl_slope != 0.0 && h.scl_slope.is_finite() {
            (
                h.scl_slope,
                if h.scl_inter.is_finite() {
                    h.scl_inter
                } else {
                    0.0
                },
            )
        } else {
            (1.0, 0.0)
        };
        let n = self.voxel_bytes();
        let mut out = Vec::with_capacity(raw.len() / n);
        for c in raw.chunks_exact(n) {
            let v = match h.datatype {
                2 => c[0] as f64,
                256 => c[0] as i8 as f64,
                4 => rd16(c, be) as i16 as f64,
                512 => rd16(c, be) as f64,
                8 => rd32(c, be) as i32 as f64,
                768 => rd32(c, be) as f64,
                16 => f32::from_bits(rd32(c, be)) as f64,
                1024 => rd64(c, be) as i64 as f64,
                1280 => rd64(c, be) as f64,
                64 => f64::from_bits(rd64(c, be)),
                // RGB as luminance (ITU-R BT.601): the viewer shows grey.
                128 | 2304 => 0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64,
                other => {
                    return Err(ImagingError::Unsupported {
                        detail: format!("NIfTI datatype {other}"),
                    })
                }
            };
            out.push((v * slope + inter) as f32);
        }
        Ok(out)
    }
}

/// Reads one slice, growing the buffer only as bytes arrive: a gzipped
/// header can declare slices far larger than the data that follows.
fn read_slice(reader: &mut impl Read, n: usize) -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    reader
        .take(n as u64)
        .read_to_end(&mut raw)
        .map_err(truncated)?;
    if raw.len() < n {
        return Err(ImagingError::Truncated {
            what: "the NIfTI voxel data".into(),
        });
    }
    Ok(raw)
}

fn truncated(e: std::io::Error) -> ImagingError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ImagingError::Truncated {
            what: "the NIfTI voxel data".into(),
        },
        _ => ImagingError::Corrupt {
            detail: "the NIfTI voxel data cannot be decompressed".into(),
        },
    }
}

enum DataReader {
    Plain(BufReader<File>),
    Gz(Box<BufReader<MultiGzDecoder<BufReader<File>>>>),
}

impl Read for DataReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            DataReader::Plain(r) => r.read(buf),
            DataReader::Gz(r) => r.read(buf),
        }
    }
}

fn reader_seek(r: &mut DataReader, pos: u64) -> Result<()> {
    match r {
        DataReader::Plain(f) => {
            f.seek(SeekFrom::Start(pos))?;
            Ok(())
        }
        DataReader::Gz(_) => Err(ImagingError::Io),
    }
}

fn data_reader(path: &Path, gzipped: bool) -> Result<DataReader> {
    let file = BufReader::new(File::open(path)?);
    Ok(if gzipped {
        DataReader::Gz(Box::new(BufReader::new(MultiGzDecoder::new(file))))
    } else {
        DataReader::Plain(file)
    })
}

fn rd16(b: &[u8], be: bool) -> u16 {
    let a = [b[0], b[1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}
fn rd32(b: &[u8], be: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}
fn rd64(b: &[u8], be: bool) -> u64 {
    let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
    if be {
        u64::from_be_bytes(a)
    } else {
        u64::from_le_bytes(a)
    }
}

/// Field reader over a header buffer of known length; offsets come from
/// nifti1.h / nifti2.h, so they are always in range.
struct Fields<'a> {
    b: &'a [u8],
    be: bool,
}

impl Fields<'_> {
    fn i16(&self, at: usize) -> i16 {
        rd16(&self.b[at..], self.be) as i16
    }
    fn i32(&self, at: usize) -> i32 {
        rd32(&self.b[at..], self.be) as i32
    }
    fn i64(&self, at: usize) -> i64 {
        rd64(&self.b[at..], self.be) as i64
    }
    fn f32(&self, at: usize) -> f64 {
        f32::from_bits(rd32(&self.b[at..], self.be)) as f64
    }
    fn f64(&self, at: usize) -> f64 {
        f64::from_bits(rd64(&self.b[at..], self.be))
    }
    fn text(&self, at: usize, len: usize) -> String {
        let s = &self.b[at..at + len];
        let end = s.iter().position(|&c| c == 0).unwrap_or(len);
        String::from_utf8_lossy(&s[..end]).trim().to_string()
    }
}

fn read_header(r: &mut impl Read) -> Result<NiftiHeader> {
    let mut buf = vec![0u8; 540];
    r.read_exact(&mut buf[..4])
        .map_err(|_| ImagingError::Truncated {
            what: "the NIfTI header".into(),
        })?;
    let size_le = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let size_be = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let (size, be) = match (size_le, size_be) {
        (348, _) => (348usize, false),
        (_, 348) => (348, true),
        (540, _) => (540, false),
        (_, 540) => (540, true),
        _ => return Err(ImagingError::NotRecognised),
    };
    r.read_exact(&mut buf[4..size])
        .map_err(|_| ImagingError::Truncated {
            what: "the NIfTI header".into(),
        })?;
    let f = Fields { b: &buf, be };
    let h = if size == 348 {
        header_v1(&f)?
    } else {
        header_v2(&f)?
    };
    validate(&h)?;
    Ok(h)
}

fn header_v1(f: &Fields) -> Result<NiftiHeader> {
    match &f.b[344..348] {
        b"n+1\0" => {}
        b"ni1\0" => return Err(ImagingError::Unsupported {
            detail:
                "a NIfTI header (.hdr) without its image file (.img); upload the single-file .nii"
                    .into(),
        }),
        _ => return Err(ImagingError::NotRecognised),
    }
    let ndim = f.i16(40);
    let dims = dims_from(ndim as i64, |i| f.i16(40 + 2 * i) as i64)?;
    let mut pixdim = [0.0; 8];
    for (i, p) in pixdim.iter_mut().enumerate() {
        *p = f.f32(76 + 4 * i);
    }
    let vox = f.f32(108);
    let mut srow = [[0.0; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = f.f32(280 + 16 * r + 4 * c);
        }
    }
    Ok(NiftiHeader {
        version: 1,
        big_endian: f.be,
        dims,
        pixdim,
        datatype: f.i16(70),
        bitpix: f.i16(72),
        // A single-file NIfTI-1 keeps data at 352 at the earliest; nibabel
        // reads a smaller vox_offset as 352 too.
        vox_offset: if vox.is_finite() && vox >= 352.0 {
            vox as u64
        } else {
            352
        },
        scl_slope: f.f32(112),
        scl_inter: f.f32(116),
        qform_code: f.i16(252) as i32,
        sform_code: f.i16(254) as i32,
        quatern: [f.f32(256), f.f32(260), f.f32(264)],
        qoffset: [f.f32(268), f.f32(272), f.f32(276)],
        srow,
        xyzt_units: f.b[123],
        descrip: f.text(148, 80),
    })
}

fn header_v2(f: &Fields) -> Result<NiftiHeader> {
    match &f.b[4..12] {
        b"n+2\0\r\n\x1a\n" => {}
        b"ni2\0\r\n\x1a\n" => {
            return Err(ImagingError::Unsupported {
                detail: "a NIfTI-2 header without its image file; upload the single-file .nii"
                    .into(),
            })
        }
        _ => return Err(ImagingError::NotRecognised),
    }
    let dims = dims_from(f.i64(16), |i| f.i64(16 + 8 * i))?;
    let mut pixdim = [0.0; 8];
    for (i, p) in pixdim.iter_mut().enumerate() {
        *p = f.f64(104 + 8 * i);
    }
    let mut srow = [[0.0; 4]; 3];
    for (r, row) in srow.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = f.f64(400 + 32 * r + 8 * c);
        }
    }
    let vox = f.i64(168);
    Ok(NiftiHeader {
        version: 2,
        big_endian: f.be,
        dims,
        pixdim,
        datatype: f.i16(12),
        bitpix: f.i16(14),
        vox_offset: if vox >= 544 { vox as u64 } else { 544 },
        scl_slope: f.f64(176),
        scl_inter: f.f64(184),
        qform_code: f.i32(344),
        sform_code: f.i32(348),
        quatern: [f.f64(352), f.f64(360), f.f64(368)],
        qoffset: [f.f64(376), f.f64(384), f.f64(392)],
        srow,
        xyzt_units: f.i32(500) as u8,
        descrip: f.text(240, 80),
    })
}

fn dims_from(ndim: i64, dim: impl Fn(usize) -> i64) -> Result<Vec<u64>> {
    if !(1..=7).contains(&ndim) {
        return Err(corrupt("number of dimensions"));
    }
    (1..=ndim as usize)
        .map(|i| match dim(i) {
            d if d >= 1 => Ok(d as u64),
            _ => Err(corrupt("a dimension is zero or negative")),
        })
        .collect()
}

fn validate(h: &NiftiHeader) -> Result<()> {
    let expected_bits = match h.datatype {
        2 | 256 => 8,
        4 | 512 => 16,
        8 | 768 | 16 => 32,
        64 | 1024 | 1280 => 64,
        128 => 24,
        2304 => 32,
        32 | 1792 | 2048 => {
            return Err(ImagingError::Unsupported {
                detail: "complex-valued NIfTI data".into(),
            })
        }
        other => {
            return Err(ImagingError::Unsupported {
                detail: format!("NIfTI datatype {other}"),
            })
        }
    };
    if h.bitpix != expected_bits {
        return Err(corrupt("bitpix does not match the datatype"));
    }
    Ok(())
}

/// nibabel's `quaternion_to_affine` as used by `Nifti1Header.get_qform`.
fn qform_affine(h: &NiftiHeader) -> [[f64; 4]; 4] {
    let [b, c, d] = h.quatern;
    let w2 = 1.0 - (b * b + c * c + d * d);
    let a = if w2 < 0.0 { 0.0 } else { w2.sqrt() };
    let r = [
        [
            a * a + b * b - c * c - d * d,
            2.0 * (b * c - a * d),
            2.0 * (b * d + a * c),
        ],
        [
            2.0 * (b * c + a * d),
            a * a + c * c - b * b - d * d,
            2.0 * (c * d - a * b),
        ],
        [
            2.0 * (b * d - a * c),
            2.0 * (c * d + a * b),
            a * a + d * d - c * c - b * b,
        ],
    ];
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let zooms = [h.pixdim[1], h.pixdim[2], h.pixdim[3] * qfac];
    let mut m = [[0.0; 4]; 4];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = r[i][j] * zooms[j];
        }
        m[i][3] = h.qoffset[i];
    }
    m[3][3] = 1.0;
    m
}

/// nibabel's `shape_zoom_affine(shape, zooms, x_flip=True)`: the affine of
/// a file without qform or sform, volume centre at the origin.
fn base_affine(shape: [usize; 3], zooms: [f64; 3]) -> [[f64; 4]; 4] {
    let z = [-zooms[0], zooms[1], zooms[2]];
    let mut m = [[0.0; 4]; 4];
    for i in 0..3 {
        m[i][i] = z[i];
        m[i][3] = -((shape[i] as f64 - 1.0) / 2.0) * z[i];
    }
    m[3][3] = 1.0;
    m
}
