//! The MedVision server as a library, so tests start the real application:
//! `build(settings)` wires configuration, database, sessions and routes;
//! `Application::run` serves until shutdown. `main.rs` only parses the CLI.

// Leptos' view types nest deeply (the case page).
#![recursion_limit = "256"]

pub mod analytics;
pub mod api;
pub mod audit_api;
pub mod backup;
pub mod blobs;
pub mod chat;
pub mod cli;
pub mod corpus;
pub mod db;
pub mod dicom;
pub mod dicom_results;
pub mod dicomweb;
pub mod fhir;
pub mod images;
pub mod knowledge;
pub mod middleware;
pub mod models;
pub mod pipeline;
pub mod reports;
pub mod seal;
pub mod serve;
pub mod settings;
pub mod telemetry;

use app::error::AppError;
use app::ssr::{AppState, AuthPolicy};
use axum::extract::{DefaultBodyLimit, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use settings::Settings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// A built application, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pub state: AppState,
    pub imaging: Arc<images::Imaging>,
    pub pipeline: Arc<pipeline::Services>,
    /// The DICOM SCP, when `scp_port` is set.
    pub dicom: Option<dicom::DicomService>,
    pub outbox: Arc<dicom_results::Outbox>,
    embedded_workers: bool,
    header_timeout: Duration,
    pub addr: SocketAddr,
    pub url: String,
    /// Where `/metrics` is served, when `metrics_addr` is set.
    pub metrics_addr: Option<SocketAddr>,
    sessions: db::DbSessionStore,
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "medvision_session";

fn leptos_options(settings: &Settings, addr: SocketAddr) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("medvision")
        .site_root(settings.site_root.display().to_string())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build()
}

/// Connects, migrates and binds. Everything the server needs comes from
/// `settings`; nothing is read from globals.
pub async fn build(settings: Settings) -> anyhow::Result<Application> {
    let database = db::connect(&settings).await?;
    db::migrate(&database).await?;
    let listener = TcpListener::bind(settings.addr).await?;
    let addr = listener.local_addr()?;
    let url = settings.public_url(addr);

    let mut auth = AuthPolicy::new(
        settings.login_per_account_per_minute,
        settings.login_per_ip_per_minute,
        Duration::from_secs(settings.session_absolute_hours * 3600),
    )
    .with_upload_limit(settings.upload_per_user_per_minute);
    auth.trust_forwarded_for = settings.trust_forwarded_for;
    let hub = Arc::new(pipeline::events::Hub::default());
    let state = AppState {
        db: database.conn.clone(),
        leptos_options: leptos_options(&settings, addr),
        auth: Arc::new(auth),
        chat: hub.chat.clone(),
    };
    let imaging = Arc::new(images::Imaging::new(&settings, hub.clone())?);
    let pipeline = Arc::new(pipeline::Services::new(
        database.conn.clone(),
        imaging.blobs.clone(),
        &settings,
        hub.clone(),
    )?);
    let outbox = Arc::new(dicom_results::Outbox::new(&settings, imaging.blobs.clone()));
    let router = router(&settings, state.clone(), database.sessions.clone())
        .layer(axum::Extension(imaging.clone()))
        .layer(axum::Extension(outbox.clone()))
        .layer(axum::Extension(pipeline.clone()))
        .layer(axum::Extension(fhir::Base(
            url.trim_end_matches('/').to_owned(),
        )))
        .layer(axum::Extension(hub));
    let dicom = match settings.scp_port {
        Some(port) => Some(
            dicom::DicomService::start(&settings, database.conn.clone(), imaging.clone(), port)
                .await?,
        ),
        None => None,
    };
    let metrics_addr = match settings.metrics_addr {
        Some(a) => Some(
            telemetry::serve(
                a,
                telemetry::Scrape {
                    handle: telemetry::install(),
                    db: database.conn.clone(),
                    pipeline: Some(pipeline.clone()),
                },
            )
            .await?,
        ),
        None => None,
    };
    Ok(Application {
        metrics_addr,
        listener,
        router,
        state,
        imaging,
        pipeline,
        dicom,
        outbox,
        embedded_workers: settings.embedded_workers,
        header_timeout: Duration::from_secs(settings.header_timeout_secs.max(1)),
        addr,
        url,
        sessions: database.sessions,
    })
}

fn router(settings: &Settings, state: AppState, sessions: db::DbSessionStore) -> Router {
    let routes = generate_route_list(app::App);
    let ctx = {
        let s = state.clone();
        move || provide_context(s.clone())
    };
    let shell = {
        let o = state.leptos_options.clone();
        move || app::shell(o.clone())
    };
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(settings.secure_cookies())
        .with_expiry(Expiry::OnInactivity(time::Duration::minutes(
            settings.session_idle_minutes,
        )));
    let body_limit = settings.max_body_bytes;

    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(telemetry::readyz))
        .route("/logout", post(logout_form))
        .nest("/api/v1", api::router())
        .nest("/fhir", fhir::router())
        .nest("/dicomweb", dicomweb::router())
        .leptos_routes_with_context(&state, routes, ctx.clone(), shell)
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(ctx, app::shell))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(middleware::csrf))
        .layer(axum::middleware::from_fn_with_state(state, middleware::authenticate))
        .layer(axum::Extension(middleware::BodyLimit(body_limit)))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(
            settings.body_idle_timeout_secs.max(1),
        )))
        .layer(session_layer)
        .layer(axum::middleware::from_fn_with_state(
            settings.secure_cookies(),
            middleware::security_headers,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            // The span names the route, never the query string: searches can
            // hold patient names.
            TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
                let rid = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %rid)
            }),
        )
        .layer(axum::middleware::from_fn(telemetry::track))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The header's sign-out form: ends the session and reloads the sign-in page.
async fn logout_form(
    State(state): State<AppState>,
    session: tower_sessions::Session,
    user: Option<middleware::AnyUser>,
) -> Result<Redirect, AppError> {
    app::auth::ssr::end_session(&state, &session, user.as_ref().map(|u| &u.0)).await?;
    Ok(Redirect::to("/login"))
}

impl Application {
    /// Serves until ctrl-c / SIGTERM, then drains in-flight requests.
    pub async fn run(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use tower_sessions::ExpiredDeletion;
        let cleanup = tokio::spawn(
            self.sessions
                .clone()
                .continuously_delete_expired(tokio::time::Duration::from_secs(300)),
        );
        let auth = self.state.auth.clone();
        let limiter_gc = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                auth.retain_recent();
            }
        });
        let watcher = tokio::spawn(self.pipeline.hub.clone().watch(
            self.state.db.clone(),
            Duration::from_millis(self.pipeline.cfg.poll_ms),
        ));
        let outbox = tokio::spawn(self.outbox.clone().run(self.state.db.clone()));
        let sweeper = self.imaging.blobs.encrypted().then(|| {
            tokio::spawn(blobs::sweep_cache(
                blobs::cache_dirs(&self.imaging.cache_dir),
                Duration::from_secs(3600),
                Duration::from_secs(600),
            ))
        });
        let workers = self
            .embedded_workers
            .then(|| pipeline::Workers::start(self.pipeline.clone()));
        let hub = self.pipeline.hub.clone();
        let r = serve::serve(
            self.listener,
            self.router,
            self.header_timeout,
            async move {
                shutdown.await;
                hub.close();
            },
        )
        .await;
        cleanup.abort();
        limiter_gc.abort();
        watcher.abort();
        outbox.abort();
        if let Some(s) = sweeper {
            s.abort();
        }
        if let Some(d) = self.dicom {
            d.shutdown().await;
        }
        if let Some(w) = workers {
            w.shutdown().await;
        }
        r
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Sets up logging: human-readable by default, JSON when configured.
pub fn init_tracing(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
