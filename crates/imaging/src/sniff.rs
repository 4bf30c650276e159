//! What a file is, by its first bytes. The name and extension a file arrives
//! with say nothing reliable (a PNG renamed `.dcm`, a ZIP without `.zip`), so
//! every decision in [`crate::ingest`] starts here.

/// How many leading bytes [`sniff`] wants: the 128-byte DICOM preamble, the
/// `DICM` magic and the first dataset element after it; also covers the
/// 540-byte NIfTI-2 header.
pub const SNIFF_LEN: usize = 544;

/// The kinds of file the ingest knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// DICOM Part 10: 128-byte preamble then `DICM`.
    Dicom,
    /// A bare DICOM dataset without preamble or meta header, starting with an
    /// element of group 0008 (how some old exports and DICOMDIR-referenced
    /// files are written).
    DicomNoMeta,
    Nifti1,
    Nifti2,
    /// gzip: the caller inflates the head and sniffs again (`.nii.gz`).
    Gzip,
    Zip,
    Png,
    Jpeg,
    Tiff,
    Bmp,
    Unknown,
}

/// Classifies `head` (the first [`SNIFF_LEN`] bytes or fewer) by magic bytes.
pub fn sniff(head: &[u8]) -> FileKind {
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return FileKind::Dicom;
    }
    if let Some(kind) = nifti_kind(head) {
        return kind;
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return FileKind::Gzip;
    }
    // Local file header, or the end-of-central-directory of an empty archive.
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return FileKind::Zip;
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return FileKind::Png;
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return FileKind::Jpeg;
    }
    if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        return FileKind::Tiff;
    }
    if head.starts_with(b"BM") && head.len() >= 26 {
        return FileKind::Bmp;
    }
    if looks_like_bare_dataset(head) {
        return FileKind::DicomNoMeta;
    }
    FileKind::Unknown
}

/// NIfTI-1 stores `sizeof_hdr` = 348 and magic `n+1\0`/`ni1\0` at 344;
/// NIfTI-2 stores 540 and `n+2\0`/`ni2\0` + `\r\n\x1a\n` at 4. Either
/// endianness: the writer's byte order decides how `sizeof_hdr` reads.
fn nifti_kind(head: &[u8]) -> Option<FileKind> {
    let first = head.get(0..4)?;
    let le = i32::from_le_bytes([first[0], first[1], first[2], first[3]]);
    let be = i32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    if le == 348 || be == 348 {
        let magic = head.get(344..348)?;
        if magic == b"n+1\0" || magic == b"ni1\0" {
            return Some(FileKind::Nifti1);
        }
    }
    if le == 540 || be == 540 {
        let magic = head.get(4..12)?;
        if magic == b"n+2\0\r\n\x1a\n" || magic == b"ni2\0\r\n\x1a\n" {
            return Some(FileKind::Nifti2);
        }
    }
    None
}

/// A raw dataset begins with a low-numbered element of group 0008 (Specific
/// Character Set, Image Type, SOP Class UID...), little endian, with either an
/// explicit two-letter VR or an implicit 4-byte length that fits the file.
fn looks_like_bare_dataset(head: &[u8]) -> bool {
    let Some(h) = head.get(0..8) else {
        return false;
    };
    let explicit_vr = h[4].is_ascii_uppercase() && h[5].is_ascii_uppercase();
    let little = (
        u16::from_le_bytes([h[0], h[1]]),
        u16::from_le_bytes([h[2], h[3]]),
    );
    if little.0 == 0x0008 && little.1 <= 0x0100 {
        let implicit_len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        return explicit_vr || implicit_len < 1024;
    }
    // Explicit VR big endian (retired, but old archives hold it).
    let big = (
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]),
    );
    big.0 == 0x0008 && big.1 <= 0x0100 && explicit_vr
}

/// A bare dataset in explicit VR big endian: its first tag reads as group
/// 0008 only in big-endian byte order.
pub fn bare_dataset_is_big_endian(head: &[u8]) -> bool {
    head.len() >= 2 && head[0] == 0x00 && head[1] == 0x08
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dicom_needs_the_magic_at_128() {
        let mut f = vec![0u8; 200];
        f[128..132].copy_from_slice(b"DICM");
        assert_eq!(sniff(&f), FileKind::Dicom);
        f[128] = b'X';
        assert_eq!(sniff(&f), FileKind::Unknown);
    }

    #[test]
    fn nifti_either_endianness() {
        let mut f = vec![0u8; 352];
        f[0..4].copy_from_slice(&348i32.to_be_bytes());
        f[344..348].copy_from_slice(b"n+1\0");
        assert_eq!(sniff(&f), FileKind::Nifti1);
        let mut g = vec![0u8; 544];
        g[0..4].copy_from_slice(&540i32.to_le_bytes());
        g[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
        assert_eq!(sniff(&g), FileKind::Nifti2);
    }

    #[test]
    fn short_and_garbage_inputs_are_unknown() {
        assert_eq!(sniff(b""), FileKind::Unknown);
        assert_eq!(sniff(b"hello world"), FileKind::Unknown);
    }

    #[test]
    fn bare_dataset_explicit_and_implicit() {
        assert_eq!(
            sniff(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100"),
            FileKind::DicomNoMeta
        );
        assert_eq!(
            sniff(b"\x08\x00\x16\x00\x1a\x00\x00\x001.2.840"),
            FileKind::DicomNoMeta
        );
    }
}
