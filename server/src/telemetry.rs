//! Prometheus metrics and readiness.
//!
//! Counters and histograms are recorded where things happen (requests here,
//! jobs in the pipeline, model runs in the batcher and segmenter, LLM calls
//! in the reporting crate) through the `metrics` facade; gauges that describe
//! shared state (queue depth and age, breaker state) are read when scraped,
//! so every replica reports the same queue and nothing drifts.
//!
//! `/metrics` is served only on its own listener (`metrics_addr`), never on
//! the public address: it names routes, models and queue sizes, which is
//! for the operators' network, not for the internet.

use crate::pipeline::breaker::BreakerState;
use crate::pipeline::Services;
use app::pipeline::Stage;
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Latency buckets (seconds): pages and API calls at the low end, model
/// runs and LLM drafts at the high end.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. Until it is installed
/// the `metrics` macros are no-ops, so a server without `metrics_addr`
/// pays nothing.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("metrics: another recorder was installed first");
            }
            // Histograms keep raw samples until upkeep folds them into
            // buckets; without it an unscraped process would grow.
            let h = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    h.run_upkeep();
                })
                .ok();
            handle
        })
        .clone()
}

/// Request count and latency by method, matched route (never the raw
/// path: it holds ids) and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    counter!("medvision_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    histogram!("medvision_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    res
}

/// One model run: latency per model, task and device, images per run,
/// and failures.
pub fn inference(
    model: &inference::registry::LoadedModel,
    task: &'static str,
    images: usize,
    start: Instant,
    ok: bool,
) {
    let name = model.pack.manifest.name.clone();
    let device = model.device_name();
    histogram!("medvision_inference_seconds", "model" => name.clone(), "task" => task, "device" => device)
        .record(start.elapsed().as_secs_f64());
    counter!("medvision_inference_images_total", "model" => name.clone(), "task" => task, "device" => device)
        .increment(images as u64);
    if !ok {
        counter!("medvision_inference_errors_total", "model" => name, "task" => task, "device" => device)
            .increment(1);
    }
}

/// What a scrape reads besides the recorder.
#[derive(Clone)]
pub struct Scrape {
    pub handle: PrometheusHandle,
    pub db: DatabaseConnection,
    pub pipeline: Option<Arc<Services>>,
}

/// Binds `addr` and serves `/metrics` on it until the process ends.
/// Returns the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr, scrape: Scrape) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(scrape);
    // The same accept loop as the public listener, with its header timeout:
    // a scraper that stalls must not hold connections open.
    tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(e) = crate::serve::serve(listener, app, Duration::from_secs(10), forever).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics at /metrics");
    Ok(bound)
}

async fn render(State(s): State<Scrape>) -> Response {
    if let Err(e) = queue_gauges(&s.db).await {
        tracing::warn!(error = %e, "metrics: reading the queue failed");
        counter!("medvision_metrics_scrape_errors_total").increment(1);
    }
    if let Some(p) = &s.pipeline {
        breaker_gauge(p.llm_breaker.name, p.llm_breaker.state());
    }
    s.handle.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.handle.render(),
    )
        .into_response()
}

fn breaker_gauge(name: &'static str, state: BreakerState) {
    let v = match state {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    gauge!("medvision_breaker_state", "breaker" => name).set(v);
}

const STAGES: [Stage; 6] = [
    Stage::Uploaded,
    Stage::Decoding,
    Stage::Analysing,
    Stage::Explaining,
    Stage::Retrieving,
    Stage::Drafting,
];

/// Jobs waiting and running per stage, and how long the oldest has been
/// in its stage: one grouped query over the shared queue table.
async fn queue_gauges(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT stage, state, COUNT(*) AS n, MIN(updated_ms) AS oldest FROM jobs \
             WHERE state IN ('queued', 'running') GROUP BY stage, state",
        ))
        .await?;
    let now = app::pipeline::ssr::now_ms();
    let mut seen = Vec::new();
    for r in rows {
        let stage: String = r.try_get("", "stage")?;
        let state: String = r.try_get("", "state")?;
        let n: i64 = r.try_get("", "n")?;
        let oldest: i64 = r.try_get("", "oldest")?;
        let age = (now - oldest).max(0) as f64 / 1000.0;
        gauge!("medvision_queue_jobs", "stage" => stage.clone(), "state" => state.clone())
            .set(n as f64);
        gauge!("medvision_queue_oldest_age_seconds", "stage" => stage.clone(), "state" => state.clone())
            .set(age);
        seen.push((stage, state));
    }
    // A stage that emptied reads zero, not its last value.
    for stage in STAGES {
        for state in ["queued", "running"] {
            if !seen.iter().any(|(a, b)| a == stage.as_str() && b == state) {
                gauge!("medvision_queue_jobs", "stage" => stage.as_str(), "state" => state)
                    .set(0.0);
                gauge!("medvision_queue_oldest_age_seconds", "stage" => stage.as_str(), "state" => state)
                    .set(0.0);
            }
        }
    }
    Ok(())
}

/// One readiness check's outcome.
#[derive(serde::Serialize)]
struct Check {
    status: &'static str,
    ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

async fn timed<F, T>(f: F) -> (Result<T, String>, u128)
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let r = match tokio::time::timeout(Duration::from_secs(3), f).await {
        Ok(r) => r,
        Err(_) => Err("did not answer within 3 seconds".into()),
    };
    (r, start.elapsed().as_millis())
}

/// `/readyz`: the database decides readiness (503 without it: nothing
/// works); the image store, the vector store and the model registry make
/// the server "degraded" (200: pages and sign-off still work, and every
/// replica shares these, so taking this one out of service helps no one).
/// Each check is also a gauge, `medvision_ready{check}`.
pub async fn readyz(
    State(state): State<app::ssr::AppState>,
    axum::Extension(imaging): axum::Extension<Arc<crate::images::Imaging>>,
    axum::Extension(p): axum::Extension<Arc<Services>>,
) -> Response {
    let mut checks = serde_json::Map::new();
    let (db, ms) = timed(async {
        state
            .db
            .execute_unprepared("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "readiness: database unreachable");
                "unreachable".to_owned()
            })
    })
    .await;
    let db_ok = db.is_ok();
    checks.insert("database".into(), check("database", db.map(|_| None), ms));

    let (blobs, ms) = timed(async {
        imaging.blobs.probe().await.map(|_| None).map_err(|e| {
            tracing::error!(error = %e, "readiness: image store not writable");
            "not writable".to_owned()
        })
    })
    .await;
    let mut degraded = blobs.is_err();
    checks.insert("blobs".into(), check("blobs", blobs, ms));

    {
        let (vectors, ms) = timed(vector_check(&p)).await;
        degraded |= vectors.is_err();
        checks.insert("vectors".into(), check("vectors", vectors, ms));
        let (models, ms) = timed(async {
            let reg = p.registry();
            let n = reg.packs().len();
            let broken = reg.broken().len();
            match (n, broken) {
                (_, b) if b > 0 => Err(format!("{b} model pack(s) could not be read")),
                (0, _) => Err("no model packs installed".into()),
                (n, _) => Ok(Some(format!("{n} model pack(s)"))),
            }
        })
        .await;
        degraded |= models.is_err();
        checks.insert("models".into(), check("models", models, ms));
        // The drafting endpoint, as this process's breaker sees it: open
        // after repeated failures (drafts fall back to the built-in writer).
        let (llm, ms) = timed(async {
            if p.drafter.llm().is_none() {
                return Ok(Some(
                    "not configured: the built-in writer drafts".to_owned(),
                ));
            }
            match p.llm_breaker.state() {
                BreakerState::Closed => Ok(None),
                BreakerState::HalfOpen => {
                    Err("failing: one trial request allowed; drafts use the built-in writer".into())
                }
                BreakerState::Open => Err(
                    "failing: paused after repeated errors; drafts use the built-in writer".into(),
                ),
            }
        })
        .await;
        degraded |= llm.is_err();
        checks.insert("llm".into(), check("llm", llm, ms));
    }
    let (code, status) = match (db_ok, degraded) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (true, true) => (StatusCode::OK, "degraded"),
        (true, false) => (StatusCode::OK, "ready"),
    };
    (
        code,
        Json(serde_json::json!({ "status": status, "checks": checks })),
    )
        .into_response()
}

/// The evidence index answers a count. Not yet opened is not a failure:
/// it opens on the first analysis (loading the embedding model takes
/// seconds, too long for a probe).
async fn vector_check(p: &Services) -> Result<Option<String>, String> {
    if p.evidence.is_none() {
        return Ok(Some("evidence retrieval is off".into()));
    }
    let Some(k) = p.knowledge_if_open().await else {
        return Ok(Some("opens on first use".into()));
    };
    let backend = k.backend;
    tokio::task::spawn_blocking(move || {
        k.evidence
            .store()
            .count(evidence::store::Collection::Guidelines, None)
    })
    .await
    .map_err(|_| "the check stopped".to_owned())?
    .map(|n| Some(format!("{backend}, {n} guideline passages")))
    .map_err(|e| {
        tracing::error!(error = %e, "readiness: vector store failed");
        format!("{backend} did not answer")
    })
}

fn check(name: &'static str, r: Result<Option<String>, String>, ms: u128) -> serde_json::Value {
    let c = match r {
        Ok(detail) => Check {
            status: "ok",
            ms,
            detail,
        },
        Err(why) => Check {
            status: "failing",
            ms,
            detail: Some(why),
        },
    };
    gauge!("medvision_ready", "check" => name).set(if c.status == "ok" { 1.0 } else { 0.0 });
    serde_json::to_value(c).unwrap_or_default()
}
