use app::admin::ssr as admin;
use medvision::settings::Settings;
use reqwest::{Client, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::path::PathBuf;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// The PostgreSQL server to test against: `DATABASE_URL_PG`, or the local
/// one on 127.0.0.1:5432 when it answers.
pub async fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("DATABASE_URL_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    use sqlx::Connection;
    match tokio::time::timeout(
        std::time::Duration::from_secs(3),
        sqlx::PgConnection::connect(&url),
    )
    .await
    {
        Ok(Ok(c)) => {
            let _ = c.close().await;
            Some(url)
        }
        _ => None,
    }
}

impl Backend {
    /// A fresh, empty PostgreSQL database, or `None` (with a printed reason).
    pub async fn postgres() -> Option<Backend> {
        use sqlx::Connection;
        let Some(admin) = postgres_admin_url().await else {
            eprintln!("SKIPPED: no PostgreSQL reachable (set DATABASE_URL_PG or run one on 127.0.0.1:5432)");
            return None;
        };
        let name = format!("mv_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(&admin).await.ok()?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .expect("create test database");
        let _ = c.close().await;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(admin);
        Some(Backend::Postgres(format!("{base}/{name}")))
    }
}

/// Runs a test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        $(mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(b) = $crate::helpers::Backend::postgres().await {
                    super::$name(b).await
                }
            }
        })+
    };
}

pub struct TestApp {
    /// The public URL (`public_url` when set, else the bound address).
    pub url: String,
    /// Where the server listens.
    pub addr: std::net::SocketAddr,
    /// The DICOM SCP's port, when `scp_port` was set.
    pub dicom_port: Option<u16>,
    /// Where `/metrics` is served, when `metrics_addr` was set.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub db: sea_orm::DatabaseConnection,
    pub settings: Settings,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub fn settings_for(backend: &Backend, dir: &std::path::Path) -> Settings {
    Settings {
        data_dir: dir.join("data"),
        addr: "127.0.0.1:0".parse().unwrap(),
        site_root: dir.join("site"),
        bootstrap_demo: false,
        database_url: match backend {
            Backend::Sqlite => None,
            Backend::Postgres(u) => Some(SecretString::from(u.clone())),
        },
        ..Default::default()
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let tmp = tempfile::tempdir().unwrap();
    let settings = settings_for(&backend, tmp.path());
    let mut app = start(settings).await;
    app.dir = tmp.path().to_path_buf();
    app._tmp = Some(tmp);
    app
}

/// Starts the real application with these settings.
pub async fn start(settings: Settings) -> TestApp {
    let application = medvision::build(settings.clone()).await.expect("build app");
    let url = application.url.clone();
    let addr = application.addr;
    let dicom_port = application.dicom.as_ref().map(|d| d.port);
    let metrics_addr = application.metrics_addr;
    let db = application.state.db.clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        application
            .run_until(async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    TestApp {
        url,
        addr,
        dicom_port,
        metrics_addr,
        db,
        dir: settings.data_dir.clone(),
        settings,
        _tmp: None,
        stop: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    /// Stops the server (graceful) and returns its settings and temp dir.
    pub async fn stop(mut self) -> (Settings, Option<tempfile::TempDir>) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        (self.settings.clone(), self._tmp.take())
    }

    pub async fn org(&self, name: &str) {
        admin::add_org(&self.db, name).await.unwrap();
    }

    pub async fn user(&self, email: &str, role: &str, org: &str) {
        admin::add_user(&self.db, email, None, PASSWORD, role, org, false)
            .await
            .unwrap();
    }

    /// A client signed in through the REST API (cookie session + CSRF token).
    pub async fn login(&self, email: &str) -> Api {
        let api = Api::new(&self.url);
        let r = api
            .post_json(
                "/api/v1/auth/login",
                &json!({ "email": email, "password": PASSWORD }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "login of {email}");
        let body: Value = r.json().await.unwrap();
        Api {
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
            ..api
        }
    }

    /// Two organisations with an admin, a radiologist and two doctors each.
    pub async fn two_orgs(&self) {
        for org in ["alpha", "beta"] {
            self.org(&format!("Org {org}")).await;
            for role in ["admin", "radiologist", "doctor", "doctor2"] {
                let r = if role == "doctor2" { "doctor" } else { role };
                self.user(&format!("{role}@{org}.example"), r, &format!("Org {org}"))
                    .await;
            }
        }
    }
}

/// An HTTP client with a cookie jar and, once signed in, the CSRF token.
#[derive(Clone)]
pub struct Api {
    pub http: Client,
    pub base: String,
    pub csrf: String,
}

impl Api {
    pub fn new(base: &str) -> Self {
        let http = Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Api {
            http,
            base: base.to_owned(),
            csrf: String::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// A page as a browser asks for it.
    pub async fn page(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .put(self.url(path))
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Response {
        self.http
            .patch(self.url(path))
            .header("x-csrf-token", &self.csrf)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A form post as the hydrated page's server-function client sends it.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("_csrf", &self.csrf));
        self.http
            .post(self.url(path))
            .header("accept", "application/json")
            .form(&f)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_case(&self, patient: &str) -> Value {
        let r = self
            .post_json(
                "/api/v1/cases",
                &json!({ "patient_ref": patient, "age": 54, "sex": "F", "modality": "CT", "body_part": "head", "urgency": "urgent", "history": "headache" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }
}

/// Every file under a folder, recursively (none when it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The organisation a case belongs to.
pub async fn case_org(db: &sea_orm::DatabaseConnection, case_id: &str) -> uuid::Uuid {
    use sea_orm::EntityTrait;
    entity::case::Entity::find_by_id(case_id.parse::<uuid::Uuid>().unwrap())
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .org_id
}

/// Counts rows of a table, to prove a refused request changed nothing.
pub async fn count(db: &sea_orm::DatabaseConnection, table: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// The error code of an API error body.
pub async fn error_code(r: Response) -> String {
    let v: Value = r.json().await.unwrap();
    v["error"]["code"].as_str().unwrap_or("").to_owned()
}

/// Whether the embedding model is installed (scripts/fetch-embedder.sh).
/// Without it the parts of a test that need retrieval are skipped with a
/// printed notice, unless `MEDVISION_REQUIRE_MODEL=1` (CI) makes that a
/// failure.
pub fn embedder_available(test: &str) -> bool {
    let dir = evidence::embed::default_model_dir();
    match evidence::embed::check_model_dir(&dir) {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("MEDVISION_REQUIRE_MODEL").is_ok_and(|v| v == "1") {
                panic!("{test}: MEDVISION_REQUIRE_MODEL=1 but the embedding model is unavailable: {why}");
            }
            eprintln!("*** SKIPPED (retrieval part of {test}): {why} ***");
            false
        }
    }
}

/// How long a test waits for something that should happen before calling
/// it stuck. A guard against hanging CI, not a speed check: speed is
/// measured in `bench/`.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(180);

/// Runs a polling loop under [`HANG_GUARD`]; `None` if it never finished.
pub async fn hang_guard<T>(fut: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(HANG_GUARD, fut).await.ok()
}
