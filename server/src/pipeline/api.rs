//! Pipeline endpoints: a case's jobs and findings, batches (cancel, retry),
//! artefacts, the admin's dead letters, and the live event streams.

use super::events::{Hub, JobEvent};
use crate::images::Imaging;
use crate::middleware::User;
use app::error::AppError;
use app::pipeline::{ssr as pipeline, BatchDto, FindingDto, JobDto};
use app::ssr::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cases/{id}/jobs", get(case_jobs))
        .route("/cases/{id}/findings", get(case_findings))
        .route("/cases/{id}/report", get(case_report))
        .route("/cases/{id}/batches", get(case_batches))
        .route("/cases/{id}/events", get(case_events))
        .route("/batches/{id}", get(batch))
        .route("/batches/{id}/cancel", post(cancel_batch))
        .route("/batches/{id}/retry", post(retry_batch))
        .route("/batches/{id}/events", get(batch_events))
        .route("/artefacts/{id}", get(artefact))
        .route("/admin/jobs/failed", get(failed_jobs))
        .route("/admin/jobs/{id}/retry", post(retry_job))
}

fn id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

/// The analysis jobs of a case, newest first.
#[utoipa::path(get, path = "/api/v1/cases/{id}/jobs", tag = "pipeline",
    responses((status = 200, body = Vec<JobDto>), (status = 404)))]
pub async fn case_jobs(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<Vec<JobDto>>, AppError> {
    Ok(Json(
        pipeline::case_jobs(&state.db, &actor, id(&raw)?).await?,
    ))
}

/// The models' findings for a case (AI suggestions, with model versions).
#[utoipa::path(get, path = "/api/v1/cases/{id}/findings", tag = "pipeline",
    responses((status = 200, body = Vec<FindingDto>), (status = 404)))]
pub async fn case_findings(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<Vec<FindingDto>>, AppError> {
    Ok(Json(
        pipeline::case_findings(&state.db, &actor, id(&raw)?).await?,
    ))
}

/// The case's report: the latest AI draft (labelled, with its writer,
/// citations, verification and the literature retrieved) or the signed
/// report. 204 while no analysis has drafted one yet.
#[utoipa::path(get, path = "/api/v1/cases/{id}/report", tag = "pipeline",
    responses((status = 200, body = app::report::ReportDto), (status = 204), (status = 404)))]
pub async fn case_report(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    Ok(
        match app::report::ssr::case_report(&state.db, &actor, id(&raw)?).await? {
            Some(r) => Json(r).into_response(),
            None => axum::http::StatusCode::NO_CONTENT.into_response(),
        },
    )
}

/// The upload batches of a case, newest first.
#[utoipa::path(get, path = "/api/v1/cases/{id}/batches", tag = "pipeline",
    responses((status = 200, body = Vec<BatchDto>), (status = 404)))]
pub async fn case_batches(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<Vec<BatchDto>>, AppError> {
    Ok(Json(
        pipeline::case_batches(&state.db, &actor, id(&raw)?).await?,
    ))
}

/// A batch: each study's job, refused files, counts, pace and ETA.
#[utoipa::path(get, path = "/api/v1/batches/{id}", tag = "pipeline",
    responses((status = 200, body = BatchDto), (status = 404)))]
pub async fn batch(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<BatchDto>, AppError> {
    Ok(Json(pipeline::batch(&state.db, &actor, id(&raw)?).await?))
}

/// Cancels the batch's unfinished jobs; finished results stay.
#[utoipa::path(post, path = "/api/v1/batches/{id}/cancel", tag = "pipeline",
    responses((status = 200, body = BatchDto), (status = 404)))]
pub async fn cancel_batch(
    State(state): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<BatchDto>, AppError> {
    let b = pipeline::cancel_batch(&state.db, &actor, id(&raw)?).await?;
    hub.poke();
    Ok(Json(b))
}

/// Queues the batch's failed and cancelled jobs again.
#[utoipa::path(post, path = "/api/v1/batches/{id}/retry", tag = "pipeline",
    responses((status = 200, body = BatchDto), (status = 404)))]
pub async fn retry_batch(
    State(state): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<BatchDto>, AppError> {
    let b = pipeline::retry_batch(&state.db, &actor, id(&raw)?).await?;
    hub.poke();
    Ok(Json(b))
}

/// Jobs that failed for good in the admin's organisation.
#[utoipa::path(get, path = "/api/v1/admin/jobs/failed", tag = "pipeline",
    responses((status = 200, body = Vec<JobDto>), (status = 403)))]
pub async fn failed_jobs(
    State(state): State<AppState>,
    User(actor): User,
) -> Result<Json<Vec<JobDto>>, AppError> {
    Ok(Json(pipeline::failed_jobs(&state.db, &actor).await?))
}

/// Runs a failed job again (admin).
#[utoipa::path(post, path = "/api/v1/admin/jobs/{id}/retry", tag = "pipeline",
    responses((status = 200, body = JobDto), (status = 403), (status = 404), (status = 409)))]
pub async fn retry_job(
    State(state): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<JobDto>, AppError> {
    let j = pipeline::retry_job(&state.db, &actor, id(&raw)?).await?;
    hub.poke();
    Ok(Json(j))
}

/// A heatmap or mask image the pipeline produced.
#[utoipa::path(get, path = "/api/v1/artefacts/{id}", tag = "pipeline",
    responses((status = 200, content_type = "image/png"), (status = 404)))]
pub async fn artefact(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let a = pipeline::artefact(&state.db, &actor, id(&raw)?).await?;
    let bytes = img.blobs.get(a.org_id, &a.blob_sha256).await.map_err(|e| {
        tracing::error!(error = %e, "blob store failed");
        AppError::Internal
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, a.media_type),
            (header::CACHE_CONTROL, "private, max-age=86400".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// Server-sent events: one `job` event per change of a job of the case.
#[utoipa::path(get, path = "/api/v1/cases/{id}/events", tag = "pipeline",
    responses((status = 200, content_type = "text/event-stream"), (status = 404)))]
pub async fn case_events(
    State(state): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let case = app::cases::ssr::find_visible(&state.db, &actor, id(&raw)?).await?;
    Ok(stream(&hub, move |e| e.case_id == case.id))
}

/// Server-sent events for one batch.
#[utoipa::path(get, path = "/api/v1/batches/{id}/events", tag = "pipeline",
    responses((status = 200, content_type = "text/event-stream"), (status = 404)))]
pub async fn batch_events(
    State(state): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let b = pipeline::batch(&state.db, &actor, id(&raw)?).await?;
    Ok(stream(&hub, move |e| e.batch_id == Some(b.id)))
}

fn stream(hub: &Hub, keep: impl Fn(&JobEvent) -> bool + Send + Sync + 'static) -> Response {
    let rx = hub.subscribe();
    let closed = hub.closed();
    hub.poke();
    let keep = Arc::new(keep);
    let events = futures_util::stream::unfold((rx, closed), move |(mut rx, mut closed)| {
        let keep = keep.clone();
        async move {
            loop {
                if *closed.borrow() {
                    return None;
                }
                let next = tokio::select! {
                    e = rx.recv() => e,
                    _ = closed.changed() => return None,
                };
                match next {
                    Ok(e) if keep(&e) => {
                        let ev = Event::default()
                            .event("job")
                            .json_data(&e)
                            .unwrap_or_else(|_| Event::default().event("job"));
                        return Some((Ok::<_, Infallible>(ev), (rx, closed)));
                    }
                    Ok(_) => {}
                    // Fell behind: tell the page to re-read everything.
                    Err(RecvError::Lagged(_)) => {
                        return Some((
                            Ok(Event::default().event("resync").data("{}")),
                            (rx, closed),
                        ));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
