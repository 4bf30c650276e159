//! The organisation's audit trail for its admins: rows, CSV, chain check.

use crate::middleware::User;
use app::audit::{AuditFilter, AuditRowDto, ChainReport};
use app::error::AppError;
use app::ssr::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/audit", get(list))
        .route("/admin/audit.csv", get(csv))
        .route("/admin/audit/verify", post(verify))
}

/// Audit rows of the admin's organisation, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditFilter),
    responses((status = 200, body = Vec<AuditRowDto>), (status = 403)))]
pub async fn list(
    State(state): State<AppState>,
    User(actor): User,
    Query(f): Query<AuditFilter>,
) -> Result<Json<Vec<AuditRowDto>>, AppError> {
    Ok(Json(app::audit::ssr::list(&state.db, &actor, &f).await?))
}

/// The same rows as CSV.
#[utoipa::path(get, path = "/api/v1/admin/audit.csv", tag = "admin", params(AuditFilter),
    responses((status = 200, content_type = "text/csv"), (status = 403)))]
pub async fn csv(
    State(state): State<AppState>,
    User(actor): User,
    Query(f): Query<AuditFilter>,
) -> Result<Response, AppError> {
    let rows = app::audit::ssr::list(&state.db, &actor, &f).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"medvision-audit.csv\"",
            ),
        ],
        app::audit::ssr::csv(&rows),
    )
        .into_response())
}

/// Re-computes the whole hash chain.
#[utoipa::path(post, path = "/api/v1/admin/audit/verify", tag = "admin",
    responses((status = 200, body = ChainReport), (status = 403)))]
pub async fn verify(
    State(state): State<AppState>,
    User(actor): User,
) -> Result<Json<ChainReport>, AppError> {
    actor.require_role(app::domain::Role::Admin)?;
    Ok(Json(app::audit::ssr::verify(&state.db).await?))
}
