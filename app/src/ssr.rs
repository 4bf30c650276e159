//! Server-side core shared by the server functions and the REST handlers:
//! application state, the acting user, and the database write helpers.

use crate::domain::{Email, Role};
use crate::error::AppError;
use axum::extract::FromRef;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use leptos::prelude::*;
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, TransactionTrait,
};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Everything a request handler or server function needs, cloned per request.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub leptos_options: LeptosOptions,
    pub auth: Arc<AuthPolicy>,
    /// Wakes the chat sockets of a case when a message is posted or edited.
    pub chat: ChatBus,
}

/// The process's chat wake-ups: the id of a case whose conversation
/// changed. Sockets re-read from the database, so a lost wake-up is healed
/// by the next one; PostgreSQL NOTIFY feeds it from other replicas.
#[derive(Clone, Debug)]
pub struct ChatBus(tokio::sync::broadcast::Sender<Uuid>);

impl Default for ChatBus {
    fn default() -> Self {
        Self(tokio::sync::broadcast::channel(1024).0)
    }
}

impl ChatBus {
    pub fn posted(&self, case_id: Uuid) {
        let _ = self.0.send(case_id);
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Uuid> {
        self.0.subscribe()
    }
}

/// From a server function: wake the case's chat sockets in this process.
pub fn chat_posted(case_id: Uuid) {
    if let Ok(s) = state() {
        s.chat.posted(case_id);
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> Self {
        s.leptos_options.clone()
    }
}

/// Sign-in throttling and session lifetime rules.
pub struct AuthPolicy {
    per_account: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Upload requests per user (each may carry thousands of files).
    uploads: DefaultKeyedRateLimiter<Uuid>,
    pub absolute_session: Duration,
    /// Read the client address from `X-Forwarded-For` (trusted proxy only).
    pub trust_forwarded_for: bool,
    /// Verified against when the e-mail is unknown, so a failed sign-in takes
    /// the same time whether or not the account exists.
    pub dummy_hash: String,
    /// When this process last recorded each token's use, so a busy script
    /// costs one write per token every few minutes, not one per request.
    token_touched: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl AuthPolicy {
    pub fn new(
        per_account_per_minute: u32,
        per_ip_per_minute: u32,
        absolute_session: Duration,
    ) -> Self {
        let q = |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        Self {
            per_account: RateLimiter::keyed(q(per_account_per_minute)),
            per_ip: RateLimiter::keyed(q(per_ip_per_minute)),
            uploads: RateLimiter::keyed(q(30)),
            absolute_session,
            trust_forwarded_for: false,
            dummy_hash: crate::auth::ssr::hash_password_blocking(
                "not a real password, only timing",
            )
            .unwrap_or_default(),
            token_touched: Default::default(),
        }
    }

    /// Whether a token's `last_used_at` is due to be written again.
    pub fn token_use_due(&self, token_hash: &str) -> bool {
        const EVERY: Duration = Duration::from_secs(300);
        let now = std::time::Instant::now();
        let Ok(mut seen) = self.token_touched.lock() else {
            return true;
        };
        if seen
            .get(token_hash)
            .is_some_and(|t| now.duration_since(*t) < EVERY)
        {
            return false;
        }
        if seen.len() >= 10_000 {
            seen.retain(|_, t| now.duration_since(*t) < EVERY);
        }
        seen.insert(token_hash.to_owned(), now);
        true
    }

    /// Spends one sign-in attempt for this account and this address.
    pub fn check_login(&self, email: &Email, ip: Option<IpAddr>) -> Result<(), AppError> {
        if let Some(ip) = ip {
            self.per_ip
                .check_key(&ip)
                .map_err(|_| AppError::RateLimited)?;
        }
        self.per_account
            .check_key(&email.as_str().to_owned())
            .map_err(|_| AppError::RateLimited)
    }

    /// Upload requests allowed per user per minute (default 30).
    pub fn with_upload_limit(mut self, per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        self.uploads = RateLimiter::keyed(Quota::per_minute(n));
        self
    }

    /// Spends one upload request of this user.
    pub fn check_upload(&self, user: Uuid) -> Result<(), AppError> {
        self.uploads
            .check_key(&user)
            .map_err(|_| AppError::RateLimited)
    }

    /// Spends one attempt of this address (registration).
    pub fn check_address(&self, ip: Option<IpAddr>) -> Result<(), AppError> {
        match ip {
            Some(ip) => self
                .per_ip
                .check_key(&ip)
                .map_err(|_| AppError::RateLimited),
            None => Ok(()),
        }
    }

    /// Forgets old limiter keys so memory stays bounded.
    pub fn retain_recent(&self) {
        self.per_account.retain_recent();
        self.per_ip.retain_recent();
        self.uploads.retain_recent();
    }
}

/// The authenticated user acting in a request. Built by the server's auth
/// middleware from the session or a bearer token and stored in the request
/// extensions; every repository function takes it and scopes by it.
#[derive(Clone, Debug)]
pub struct Actor {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub org_name: String,
    pub role: Role,
    pub email: Email,
    pub name: String,
    pub must_change_password: bool,
    pub via_token: bool,
}

impl Actor {
    pub fn require_role(&self, role: Role) -> Result<(), AppError> {
        if self.role == role {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}

/// The CSRF token of the current session, placed in the request extensions
/// by the server's middleware.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

/// The client's address as the server sees it (peer, or the trusted proxy's
/// forwarded header), placed in the request extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

fn parts() -> Result<http::request::Parts, AppError> {
    use_context::<http::request::Parts>().ok_or(AppError::Internal)
}

/// Application state inside a server function or page.
pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or(AppError::Internal)
}

/// The signed-in user, or `Unauthenticated`; refuses accounts that must
/// change their password first.
pub fn require_user() -> Result<Actor, AppError> {
    let a = require_user_any()?;
    if a.must_change_password {
        return Err(AppError::PasswordChangeRequired);
    }
    Ok(a)
}

/// The signed-in user, even one who still has to change a one-time password.
pub fn require_user_any() -> Result<Actor, AppError> {
    parts()?
        .extensions
        .get::<Actor>()
        .cloned()
        .ok_or(AppError::Unauthenticated)
}

pub fn require_role(role: Role) -> Result<Actor, AppError> {
    let a = require_user()?;
    a.require_role(role)?;
    Ok(a)
}

pub fn client_ip() -> Option<IpAddr> {
    parts().ok()?.extensions.get::<ClientIp>()?.0
}

/// The directives every response carries; a page adds its script nonce.
/// `connect-src 'self'` covers the page's own websockets (CSP Level 3), so
/// a script cannot send data to another host.
/// Styles keep 'unsafe-inline': the viewer positions images with `style`
/// attributes, and a style cannot run code.
pub const CSP_BASE: &str = "default-src 'self'; img-src 'self' data: blob:; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; object-src 'none'; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// The page's Content-Security-Policy with this response's nonce: only the
/// scripts Leptos writes itself (the hydration loader, streamed resources)
/// run; an injected inline script does not.
pub fn content_security_policy() {
    let (Some(nonce), Some(res)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let csp = format!("{CSP_BASE}; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'");
    if let Ok(v) = http::HeaderValue::from_str(&csp) {
        res.insert_header(http::header::CONTENT_SECURITY_POLICY, v);
    }
}

/// Sets the HTTP status of a failing server function (and of the page that
/// awaited it during server rendering), then passes the error on.
pub fn fail<T>(r: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &r {
        if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
            opts.set_status(e.status());
        }
    }
    r
}

/// Starts a transaction that will write. On SQLite it takes the write lock
/// first, so reads inside the transaction can never be invalidated by a
/// concurrent writer (which would fail the commit with SQLITE_BUSY).
pub async fn write_txn(db: &DatabaseConnection) -> Result<DatabaseTransaction, AppError> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DatabaseBackend::Sqlite {
        txn.execute_unprepared("UPDATE audit_log SET seq = seq WHERE 1 = 0")
            .await?;
    }
    Ok(txn)
}

/// `now`, truncated to microseconds: what both databases store, so a value
/// read back equals the value written (the audit hash depends on it).
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{SubsecRound, Utc};
    Utc::now().trunc_subsecs(6)
}

/// Random bytes as URL-safe base64, for tokens.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// One CSV line (RFC 4180 quoting, CRLF). Cells a spreadsheet would run as
/// a formula (`=`, `+`, `-`, `@` first) get a leading quote, so an exported
/// label or audit detail cannot execute on the reader's machine.
pub fn csv_line(cells: &[String]) -> String {
    let mut out = cells
        .iter()
        .map(|c| {
            let c = if c.starts_with(['=', '+', '-', '@']) {
                format!("'{c}")
            } else {
                c.clone()
            };
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    out
}
