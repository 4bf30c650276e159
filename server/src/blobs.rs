//! Content-addressed storage of image files: a local folder by default, any
//! S3-compatible bucket when `MEDVISION_STORAGE_URL` names one. Keys are
//! `orgs/{org}/{sha256[..2]}/{sha256}`, so one organisation's data is one
//! prefix (export, deletion, bucket policies) and a file stored twice is
//! stored once.

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
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Where the store lives, for logs (never credentials).
    pub describe: String,
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
                })
            }
            Some(u) if u.starts_with("s3://") => {
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(u)
                    .build()?;
                Ok(Self {
                    store: Arc::new(store),
                    describe: u.split('?').next().unwrap_or_default().to_owned(),
                })
            }
            Some(u) if u.starts_with("file://") => {
                let dir = Path::new(u.trim_start_matches("file://"));
                std::fs::create_dir_all(dir)?;
                Ok(Self {
                    store: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
                    describe: dir.display().to_string(),
                })
            }
            Some(_) => Err(BlobError::Config(
                "MEDVISION_STORAGE_URL must start with s3:// or file://".into(),
            )),
        }
    }

    fn key(org: Uuid, sha256: &str) -> Key {
        let shard = sha256.get(..2).unwrap_or("00");
        Key::from(format!("orgs/{org}/{shard}/{sha256}"))
    }

    /// Stores a file under its hash unless it is there already. Streams in
    /// parts, so a large volume never sits in memory whole.
    pub async fn put_file(&self, org: Uuid, sha256: &str, file: &Path) -> Result<(), BlobError> {
        let key = Self::key(org, sha256);
        if self.store.head(&key).await.is_ok() {
            return Ok(());
        }
        let upload = self.store.put_multipart(&key).await?;
        let mut writer = WriteMultipart::new(upload);
        let mut f = tokio::fs::File::open(file).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await?;
            writer.write(&buf[..n]);
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
        self.store.put(&key, bytes.into()).await?;
        Ok(())
    }

    pub async fn get(&self, org: Uuid, sha256: &str) -> Result<bytes::Bytes, BlobError> {
        Ok(self
            .store
            .get(&Self::key(org, sha256))
            .await?
            .bytes()
            .await?)
    }

    /// Copies a blob to a local file (decoders want a path).
    pub async fn get_to_file(&self, org: Uuid, sha256: &str, to: &Path) -> Result<(), BlobError> {
        let bytes = self.get(org, sha256).await?;
        tokio::fs::write(to, &bytes).await?;
        Ok(())
    }
}
