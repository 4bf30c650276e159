//! `GET /api/v1/analytics` and its CSV downloads.

use crate::middleware::User;
use app::analytics::Analytics;
use app::error::AppError;
use app::ssr::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/analytics", get(dashboard))
        .route("/analytics.csv", get(csv))
        .route("/admin/thresholds", get(thresholds).put(set_threshold))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct Params {
    /// `me` (default) or `organisation` (admins).
    pub scope: Option<String>,
    /// `day`, `week` (default) or `month`.
    pub period: Option<String>,
    /// For CSV: `trend`, `urgency`, `labels` or `performance`.
    pub table: Option<String>,
}

async fn load(
    state: &AppState,
    actor: &app::ssr::Actor,
    p: &Params,
) -> Result<Analytics, AppError> {
    app::analytics::ssr::dashboard(
        &state.db,
        actor,
        p.scope.as_deref() == Some("organisation"),
        p.period.as_deref().unwrap_or("week"),
    )
    .await
}

/// Totals, urgency, trend, findings per label and model performance with
/// confidence intervals, aggregated in the database.
#[utoipa::path(get, path = "/api/v1/analytics", tag = "analytics", params(Params),
    responses((status = 200, body = Analytics), (status = 422)))]
pub async fn dashboard(
    State(state): State<AppState>,
    User(actor): User,
    Query(p): Query<Params>,
) -> Result<Json<Analytics>, AppError> {
    Ok(Json(load(&state, &actor, &p).await?))
}

/// One table as CSV.
#[utoipa::path(get, path = "/api/v1/analytics.csv", tag = "analytics", params(Params),
    responses((status = 200, content_type = "text/csv"), (status = 422)))]
pub async fn csv(
    State(state): State<AppState>,
    User(actor): User,
    Query(p): Query<Params>,
) -> Result<Response, AppError> {
    let table = p.table.clone().unwrap_or_default();
    let a = load(&state, &actor, &p).await?;
    let body = app::analytics::ssr::csv(&a, &table)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"medvision-{table}-{}.csv\"", a.scope),
            ),
        ],
        body,
    )
        .into_response())
}

/// Admins: each model label's sensitivity/specificity trade-off on the
/// organisation's confirmed findings, and its threshold.
#[utoipa::path(get, path = "/api/v1/admin/thresholds", tag = "analytics",
    responses((status = 200, body = Vec<app::analytics::ThresholdRow>), (status = 403)))]
pub async fn thresholds(
    State(state): State<AppState>,
    User(actor): User,
) -> Result<Json<Vec<app::analytics::ThresholdRow>>, AppError> {
    Ok(Json(
        app::analytics::ssr::thresholds(&state.db, &actor).await?,
    ))
}

/// Sets (or with `positive_at: null` clears) the organisation's threshold
/// for a model label; new analyses use it; audited.
#[utoipa::path(put, path = "/api/v1/admin/thresholds", tag = "analytics",
    request_body = app::analytics::ThresholdInput,
    responses((status = 200, body = Vec<app::analytics::ThresholdRow>), (status = 403), (status = 422)))]
pub async fn set_threshold(
    State(state): State<AppState>,
    User(actor): User,
    Json(input): Json<app::analytics::ThresholdInput>,
) -> Result<Json<Vec<app::analytics::ThresholdRow>>, AppError> {
    Ok(Json(
        app::analytics::ssr::set_threshold(&state.db, &actor, input).await?,
    ))
}
