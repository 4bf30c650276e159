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
