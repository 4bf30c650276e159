//! Received instances on disk, one folder per study, until the study has
//! been quiet long enough to hand over.
//!
//! The layout is the state, so a crash loses nothing the sender was told
//! was stored: an instance is acknowledged only after it has been renamed
//! into its study folder, and a study being handed over is renamed first
//! (`<study>.claimed.<n>`), so instances arriving meanwhile start a new
//! folder and a handover interrupted by a crash is found again at start.
//!
//! ```text
//! <root>/<tenant>/.incoming/<n>.part      being written
//! <root>/<tenant>/<study-key>/<sop-key>.dcm
//! <root>/<tenant>/<study-key>/origin      calling AE title
//! <root>/<tenant>/<study-key>.claimed.<n>/ being handed over
//! ```
//! Keys are hashes of the UIDs: folder names carry no identifiers.

use crate::{dimse::status, InteropError, Result, IMPLEMENTATION_CLASS_UID};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, OpenFileOptions};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const INCOMING: &str = ".incoming";
const CLAIMED: &str = ".claimed.";

pub struct Spool {
    root: PathBuf,
    seq: AtomicU64,
}

/// Why an instance was not spooled, as the C-STORE status to answer.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

/// A study handed over: every instance file and where it came from.
#[derive(Debug)]
pub struct Claimed {
    pub tenant: String,
    /// Hash of the Study Instance UID, stable across claims of one study.
    pub study_key: String,
    pub origin: String,
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
}

impl Claimed {
    /// The study is safely elsewhere: forget it.
    pub fn finish(self) -> std::io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }
}

/// The folder and database key of a study: a hash of its Study Instance UID.
pub fn study_key(uid: &str) -> String {
    key(uid)
}

fn key(uid: &str) -> String {
    hex::encode(&Sha256::digest(uid.trim_end_matches(['\0', ' ']).as_bytes())[..16])
}

/// Tenant names become folder names: only what cannot climb out.
pub fn valid_tenant(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn newest(dir: &Path) -> std::io::Result<SystemTime> {
    std::fs::metadata(dir)?.modified()
}

impl Spool {
    /// Opens (creating) the spool; partial files of a crashed process are
    /// dropped: their senders never got a success and will send again.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        for t in std::fs::read_dir(&root)? {
            let inc = t?.path().join(INCOMING);
            if inc.is_dir() {
                std::fs::remove_dir_all(&inc)?;
            }
        }
        Ok(Self {
            root,
            seq: AtomicU64::new(0),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn unique(&self) -> String {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!("{t}-{}-{n}", std::process::id())
    }

    /// Writes one received data set (in the negotiated transfer syntax) as
    /// a Part 10 file in its study folder. Checks what the acknowledgement
    /// promises: a data set that parses, of the announced SOP class and
    /// instance, with a Study Instance UID.
    pub fn store(
        &self,
        tenant: &str,
        origin: &str,
        transfer_syntax: &str,
        sop_class: &str,
        sop_instance: &str,
        dataset: &[u8],
    ) -> Result<(), Refusal> {
        let io = |e: std::io::Error| Refusal {
            status: status::OUT_OF_RESOURCES,
            reason: format!("spool: {e}"),
        };
        if !valid_tenant(tenant) {
            return Err(Refusal {
                status: status::CANNOT_UNDERSTAND,
                reason: "invalid tenant".into(),
            });
        }
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_instance)
            .transfer_syntax(transfer_syntax)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(crate::IMPLEMENTATION_VERSION_NAME)
            .build()
            .map_err(|e| Refusal {
                status: status::CANNOT_UNDERSTAND,
                reason: format!("file meta: {e}"),
            })?;
        let incoming = self.root.join(tenant).join(INCOMING);
        std::fs::create_dir_all(&incoming).map_err(io)?;
        let part = incoming.join(format!("{}.part", self.unique()));
        let written = (|| -> std::io::Result<()> {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&part)?);
            f.write_all(&[0u8; 128])?;
            f.write_all(b"DICM")?;
            meta.write(&mut f).map_err(std::io::Error::other)?;
            f.write_all(dataset)?;
            f.into_inner().map_err(|e| e.into_error())?.sync_data()
        })();
        let checked = written.map_err(io).and_then(|()| {
            let obj = OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .open_file(&part)
                .map_err(|e| Refusal {
                    status: status::CANNOT_UNDERSTAND,
                    reason: format!("unreadable data set: {e}"),
                })?;
            let text = |tag| {
                obj.element(tag)
                    .ok()
                    .and_then(|e| e.to_str().ok())
                    .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
            };
            let mismatch = |what: &str| Refusal {
                status: status::DATASET_MISMATCH,
                reason: format!("the data set's {what} is not the one announced"),
            };
            if text(tags::SOP_CLASS_UID).as_deref() != Some(sop_class.trim_end_matches('\0')) {
                return Err(mismatch("SOP Class UID"));
            }
            if text(tags::SOP_INSTANCE_UID).as_deref() != Some(sop_instance.trim_end_matches('\0'))
            {
                return Err(mismatch("SOP Instance UID"));
            }
            text(tags::STUDY_INSTANCE_UID)
                .filter(|s| !s.is_empty())
                .ok_or(Refusal {
                    status: status::CANNOT_UNDERSTAND,
                    reason: "no Study Instance UID".into(),
                })
        });
        let study = match checked {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(e);
            }
        };
        let dir = self.root.join(tenant).join(key(&study));
        let target = dir.join(format!("{}.dcm", key(sop_instance)));
        // A handover may rename the study folder between creating it and
        // the rename into it: then the instance starts the next folder.
        let mut last = None;
        for _ in 0..3 {
            let step = std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    let o = dir.join("origin");
                    if o.exists() {
                        Ok(())
                    } else {
                        std::fs::write(o, origin)
                    }
                })
                .and_then(|()| std::fs::rename(&part, &target));
            match step {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        let _ = std::fs::remove_file(&part);
        Err(io(
            last.unwrap_or_else(|| std::io::Error::other("rename failed"))
        ))
    }

    fn tenants(&self) -> std::io::Result<Vec<(String, PathBuf)>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.root)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() && valid_tenant(&name) {
                out.push((name, e.path()));
            }
        }
        Ok(out)
    }

    fn claimed(&self, tenant: &str, dir: PathBuf) -> std::io::Result<Claimed> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let study_key = name.split(CLAIMED).next().unwrap_or_default().to_owned();
        let origin = std::fs::read_to_string(dir.join("origin")).unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
            .collect();
        files.sort();
        Ok(Claimed {
            tenant: tenant.to_owned(),
            study_key,
            origin,
            dir,
            files,
        })
    }

    /// Claims every study that has received nothing for `quiet`.
    pub fn claim_quiet(&self, quiet: Duration) -> std::io::Result<Vec<Claimed>> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for (tenant, tdir) in self.tenants()? {
            for e in std::fs::read_dir(&tdir)? {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.contains(CLAIMED) || !e.file_type()?.is_dir() {
                    continue;
                }
                let age = now.duration_since(newest(&e.path())?).unwrap_or_default();
                if age < quiet {
                    continue;
                }
                let to = tdir.join(format!("{name}{CLAIMED}{}", self.unique()));
                std::fs::rename(e.path(), &to)?;
                out.push(self.claimed(&tenant, to)?);
            }
        }
        Ok(out)
    }

    /// Studies whose handover a crash interrupted.
    pub fn abandoned(&self) -> std::io::Result<Vec<Claimed>> {
        let mut out = Vec::new();
        for (tenant, tdir) in self.tenants()? {
            for e in std::fs::read_dir(&tdir)? {
                let e = e?;
                if e.file_name().to_string_lossy().contains(CLAIMED) && e.file_type()?.is_dir() {
                    out.push(self.claimed(&tenant, e.path())?);
                }
            }
        }
        Ok(out)
    }
}

impl From<Refusal> for InteropError {
    fn from(r: Refusal) -> Self {
        InteropError::Invalid(r.reason)
    }
}

/// What a received study says about itself, read from one instance before
/// de-identification: enough to open a case. Identifiers never leave this
/// struct except through a keyed hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StudyFacts {
    pub modality: String,
    pub body_part: String,
    /// `M`, `F`, `O` or empty.
    pub sex: String,
    pub age_years: Option<u16>,
    pub patient_id: String,
    pub study_description: String,
    pub study_uid: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
}

impl StudyFacts {
    pub fn read(path: &Path) -> Result<Self> {
        let obj = OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(path)
            .map_err(|e| InteropError::Invalid(format!("unreadable instance: {e}")))?;
        let text = |tag| {
            obj.element(tag)
                .ok()
                .and_then(|e| e.to_str().ok())
                .map(|s| s.trim_matches(['\0', ' ']).to_owned())
                .unwrap_or_default()
        };
        Ok(Self {
            modality: text(tags::MODALITY),
            body_part: text(tags::BODY_PART_EXAMINED),
            sex: text(tags::PATIENT_SEX),
            age_years: parse_age(&text(tags::PATIENT_AGE)),
            patient_id: text(tags::PATIENT_ID),
            study_description: text(tags::STUDY_DESCRIPTION),
            study_uid: text(tags::STUDY_INSTANCE_UID),
            sop_class_uid: text(tags::SOP_CLASS_UID),
            sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        })
    }
}

/// DICOM AS ("045Y", "006M", "003W", "010D") in whole years.
pub fn parse_age(v: &str) -> Option<u16> {
    if v.len() != 4 || !v.is_ascii() {
        return None;
    }
    let n: u16 = v[..3].parse().ok()?;
    match &v[3..] {
        "Y" => Some(n),
        "M" => Some(n / 12),
        "W" => Some(n / 52),
        "D" => Some(n / 365),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_in_every_unit_and_garbage() {
        assert_eq!(parse_age("045Y"), Some(45));
        assert_eq!(parse_age("018M"), Some(1));
        assert_eq!(parse_age("003W"), Some(0));
        assert_eq!(parse_age("400D"), Some(1));
        assert_eq!(parse_age("45Y"), None);
        assert_eq!(parse_age("0x5Y"), None);
        assert_eq!(parse_age("045Q"), None);
        assert_eq!(parse_age("0\u{e9}Y"), None);
    }

    #[test]
    fn tenants_cannot_climb_out_of_the_spool() {
        assert!(valid_tenant("0b9c6f3e-1d2a-4f4b-9c1e-5d2f7a8b9c0d"));
        assert!(!valid_tenant("../etc"));
        assert!(!valid_tenant(""));
        assert!(!valid_tenant("a/b"));
    }
}
