//! Layered configuration: defaults in code, then an optional `medvision.toml`
//! (or the file named by `--config` / `MEDVISION_CONFIG`), then `MEDVISION_*`
//! environment variables, then `DATABASE_URL`. Passed explicitly; never global.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the SQLite database, images and artefacts live (`MEDVISION_DATA_DIR`).
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…` (`DATABASE_URL`); default: `sqlite://<data_dir>/medvision.db`.
    #[serde(skip_serializing)]
    pub database_url: Option<SecretString>,
    /// Address to listen on (`MEDVISION_ADDR`).
    pub addr: SocketAddr,
    /// The URL users type, when behind a proxy (`MEDVISION_PUBLIC_URL`); an
    /// `https://` URL also makes session cookies `Secure`.
    pub public_url: Option<String>,
    /// Folder with the compiled site (`/pkg`, assets) from cargo-leptos.
    pub site_root: PathBuf,
    /// `pretty` or `json` (`MEDVISION_LOG_FORMAT`).
    pub log_format: String,
    /// Sign-out after this many minutes without a request.
    pub session_idle_minutes: i64,
    /// Sign-out this many hours after sign-in, however active.
    pub session_absolute_hours: u64,
    /// Sign-in attempts allowed per account per minute.
    pub login_per_account_per_minute: u32,
    /// Sign-in attempts allowed per client address per minute.
    pub login_per_ip_per_minute: u32,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// On first start with an empty database, create a demo organisation and
    /// an administrator with a one-time password.
    pub bootstrap_demo: bool,
    /// Largest request body for JSON and forms, in bytes.
    pub max_body_bytes: usize,
    /// Database pool size.
    pub db_max_connections: u32,
    /// Where image files go: unset for a folder in the data directory,
    /// `s3://bucket/prefix` for S3-compatible storage (credentials from the
    /// usual `AWS_*` variables), or `file:///path`.
    pub storage_url: Option<String>,
    /// Secret for de-identification (64 hex digits). Unset: generated once
    /// into `DATA_DIR/deid.key`. Replicas must share it, or the same study
    /// sent to two replicas would get two different de-identified UIDs.
    #[serde(skip_serializing)]
    pub deid_key: Option<SecretString>,
    /// Largest upload, all files together (bytes).
    pub max_upload_bytes: u64,
    /// Most files after expanding archives.
    pub max_upload_files: u64,
    /// Most bytes after decompression (zip bombs).
    pub max_uncompressed_bytes: u64,
    /// Largest compression ratio of an archive entry.
    pub max_compression_ratio: u64,
    /// PS3.15 option: shift dates by a per-patient offset instead of removing them.
    pub deid_retain_dates: bool,
    /// PS3.15 option: keep descriptions after cleaning identifiers out of them.
    pub deid_clean_descriptors: bool,
    /// Keep private attributes (off: vendors hide names in them).
    pub deid_keep_private_tags: bool,
    /// Images with Burned In Annotation = YES: `refuse` (default) or `flag`.
    pub burned_in: String,
    /// Folder of model packs (`MEDVISION_MODELS_DIR`); default `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
    /// `serve` also runs analysis workers in its own process
    /// (`MEDVISION_EMBEDDED_WORKERS=false` when `medvision worker` runs apart).
    pub embedded_workers: bool,
    /// Jobs one process works on at once.
    pub worker_concurrency: usize,
    /// Attempts per job before it is failed for good (the dead-letter list).
    pub job_attempts: i32,
    /// First retry delay, ms; each further retry multiplies it, up to the cap.
    pub job_retry_initial_ms: u64,
    pub job_retry_multiplier: f64,
    pub job_retry_cap_ms: u64,
    /// A worker's hold on a job; renewed by heartbeats every third of it. A
    /// job whose worker died is picked up again this long after.
    pub job_lease_secs: u64,
    /// How often idle workers and the live-progress watcher look for work.
    pub job_poll_ms: u64,
    /// Classifier micro-batching across jobs: at most this many images…
    pub inference_batch_max: usize,
    /// …waiting at most this long (ms) after the first for the others.
    pub inference_batch_wait_ms: u64,
    /// Fault injection for the crash tests only: pause every stage this many
    /// ms between its work and its commit. Leave 0.
    pub job_stage_delay_ms: u64,
    /// Consecutive failures of an outside service (LLM, PubMed, Qdrant
    /// server) that open its circuit breaker…
    pub breaker_failures: u32,
    /// …and how long it stays open before one trial call.
    pub breaker_open_secs: u64,
    /// Retrieve guideline and literature passages for each analysed study
    /// (the embedded index under `DATA_DIR/evidence`, or the Qdrant server
    /// of `MEDVISION_QDRANT_URL`).
    pub evidence: bool,
    /// Where the embedded evidence index lives (default `DATA_DIR/evidence`).
    pub evidence_dir: Option<PathBuf>,
    /// Passages retrieved per study for its report.
    pub evidence_top_k: usize,
    /// OpenAI-compatible endpoint for draft reports, including its version
    /// prefix (`https://api.openai.com/v1`, `http://localhost:11434/v1`).
    /// Unset: the built-in writer drafts every report.
    pub llm_base_url: Option<String>,
    /// Model id sent to the endpoint (required with `llm_base_url`).
    pub llm_model: String,
    /// Bearer token for the endpoint; unset sends none (local servers).
    #[serde(skip_serializing)]
    pub llm_api_key: Option<SecretString>,
    /// Whole-request limit per LLM call, in seconds.
    pub llm_timeout_secs: f64,
    /// Output-token limit per LLM call.
    pub llm_max_tokens: u32,
    /// The model accepts images (the key image and its heatmap are sent).
    pub llm_supports_images: bool,
    /// Contact address NCBI asks E-utilities clients to send.
    pub pubmed_email: Option<String>,
    /// NCBI API key (10 requests/s instead of 3).
    #[serde(skip_serializing)]
    pub pubmed_api_key: Option<SecretString>,
    /// Run the DICOM C-STORE SCP inside `serve` on this port (unset: only
    /// `medvision scp` runs one).
    pub scp_port: Option<u16>,
    /// Address the SCP binds (with `scp_port` or `medvision scp`).
    pub scp_bind: String,
    /// This node's AE title: associations calling another are refused.
    pub scp_ae_title: String,
    /// A received study is handed to analysis after this many seconds
    /// without a new instance.
    pub scp_quiet_secs: u64,
    /// Associations served at once; more are refused as "local limit
    /// exceeded" so the sender retries later.
    pub scp_max_associations: usize,
    /// Seconds a peer may stay silent inside an association.
    pub scp_timeout_secs: u64,
    /// This node's AE title when it sends (C-STORE SCU).
    pub scu_ae_title: String,
    /// Serve Prometheus `/metrics` on this address (unset: no metrics
    /// listener). Keep it on the operators' network.
    pub metrics_addr: Option<SocketAddr>,
    /// 64 hex digits: stored images and artefacts are encrypted at rest
    /// with AES-256-GCM under this key (`MEDVISION_ENCRYPTION_KEY`).
    #[serde(skip_serializing)]
    pub encryption_key: Option<SecretString>,
    /// Earlier keys, comma-separated, still accepted for reading until
    /// `medvision blobs rewrap` has moved every object to the current key.
    #[serde(skip_serializing)]
    pub encryption_previous_keys: Option<SecretString>,
    /// A client must send its request headers within this many seconds.
    pub header_timeout_secs: u64,
    /// A request body that sends nothing for this many seconds is cut off.
    pub body_idle_timeout_secs: u64,
    /// Image uploads (web, REST, STOW-RS requests) per user per minute.
    pub upload_per_user_per_minute: u32,
    /// `auto`: models run on the first NVIDIA GPU when the binary was built
    /// with the `cuda` feature and one is present; `cpu`: always the CPU.
    pub inference_device: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database_url: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            public_url: None,
            site_root: PathBuf::from("target/site"),
            log_format: "pretty".into(),
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            login_per_account_per_minute: 5,
            login_per_ip_per_minute: 30,
            trust_forwarded_for: false,
            bootstrap_demo: true,
            max_body_bytes: 1024 * 1024,
            db_max_connections: 16,
            storage_url: None,
            deid_key: None,
            max_upload_bytes: 2 << 30,
            max_upload_files: 10_000,
            max_uncompressed_bytes: 8 << 30,
            max_compression_ratio: 100,
            deid_retain_dates: false,
            deid_clean_descriptors: false,
            deid_keep_private_tags: false,
            burned_in: "refuse".into(),
            models_dir: None,
            embedded_workers: true,
            worker_concurrency: 2,
            job_attempts: 3,
            job_retry_initial_ms: 1_000,
            job_retry_multiplier: 2.0,
            job_retry_cap_ms: 60_000,
            job_lease_secs: 30,
            job_poll_ms: 250,
            inference_batch_max: 8,
            inference_batch_wait_ms: 5,
            job_stage_delay_ms: 0,
            breaker_failures: 5,
            breaker_open_secs: 30,
            evidence: true,
            evidence_dir: None,
            evidence_top_k: 6,
            llm_base_url: None,
            llm_model: String::new(),
            llm_api_key: None,
            llm_timeout_secs: 60.0,
            llm_max_tokens: 1500,
            llm_supports_images: false,
            pubmed_email: None,
            pubmed_api_key: None,
            scp_port: None,
            scp_bind: "0.0.0.0".into(),
            scp_ae_title: "MEDVISION".into(),
            scp_quiet_secs: 30,
            scp_max_associations: 32,
            scp_timeout_secs: 60,
            scu_ae_title: "MEDVISION".into(),
            metrics_addr: None,
            encryption_key: None,
            encryption_previous_keys: None,
            header_timeout_secs: 30,
            body_idle_timeout_secs: 60,
            upload_per_user_per_minute: 30,
            inference_device: "auto".into(),
        }
    }
}

impl Settings {
    /// Loads the layers. `file` overrides the default `medvision.toml`.
    pub fn load(file: Option<PathBuf>) -> Result<Self, Box<figment::Error>> {
        let explicit = file.is_some();
        let file = file.unwrap_or_else(|| PathBuf::from("medvision.toml"));
        if explicit && !file.exists() {
            return Err(Box::new(figment::Error::from(format!(
                "configuration file {} does not exist",
                file.display()
            ))));
        }
        let mut s: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(file))
            // Read by other parts, not settings: the CLI (`CONFIG`), the
            // tests (`FIXTURES`, `REQUIRE_*`, `FHIR_PYTHON`), the evidence
            // crate (`QDRANT_*`, `EMBEDDER_DIR`).
            .merge(Env::prefixed("MEDVISION_").ignore(&[
                "CONFIG",
                "FIXTURES",
                "REQUIRE_MODEL",
                "REQUIRE_DCMTK",
                "REQUIRE_FHIR",
                "FHIR_PYTHON",
                "QDRANT_URL",
                "QDRANT_API_KEY",
                "QDRANT_PREFIX",
                "EMBEDDER_DIR",
            ]))
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .extract()
            .map_err(Box::new)?;
        if let Ok(root) = std::env::var("LEPTOS_SITE_ROOT") {
            s.site_root = PathBuf::from(root);
        }
        Ok(s)
    }

    pub fn models_dir(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("models"))
    }

    pub fn evidence_dir(&self) -> PathBuf {
        self.evidence_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("evidence"))
    }

    /// The drafting endpoint, when one is configured.
    pub fn llm_config(&self) -> anyhow::Result<Option<reporting::LlmConfig>> {
        let Some(url) = self
            .llm_base_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        else {
            return Ok(None);
        };
        if self.llm_model.trim().is_empty() {
            anyhow::bail!("llm_model must be set when llm_base_url is");
        }
        if !(self.llm_timeout_secs > 0.0 && self.llm_timeout_secs <= 3600.0) {
            anyhow::bail!("llm_timeout_secs must be between 0 and 3600");
        }
        Ok(Some(reporting::LlmConfig {
            base_url: url.trim().to_owned(),
            model: self.llm_model.trim().to_owned(),
            api_key: self.llm_api_key.clone(),
            timeout_secs: self.llm_timeout_secs,
            max_tokens: self.llm_max_tokens.max(64),
            supports_images: self.llm_supports_images,
            ..Default::default()
        }))
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.expose_secret().to_owned(),
            None => format!("sqlite://{}", self.data_dir.join("medvision.db").display()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        let u = self.database_url();
        u.starts_with("postgres://") || u.starts_with("postgresql://")
    }

    /// The URL to print and to link to.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The de-identification master key: configured, or generated once into
    /// the data directory (readable by the service account only).
    pub fn deid_master_key(&self) -> anyhow::Result<[u8; 32]> {
        use std::io::Write;
        let parse = |s: &str| -> anyhow::Result<[u8; 32]> {
            let v = hex::decode(s.trim())
                .map_err(|_| anyhow::anyhow!("the de-identification key must be 64 hex digits"))?;
            v.try_into()
                .map_err(|_| anyhow::anyhow!("the de-identification key must be 64 hex digits"))
        };
        if let Some(k) = &self.deid_key {
            return parse(k.expose_secret());
        }
        let path = self.data_dir.join("deid.key");
        if let Ok(s) = std::fs::read_to_string(&path) {
            return parse(&s);
        }
        std::fs::create_dir_all(&self.data_dir)?;
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(&path) {
            Ok(mut f) => {
                f.write_all(hex::encode(key).as_bytes())?;
                Ok(key)
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                parse(&std::fs::read_to_string(&path)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn ingest_config(&self) -> anyhow::Result<imaging::ingest::IngestConfig> {
        use imaging::deid::{BurnedInPolicy, DeidConfig};
        let mut deid = DeidConfig::new(self.deid_master_key()?);
        deid.retain_longitudinal_modified_dates = self.deid_retain_dates;
        deid.clean_descriptors = self.deid_clean_descriptors;
        deid.keep_private_tags = self.deid_keep_private_tags;
        deid.burned_in = match self.burned_in.as_str() {
            "refuse" => BurnedInPolicy::Refuse,
            "flag" => BurnedInPolicy::Flag,
            other => anyhow::bail!("burned_in must be refuse or flag, not {other:?}"),
        };
        let limits = imaging::limits::Limits {
            max_upload_bytes: self.max_upload_bytes,
            max_files: self.max_upload_files,
            max_uncompressed_bytes: self.max_uncompressed_bytes,
            max_ratio: self.max_compression_ratio,
            ..Default::default()
        };
        Ok(imaging::ingest::IngestConfig { limits, deid })
    }

    /// The blob encryption keys, when configured.
    pub fn blob_keys(&self) -> Result<Option<crate::seal::Keys>, crate::seal::SealError> {
        match &self.encryption_key {
            None => Ok(None),
            Some(k) => crate::seal::Keys::parse(
                k.expose_secret(),
                self.encryption_previous_keys
                    .as_ref()
                    .map(|p| p.expose_secret()),
            )
            .map(Some),
        }
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}
