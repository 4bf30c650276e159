//! Case chat over HTTP and a websocket. Posting goes through REST (or the
//! page's server function); every open socket of the case receives each
//! new or edited message. The socket sends what the client missed first
//! (`?after=<last id seen>`), so a reconnect loses and repeats nothing.
//! Across replicas the same wake-up travels by PostgreSQL NOTIFY.

use crate::middleware::User;
use crate::pipeline::events::Hub;
use app::chat::{MessageDto, MessageEdit, NewMessage, NotificationDto};
use app::error::AppError;
use app::ssr::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cases/{id}/messages", get(list).post(create))
        .route("/cases/{id}/messages/{message}", patch(edit))
        .route("/cases/{id}/chat", get(socket))
        .route("/notifications", get(notifications))
        .route("/notifications/read", post(read_all))
}

fn id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct After {
    /// Only messages with a larger id (the last one the client saw).
    pub after: Option<i64>,
    pub limit: Option<u64>,
}

/// A case's messages, oldest first.
#[utoipa::path(get, path = "/api/v1/cases/{id}/messages", tag = "chat", params(After),
    responses((status = 200, body = Vec<MessageDto>), (status = 404)))]
pub async fn list(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
    Query(q): Query<After>,
) -> Result<Json<Vec<MessageDto>>, AppError> {
    Ok(Json(
        app::chat::ssr::list(
            &state.db,
            &actor,
            id(&raw)?,
            q.after.unwrap_or(0),
            q.limit.unwrap_or(200),
        )
        .await?,
    ))
}

/// Posts a message; @mentions of people on the case notify them.
#[utoipa::path(post, path = "/api/v1/cases/{id}/messages", tag = "chat", request_body = NewMessage,
    responses((status = 201, body = MessageDto), (status = 404), (status = 422), (status = 429)))]
pub async fn create(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
    Json(input): Json<NewMessage>,
) -> Result<(StatusCode, Json<MessageDto>), AppError> {
    let m = app::chat::ssr::post(&state.db, &actor, id(&raw)?, input).await?;
    state.chat.posted(m.case_id);
    Ok((StatusCode::CREATED, Json(m)))
}

/// The author's edit, within five minutes of posting.
#[utoipa::path(patch, path = "/api/v1/cases/{id}/messages/{message}", tag = "chat", request_body = MessageEdit,
    responses((status = 200, body = MessageDto), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn edit(
    State(state): State<AppState>,
    User(actor): User,
    Path((raw, message)): Path<(String, String)>,
    Json(input): Json<MessageEdit>,
) -> Result<Json<MessageDto>, AppError> {
    let mid: i64 = message.parse().map_err(|_| AppError::NotFound)?;
    let m = app::chat::ssr::edit(&state.db, &actor, id(&raw)?, mid, input).await?;
    state.chat.posted(m.case_id);
    Ok(Json(m))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct NotificationList {
    pub items: Vec<NotificationDto>,
    pub unread: u64,
}

/// The signed-in user's notifications (mentions), newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "chat",
    responses((status = 200, body = NotificationList)))]
pub async fn notifications(
    State(state): State<AppState>,
    User(actor): User,
) -> Result<Json<NotificationList>, AppError> {
    let (items, unread) = app::chat::ssr::notifications(&state.db, &actor).await?;
    Ok(Json(NotificationList { items, unread }))
}

/// Marks every notification read.
#[utoipa::path(post, path = "/api/v1/notifications/read", tag = "chat",
    responses((status = 200)))]
pub async fn read_all(
    State(state): State<AppState>,
    User(actor): User,
) -> Result<Json<serde_json::Value>, AppError> {
    let n = app::chat::ssr::mark_read(&state.db, &actor, None).await?;
    Ok(Json(serde_json::json!({ "marked": n })))
}

/// The browser may only open a case's socket from our own pages: a socket
/// handshake carries cookies, so another site must not open one.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

/// `GET /api/v1/cases/{id}/chat?after=N` (websocket): first the messages
/// after N, then each new or edited message as it happens, as JSON text
/// frames of `MessageDto`. Another tenant's case answers 404 before any
/// upgrade.
pub async fn socket(
    State(state): State<AppState>,
    Extension(hub): Extension<Arc<Hub>>,
    User(actor): User,
    Path(raw): Path<String>,
    Query(q): Query<After>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, AppError> {
    if !same_origin(&headers) {
        return Err(AppError::Forbidden);
    }
    let case = app::cases::ssr::find_visible(&state.db, &actor, id(&raw)?).await?;
    // Subscribe before the catch-up read, so nothing falls between them.
    let rx = state.chat.subscribe();
    let closed = hub.closed();
    let db = state.db.clone();
    let after = q.after.unwrap_or(0).max(0);
    Ok(ws
        .max_message_size(64 * 1024)
        .on_upgrade(move |s| session(s, db, case.id, after, rx, closed))
        .into_response())
}

async fn session(
    mut socket: WebSocket,
    db: DatabaseConnection,
    case_id: Uuid,
    mut last: i64,
    mut rx: tokio::sync::broadcast::Receiver<Uuid>,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let mut since = app::ssr::now();
    if send_new(&mut socket, &db, case_id, &mut last, &mut since)
        .await
        .is_err()
    {
        return;
    }
    let mut ping = tokio::time::interval(Duration::from_secs(25));
    ping.tick().await;
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Ok(c) if c != case_id => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    if send_new(&mut socket, &db, case_id, &mut last, &mut since).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => break,
            },
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Clients post through REST; anything else they send is ignored.
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = closed.changed() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// Sends messages after `last`, and those edited since `since`.
async fn send_new(
    socket: &mut WebSocket,
    db: &DatabaseConnection,
    case_id: Uuid,
    last: &mut i64,
    since: &mut chrono::DateTime<chrono::Utc>,
) -> Result<(), ()> {
    let checked = app::ssr::now();
    let mut out = app::chat::ssr::after_id(db, case_id, *last, 500)
        .await
        .map_err(|_| ())?;
    let edited = app::chat::ssr::edited_since(db, case_id, *since, *last)
        .await
        .map_err(|_| ())?;
    out.extend(edited);
    for m in out {
        *last = (*last).max(m.id);
        let text = serde_json::to_string(&m).map_err(|_| ())?;
        socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|_| ())?;
    }
    // Edits that commit while we send are caught next time (small overlap).
    *since = checked - chrono::Duration::seconds(1);
    Ok(())
}
