//! The evidence index as the server uses it: opened once per process, the
//! bundled guideline corpus ingested on first use (and again when the
//! bundle changes), and a lock file so two processes never write one
//! embedded shard. Several worker processes share a Qdrant server instead
//! (`MEDVISION_QDRANT_URL`); DESIGN.md, "embedded default, distributed when
//! outgrown".

use crate::settings::Settings;
use evidence::{Evidence, EvidenceConfig};
use std::fs::File;
use std::path::{Path, PathBuf};

/// An open index, with the lock that makes it this process's.
pub struct Knowledge {
    pub evidence: Evidence,
    pub backend: &'static str,
    _lock: Option<File>,
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knowledge")
            .field("backend", &self.backend)
            .finish()
    }
}

/// Where the index is and how to reach it.
#[derive(Clone, Debug)]
pub struct KnowledgeConfig {
    pub dir: PathBuf,
    pub evidence: EvidenceConfig,
}

impl KnowledgeConfig {
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            dir: s.evidence_dir(),
            evidence: EvidenceConfig::from_env(),
        }
    }
}

const MARKER: &str = "starter-guidelines.sha256";

impl Knowledge {
    /// Opens the index (blocking: loads the embedding model and may embed
    /// the starter guidelines, seconds on a CPU). The error is a sentence
    /// for the case page and the log, never a path to a secret.
    pub fn open(cfg: &KnowledgeConfig) -> Result<Self, String> {
        std::fs::create_dir_all(&cfg.dir)
            .map_err(|e| format!("the evidence folder could not be created: {e}"))?;
        let lock = match &cfg.evidence.qdrant_url {
            Some(_) => None,
            None => Some(lock(&cfg.dir)?),
        };
        let evidence = Evidence::open(&cfg.dir, &cfg.evidence).map_err(|e| e.to_string())?;
        let backend = evidence.store().backend();
        let k = Self {
            evidence,
            backend,
            _lock: lock,
        };
        k.ensure_starter(&cfg.dir)?;
        Ok(k)
    }

    /// Ingests the bundled guidelines unless this index already holds this
    /// version of them. Re-ingesting replaces documents by id, so a run
    /// killed half-way is finished by the next.
    fn ensure_starter(&self, dir: &Path) -> Result<(), String> {
        let want = evidence::guidelines::starter_fingerprint();
        let marker = dir.join(MARKER);
        if std::fs::read_to_string(&marker).is_ok_and(|h| h.trim() == want) {
            return Ok(());
        }
        let set = evidence::guidelines::starter().map_err(|e| e.to_string())?;
        let n = self
            .evidence
            .ingest_guideline_set(&set)
            .map_err(|e| format!("the starter guidelines could not be indexed: {e}"))?;
        tracing::info!(
            documents = n.documents,
            chunks = n.chunks,
            "evidence: starter guidelines indexed"
        );
        std::fs::write(&marker, want)
            .map_err(|e| format!("the evidence folder is not writable: {e}"))?;
        Ok(())
    }
}

fn lock(dir: &Path) -> Result<File, String> {
    let path = dir.join("LOCK");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("the evidence lock file could not be opened: {e}"))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(
            "the embedded evidence index is in use by another MedVision process; \
             several processes need a Qdrant server (MEDVISION_QDRANT_URL)"
                .into(),
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("the evidence index could not be locked: {e}"))
        }
    }
}
