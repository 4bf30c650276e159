//! Expands what was uploaded (single files, folders, ZIP archives) into a flat
//! list of files on disk, under [`Limits`].
//!
//! Each ZIP entry is inflated on its own into a temporary file; the bytes are
//! counted as they come out of the decompressor, so a header that lies about
//! sizes cannot get past the per-file, per-upload and ratio limits, and memory
//! stays at one copy buffer whatever the archive holds.
//!
//! A ZIP inside a ZIP is expanded once (exports sometimes wrap one archive per
//! series); anything deeper is refused. DICOMDIR files are passed through like
//! any other file: [`crate::ingest`] recognises them by their SOP class and
//! skips them, since the images they index are in the same archive or folder.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::limits::{human_bytes, Limits};
use crate::sniff::{sniff, FileKind, SNIFF_LEN};
use crate::{ImagingError, Result, Source};

/// One file to ingest.
#[derive(Debug, Clone)]
pub struct Entry {
    /// How the uploader knows it: `"study.zip/DICOM/IMG0012.dcm"`.
    pub name: String,
    /// Where its bytes are now: the uploaded file itself or an extracted copy
    /// in the scratch folder.
    pub path: PathBuf,
    pub bytes: u64,
}

/// The expanded upload: the files to ingest, and the ones refused while
/// expanding (unsafe paths, links, empty files, bombs) with their reason.
#[derive(Debug)]
pub struct Expansion {
    pub entries: Vec<Entry>,
    pub refused: Vec<(String, ImagingError)>,
}

/// Expands `sources` into `scratch` (which the caller creates and deletes).
///
/// Errors only for limits on the whole upload (total size, total files,
/// total inflated size) or when `scratch` cannot be written; a bad entry is
/// listed in [`Expansion::refused`] instead.
pub fn expand(sources: &[Source], limits: &Limits, scratch: &Path) -> Result<Expansion> {
    let mut ex = Expander {
        limits,
        scratch,
        out: Expansion {
            entries: Vec::new(),
            refused: Vec::new(),
        },
        uncompressed: 0,
        next_tmp: 0,
    };
    let mut upload_bytes = 0u64;
    for src in sources {
        let meta = std::fs::symlink_metadata(&src.path)?;
        if meta.is_dir() {
            ex.folder(&src.path, &src.name)?;
            continue;
        }
        upload_bytes = upload_bytes.saturating_add(meta.len());
        if upload_bytes > limits.max_upload_bytes {
            return Err(ImagingError::TooLarge {
                what: "the upload".into(),
                limit: human_bytes(limits.max_upload_bytes),
            });
        }
        ex.file(&src.path, &src.name, meta, 0)?;
    }
    Ok(ex.out)
}

struct Expander<'a> {
    limits: &'a Limits,
    scratch: &'a Path,
    out: Expansion,
    /// Inflated bytes so far, over every archive of the upload.
    uncompressed: u64,
    next_tmp: u64,
}

impl Expander<'_> {
    fn file(&mut self, path: &Path, name: &str, meta: std::fs::Metadata, depth: u8) -> Result<()> {
        if meta.file_type().is_symlink() {
            self.refuse(name, ImagingError::Symlink { entry: name.into() });
            return Ok(());
        }
        if meta.len() == 0 {
            self.refuse(name, ImagingError::Empty);
            return Ok(());
        }
        if meta.len() > self.limits.max_file_bytes {
            let limit = human_bytes(self.limits.max_file_bytes);
            self.refuse(
                name,
                ImagingError::TooLarge {
                    what: "the file".into(),
                    limit,
                },
            );
            return Ok(());
        }
        if head_kind(path)? == FileKind::Zip {
            if depth >= 2 {
                let detail = "an archive inside an archive inside an archive".into();
                self.refuse(name, ImagingError::Unsupported { detail });
                return Ok(());
            }
            return self.zip(path, name, depth + 1);
        }
        self.push(Entry {
            name: name.into(),
            path: path.to_path_buf(),
            bytes: meta.len(),
        })
    }

    fn push(&mut self, entry: Entry) -> Result<()> {
        if self.out.entries.len() as u64 >= self.limits.max_files {
            return Err(ImagingError::TooManyFiles {
                max: self.limits.max_files,
            });
        }
        self.out.entries.push(entry);
        Ok(())
    }

    fn refuse(&mut self, name: &str, e: ImagingError) {
        self.out.refused.push((name.to_string(), e));
    }

    /// Walks a folder without following links: a link could point anywhere
    /// on the server.
    fn folder(&mut self, dir: &Path, name: &str) -> Result<()> {
        let mut children: Vec<_> = std::fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let child_name = format!("{name}/{}", child.file_name().to_string_lossy());
            let meta = std::fs::symlink_metadata(child.path())?;
            if meta.is_dir() {
                self.folder(&child.path(), &child_name)?;
            } else {
                self.file(&child.path(), &child_name, meta, 0)?;
            }
        }
        Ok(())
    }

    fn zip(&mut self, path: &Path, name: &str, depth: u8) -> Result<()> {
        let reader = std::io::BufReader::new(File::open(path)?);
        let mut archive = match zip::ZipArchive::new(reader) {
            Ok(a) => a,
            Err(_) => {
                let detail = "the ZIP archive cannot be read".into();
                self.refuse(name, ImagingError::Corrupt { detail });
                return Ok(());
            }
        };
        // Entries of this archive already extracted: dropped again if the
        // archive turns out to be a bomb, so none of it is ingested.
        let first_entry = self.out.entries.len();
        let first_refusal = self.out.refused.len();
        for i in 0..archive.len() {
            match self.zip_entry(&mut archive, i, name, depth)? {
                EntryOutcome::Done => {}
                EntryOutcome::Bomb(e) => {
                    for dropped in self.out.entries.drain(first_entry..) {
                        if dropped.path.starts_with(self.scratch) {
                            let _ = std::fs::remove_file(&dropped.path);
                        }
                    }
                    self.out.refused.truncate(first_refusal);
                    self.refuse(name, e);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn zip_entry<R: Read + Seek>(
        &mut self,
        archive: &mut zip::ZipArchive<R>,
        index: usize,
        archive_name: &str,
        depth: u8,
    ) -> Result<EntryOutcome> {
        let mut entry = match archive.by_index(index) {
            Ok(e) => e,
            Err(zip::result::ZipError::UnsupportedArchive(_)) => {
                let detail = format!(
                    "entry {} of the archive is encrypted or uses an unsupported compression",
                    index + 1
                );
                self.refuse(archive_name, ImagingError::Unsupported { detail });
                return Ok(EntryOutcome::Done);
            }
            Err(_) => {
                let detail = format!("entry {} of the archive cannot be read", index + 1);
                return Ok(EntryOutcome::Bomb(ImagingError::Corrupt { detail }));
            }
        };
        let raw_name = entry.name().to_string();
        let display = format!("{archive_name}/{raw_name}");
        if !is_safe_entry_name(&raw_name) {
            self.refuse(&display, ImagingError::UnsafePath { entry: raw_name });
            return Ok(EntryOutcome::Done);
        }
        let is_link =
            entry.is_symlink() || entry.unix_mode().is_some_and(|m| m & 0o170000 == 0o120000);
        if is_link {
            self.refuse(&display, ImagingError::Symlink { entry: raw_name });
            return Ok(EntryOutcome::Done);
        }
        if entry.is_dir() {
            return Ok(EntryOutcome::Done);
        }
        // An upper bound of what the decompressor may consume: zip reads at
        // most this many bytes of the archive for the entry.
        let compressed = entry.compressed_size().max(1);
        let tmp = self.scratch.join(format!("entry-{}", self.next_tmp));
        self.next_tmp += 1;
        let written = match self.copy_limited(&mut entry, &tmp, compressed) {
            Ok(n) => n,
            Err(Copy::Bomb(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Ok(EntryOutcome::Bomb(e));
            }
            Err(Copy::Entry(e)) => {
                let _ = std::fs::remove_file(&tmp);
                self.refuse(&display, e);
                return Ok(EntryOutcome::Done);
            }
            Err(Copy::Upload(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        drop(entry);
        let meta = std::fs::symlink_metadata(&tmp)?;
        debug_assert_eq!(meta.len(), written);
        self.file(&tmp, &display, meta, depth)?;
        Ok(EntryOutcome::Done)
    }

    /// Inflates `from` into `to`, counting real bytes against the limits.
    fn copy_limited(
        &mut self,
        from: &mut impl Read,
        to: &Path,
        compressed: u64,
    ) -> std::result::Result<u64, Copy> {
        let file = File::create(to).map_err(|_| Copy::Upload(ImagingError::Io))?;
        let mut out = BufWriter::new(file);
        let mut buf = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    let detail = "an entry of the archive is damaged".into();
                    return Err(Copy::Entry(ImagingError::Corrupt { detail }));
                }
            };
            written += n as u64;
            self.uncompressed += n as u64;
            if self.uncompressed > self.limits.max_uncompressed_bytes {
                return Err(Copy::Upload(ImagingError::TooLarge {
                    what: "the upload once decompressed".into(),
                    limit: human_bytes(self.limits.max_uncompressed_bytes),
                }));
            }
            if written > self.limits.ratio_grace_bytes
                && written / compressed > self.limits.max_ratio
            {
                return Err(Copy::Bomb(ImagingError::ArchiveBomb {
                    max_ratio: self.limits.max_ratio,
                }));
            }
            if written > self.limits.max_file_bytes {
                let limit = human_bytes(self.limits.max_file_bytes);
                return Err(Copy::Entry(ImagingError::TooLarge {
                    what: "the file".into(),
                    limit,
                }));
            }
            out.write_all(&buf[..n])
                .map_err(|_| Copy::Upload(ImagingError::Io))?;
        }
        out.flush().map_err(|_| Copy::Upload(ImagingError::Io))?;
        Ok(written)
    }
}

enum EntryOutcome {
    Done,
    /// The whole archive is refused (a bomb, or its directory is damaged).
    Bomb(ImagingError),
}

enum Copy {
    Entry(ImagingError),
    Bomb(ImagingError),
    Upload(ImagingError),
}

/// The first bytes of a file, classified.
pub fn head_kind(path: &Path) -> Result<FileKind> {
    let mut head = Vec::with_capacity(SNIFF_LEN);
    File::open(path)?
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(sniff(&head))
}

/// Refuses what could land outside the extraction folder on any OS
/// (zip-slip): parent components, absolute paths, drive letters, UNC paths,
/// and NUL bytes.
pub fn is_safe_entry_name(name: &str) -> bool {
    if name.is_empty() || name.contains('\0') {
        return false;
    }
    let unified = name.replace('\\', "/");
    if unified.starts_with('/') {
        return false;
    }
    let bytes = unified.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return false;
    }
    !unified.split('/').any(|part| part == "..")
}

#[cfg(test)]
mod tests {
    use super::is_safe_entry_name;

    #[test]
    fn entry_names() {
        assert!(is_safe_entry_name("DICOM/IMG0001"));
        assert!(is_safe_entry_name("a..b/c"));
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "C:\\x",
            "c:/x",
            "a\\..\\b",
            "\\\\server\\x",
            "",
        ] {
            assert!(!is_safe_entry_name(bad), "{bad}");
        }
    }
}
