//! Content-addressed storage of image files: a local folder by default, any
//! S3-compatible bucket when `MEDVISION_STORAGE_URL` names one. Keys are
//! `orgs/{org}/{sha256[..2]}/{sha256}`, so one organisation's data is one
//! prefix (export, deletion, bucket policies) and a file stored twice is
//! stored once.
//!
//! With `encryption_key` set, every object is sealed (AES-256-GCM envelope,
//! [`crate::seal`]) on its way in and opened on its way out; objects stored
//! before encryption was turned on are read as they are until
//! `medvision blobs rewrap` seals them.

use crate::seal::{self, Keys, SealError};
use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("storage: {0}")]
    Store(#[from] object_store::Error),
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage configuration: {0}")]
    Config(String),
    #[error("storage encryption: {0}")]
    Seal(#[from] SealError),
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Where the store lives, for logs (never credentials).
    pub describe: String,
    keys: Option<Arc<Keys>>,
}

/// What `rewrap` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewrapped {
    pub objects: usize,
    /// Stored in the clear before encryption was on; sealed now.
    pub sealed: usize,
    /// Wrapped with a previous key; re-wrapped with the current one.
    pub rewrapped: usize,
}

impl Blobs {
    /// `url` `None`: a folder under the data directory. `s3://bucket/prefix`:
    /// credentials and endpoint from the usual `AWS_*` variables.
    pub fn open(data_dir: &Path, url: Option<&str>) -> Result<Self, BlobError> {
        match url.filter(|u| !u.is_empty()) {
            None => {
                let dir = data_dir.join("blobs");
                std::fs::create_dir_all(&dir)?;
                Ok(Self {
                    store: Arc::new(LocalFileSystem::new_with_prefix(&dir)?),
                    describe: dir.display().to_string(),
                    keys: None,
                })
            }
            Some(u) if u.starts_with("s3://") => {
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(u)
                    .build()?;
                Ok(Self {
                    store: Arc::new(store),
                    describe: u.split('?').next().unwrap_or_default().to_owned(),
                    keys: None,
                })
            }
            Some(u) if u.starts_with("file://") => {
                let dir = Path::new(u.trim_start_matches("file://"));
                std::fs::create_dir_all(dir)?;
                Ok(Self {
                    store: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
                    describe: dir.display().to_string(),
                    keys: None,
                })
            }
            Some(_) => Err(BlobError::Config(
                "MEDVISION_STORAGE_URL must start with s3:// or file://".into(),
            )),
        }
    }

    /// The store the settings name, sealing objects when a key is set.
    pub fn from_settings(settings: &crate::settings::Settings) -> Result<Self, BlobError> {
        let mut b = Self::open(&settings.data_dir, settings.storage_url.as_deref())?;
        b.keys = settings.blob_keys()?.map(Arc::new);
        Ok(b)
    }

    /// Whether objects are sealed on the way in.
    pub fn encrypted(&self) -> bool {
        self.keys.is_some()
    }

    fn key(org: Uuid, sha256: &str) -> Key {
        let shard = sha256.get(..2).unwrap_or("00");
        Key::from(format!("orgs/{org}/{shard}/{sha256}"))
    }

    /// Stores a file under its hash unless it is there already. Streams in
    /// parts (sealed chunk by chunk when encrypting), so a large volume
    /// never sits in memory whole.
    pub async fn put_file(&self, org: Uuid, sha256: &str, file: &Path) -> Result<(), BlobError> {
        let key = Self::key(org, sha256);
        if self.store.head(&key).await.is_ok() {
            return Ok(());
        }
        let upload = self.store.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new(upload);
        let mut f = tokio::fs::File::open(file).await?;
        let mut sealer = match &self.keys {
            Some(k) => Some(seal::Sealer::new(k, key.as_ref())?),
            None => None,
        };
        if let Some(s) = &sealer {
            writer.write(s.header());
        }
        let mut buf = vec![0u8; seal::CHUNK];
        loop {
            // Fill a whole chunk: sealed chunks must be full except the last.
            let mut n = 0;
            while n < buf.len() {
                let got = f.read(&mut buf[n..]).await?;
                if got == 0 {
                    break;
                }
                n += got;
            }
            writer.wait_for_capacity(4).await?;
            match sealer.as_mut() {
                Some(s) if n == buf.len() => writer.write(&s.chunk(&buf)?),
                Some(_) => {
                    if let Some(s) = sealer.take() {
                        writer.write(&s.last(&buf[..n])?);
                    }
                    break;
                }
                None => {
                    writer.write(&buf[..n]);
                    if n < buf.len() {
                        break;
                    }
                }
            }
        }
        writer.finish().await?;
        Ok(())
    }

    /// Stores small bytes (an artefact) under their hash unless there.
    pub async fn put_bytes(
        &self,
        org: Uuid,
        sha256: &str,
        bytes: Vec<u8>,
    ) -> Result<(), BlobError> {
        let key = Self::key(org, sha256);
        if self.store.head(&key).await.is_ok() {
            return Ok(());
        }
        let body = match &self.keys {
            Some(k) => seal::seal(k, key.as_ref(), &bytes)?,
            None => bytes,
        };
        self.store.put(&key, body.into()).await?;
        Ok(())
    }

    pub async fn get(&self, org: Uuid, sha256: &str) -> Result<bytes::Bytes, BlobError> {
        let key = Self::key(org, sha256);
        let raw = self.store.get(&key).await?.bytes().await?;
        self.unseal(&key, raw)
    }

    fn unseal(&self, key: &Key, raw: bytes::Bytes) -> Result<bytes::Bytes, BlobError> {
        if !seal::is_sealed(&raw) {
            return Ok(raw);
        }
        let keys = self.keys.as_ref().ok_or(SealError::NoKey)?;
        Ok(seal::open(keys, key.as_ref(), &raw)?.into())
    }

    /// Every object's key, for rewrap, verify and backup.
    async fn keys_in_store(&self) -> Result<Vec<Key>, BlobError> {
        let mut out = Vec::new();
        let mut list = self.store.list(Some(&Key::from("orgs")));
        while let Some(meta) = list.next().await {
            out.push(meta?.location);
        }
        Ok(out)
    }

    /// Seals every object with the current key: plaintext ones (stored
    /// before encryption was on) are encrypted, ones wrapped with a
    /// previous key get their data key re-wrapped. Safe to run again, and
    /// while the server runs (each object is replaced in one put).
    pub async fn rewrap(&self) -> Result<Rewrapped, BlobError> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| BlobError::Config("no encryption key is configured".into()))?;
        let mut done = Rewrapped::default();
        for key in self.keys_in_store().await? {
            let raw = self.store.get(&key).await?.bytes().await?;
            done.objects += 1;
            let new = if seal::is_sealed(&raw) {
                match seal::rewrap(keys, key.as_ref(), &raw)? {
                    Some(n) => {
                        done.rewrapped += 1;
                        n
                    }
                    None => continue,
                }
            } else {
                done.sealed += 1;
                seal::seal(keys, key.as_ref(), &raw)?
            };
            self.store.put(&key, new.into()).await?;
        }
        Ok(done)
    }

    /// Reads every object back, authenticating sealed ones: how many there
    /// are, and the keys of those that could not be read.
    pub async fn verify(&self) -> Result<(usize, Vec<String>), BlobError> {
        let mut bad = Vec::new();
        let keys = self.keys_in_store().await?;
        for key in &keys {
            let ok = match self.store.get(key).await {
                Ok(r) => match r.bytes().await {
                    Ok(raw) => self.unseal(key, raw).is_ok(),
                    Err(_) => false,
                },
                Err(_) => false,
            };
            if !ok {
                bad.push(key.to_string());
            }
        }
        Ok((keys.len(), bad))
    }

    /// Whether an object is stored (the backup's consistency check).
    pub async fn exists(&self, org: Uuid, sha256: &str) -> bool {
        self.store.head(&Self::key(org, sha256)).await.is_ok()
    }

    /// Copies every object, exactly as stored (sealed objects stay sealed),
    /// into `dir/<key>`; returns the keys.
    pub async fn export_to(&self, dir: &Path) -> Result<Vec<String>, BlobError> {
        let mut out = Vec::new();
        for key in self.keys_in_store().await? {
            let raw = self.store.get(&key).await?.bytes().await?;
            let path = dir.join(key.as_ref());
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&path, &raw).await?;
            out.push(key.to_string());
        }
        Ok(out)
    }

    /// Puts the objects `export_to` wrote back into this store.
    pub async fn import_from(&self, dir: &Path, keys: &[String]) -> Result<(), BlobError> {
        for k in keys {
            let raw = tokio::fs::read(dir.join(k)).await?;
            self.store.put(&Key::from(k.as_str()), raw.into()).await?;
        }
        Ok(())
    }

    /// Writes, reads back and deletes a small object: what readiness asks
    /// of the store (a read-only folder or a revoked bucket policy fails
    /// here before an upload does).
    pub async fn probe(&self) -> Result<(), BlobError> {
        let key = Key::from(format!("health/{}", Uuid::new_v4()));
        let body = Uuid::new_v4().as_bytes().to_vec();
        self.store.put(&key, body.clone().into()).await?;
        let back = self.store.get(&key).await?.bytes().await;
        let _ = self.store.delete(&key).await;
        if back?.as_ref() != body.as_slice() {
            return Err(BlobError::Config("the store returned other bytes".into()));
        }
        Ok(())
    }

    /// Copies a blob to a local file (decoders want a path).
    pub async fn get_to_file(&self, org: Uuid, sha256: &str, to: &Path) -> Result<(), BlobError> {
        let bytes = self.get(org, sha256).await?;
        tokio::fs::write(to, &bytes).await?;
        Ok(())
    }
}

/// Decoders read files, so the pipeline and the viewer keep decrypted
/// working copies and rendered images under `<data_dir>/cache`. With
/// encryption at rest those must not outlive their use: this removes files
/// older than `max_age` in `dirs`, every `every`, while the process runs.
pub async fn sweep_cache(
    dirs: Vec<std::path::PathBuf>,
    max_age: std::time::Duration,
    every: std::time::Duration,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let dirs = dirs.clone();
        let removed = tokio::task::spawn_blocking(move || {
            let mut n = 0usize;
            for dir in &dirs {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    let old = e
                        .metadata()
                        .ok()
                        .filter(|m| m.is_file())
                        .and_then(|m| m.modified().ok())
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age >= max_age);
                    if old && std::fs::remove_file(e.path()).is_ok() {
                        n += 1;
                    }
                }
            }
            n
        })
        .await
        .unwrap_or(0);
        if removed > 0 {
            tracing::debug!(removed, "decrypted working copies removed from the cache");
        }
    }
}

/// The cache folders [`sweep_cache`] keeps short-lived.
pub fn cache_dirs(cache: &Path) -> Vec<std::path::PathBuf> {
    vec![cache.join("blobs"), cache.join("render")]
}
