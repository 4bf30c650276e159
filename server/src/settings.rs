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
            .merge(Env::prefixed("MEDVISION_").ignore(&["CONFIG"]))
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .extract()
            .map_err(Box::new)?;
        if let Ok(root) = std::env::var("LEPTOS_SITE_ROOT") {
            s.site_root = PathBuf::from(root);
        }
        Ok(s)
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

    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}
