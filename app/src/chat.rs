//! Case chat: messages among the people on a case, @mentions that notify,
//! references to a finding or an image, edits within five minutes (shown
//! as edited). Text is stored as typed and always rendered escaped. The
//! live part (a websocket per case) is in the server; this is the data
//! layer with the tenant checks and the rules.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// How long the author may edit a message.
pub const EDIT_WINDOW_SECS: i64 = 300;
/// Messages one user may post per minute.
pub const MESSAGES_PER_MINUTE: usize = 30;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MessageDto {
    /// Increases with every message: clients resume after the last they saw.
    pub id: i64,
    pub case_id: Uuid,
    pub author_id: Uuid,
    pub author: String,
    pub body: String,
    pub finding_id: Option<Uuid>,
    pub instance_id: Option<Uuid>,
    pub frame: Option<i32>,
    /// Names of the people the message mentions.
    pub mentions: Vec<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub edited_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// `POST /api/v1/cases/{id}/messages`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewMessage {
    pub body: String,
    /// A finding of this case the message is about.
    #[serde(default)]
    pub finding_id: Option<Uuid>,
    /// An image of this case (and a frame of it) the message points at.
    #[serde(default)]
    pub instance_id: Option<Uuid>,
    #[serde(default)]
    pub frame: Option<i32>,
}

/// `PATCH /api/v1/cases/{id}/messages/{message}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MessageEdit {
    pub body: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NotificationDto {
    pub id: i64,
    pub case_id: Uuid,
    pub message_id: i64,
    /// `mention`.
    pub kind: String,
    pub from: String,
    /// The start of the message.
    pub excerpt: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub read: bool,
}

/// The `@handles` in a text: an e-mail address or its local part.
pub fn mention_handles(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in
        text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '!' | '?'))
    {
        let Some(h) = word.strip_prefix('@') else {
            continue;
        };
        let h = h.trim_end_matches(['.', ':', '\'', '"']).to_lowercase();
        if !h.is_empty() && h.len() <= 254 && !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::cases::ssr::{find_visible, visible};
    use crate::domain::Role;
    use crate::ssr::{now, write_txn, Actor};
    use entity::{case, case_member, finding, instance, message, notification, user};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
        EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    };
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    /// Per-user posting rate, per process (replicas each allow the rate).
    fn rate_ok(user: Uuid) -> bool {
        static RECENT: OnceLock<Mutex<HashMap<Uuid, VecDeque<Instant>>>> = OnceLock::new();
        let mut m = RECENT
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let q = m.entry(user).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            q.pop_front();
        }
        if q.len() >= MESSAGES_PER_MINUTE {
            return false;
        }
        q.push_back(now);
        true
    }

    fn body(raw: &str) -> Result<String, AppError> {
        let b = raw.trim().replace("\r\n", "\n");
        if b.is_empty() {
            return Err(AppError::field("body", "must not be empty"));
        }
        if b.chars().count() > MAX_MESSAGE_CHARS {
            return Err(AppError::field(
                "body",
                format!("must be at most {MAX_MESSAGE_CHARS} characters"),
            ));
        }
        if b.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(AppError::field("body", "must be plain text"));
        }
        Ok(b)
    }

    async fn to_dtos<C: ConnectionTrait>(
        db: &C,
        rows: Vec<message::Model>,
    ) -> Result<Vec<MessageDto>, AppError> {
        let mut ids: Vec<Uuid> = rows.iter().map(|m| m.author_id).collect();
        for m in &rows {
            let mentioned: Vec<Uuid> = serde_json::from_str(&m.mentions).unwrap_or_default();
            ids.extend(mentioned);
        }
        ids.sort();
        ids.dedup();
        let names = crate::cases::ssr::names(db, ids).await?;
        Ok(rows
            .into_iter()
            .map(|m| {
                let mentioned: Vec<Uuid> = serde_json::from_str(&m.mentions).unwrap_or_default();
                MessageDto {
                    id: m.id,
                    case_id: m.case_id,
                    author_id: m.author_id,
                    author: names.get(&m.author_id).cloned().unwrap_or_default(),
                    body: m.body,
                    finding_id: m.finding_id,
                    instance_id: m.instance_id,
                    frame: m.frame,
                    mentions: mentioned
                        .iter()
                        .filter_map(|u| names.get(u).cloned())
                        .collect(),
                    created_at: m.created_at,
                    edited_at: m.edited_at,
                }
            })
            .collect())
    }

    /// Messages of a visible case after `after` (exclusive), oldest first.
    pub async fn list(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Vec<MessageDto>, AppError> {
        let case = find_visible(db, actor, case_id).await?;
        after_id(db, case.id, after, limit).await
    }

    /// The same without the visibility check, for a stream already checked.
    pub async fn after_id<C: ConnectionTrait>(
        db: &C,
        case_id: Uuid,
        after: i64,
        limit: u64,
    ) -> Result<Vec<MessageDto>, AppError> {
        let rows = message::Entity::find()
            .filter(message::Column::CaseId.eq(case_id))
            .filter(message::Column::Id.gt(after))
            .order_by_asc(message::Column::Id)
            .limit(limit.clamp(1, 500))
            .all(db)
            .await?;
        to_dtos(db, rows).await
    }

    /// Messages up to `upto` edited after `since` (sockets resend them).
    pub async fn edited_since<C: ConnectionTrait>(
        db: &C,
        case_id: Uuid,
        since: chrono::DateTime<chrono::Utc>,
        upto: i64,
    ) -> Result<Vec<MessageDto>, AppError> {
        let rows = message::Entity::find()
            .filter(message::Column::CaseId.eq(case_id))
            .filter(message::Column::Id.lte(upto))
            .filter(message::Column::EditedAt.gt(since))
            .order_by_asc(message::Column::Id)
            .limit(500)
            .all(db)
            .await?;
        to_dtos(db, rows).await
    }

    /// The people a message's handles name who can see the case.
    async fn mentioned<C: ConnectionTrait>(
        db: &C,
        c: &case::Model,
        text: &str,
    ) -> Result<Vec<Uuid>, AppError> {
        let handles = mention_handles(text);
        if handles.is_empty() {
            return Ok(Vec::new());
        }
        let people = user::Entity::find()
            .filter(user::Column::OrgId.eq(c.org_id))
            .filter(user::Column::Enabled.eq(true))
            .all(db)
            .await?;
        let members: Vec<Uuid> = case_member::Entity::find()
            .filter(case_member::Column::CaseId.eq(c.id))
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.user_id)
            .collect();
        let mut out = Vec::new();
        for u in people {
            let email = u.email.to_lowercase();
            let local = email.split('@').next().unwrap_or_default().to_owned();
            if !handles.iter().any(|h| *h == email || *h == local) {
                continue;
            }
            let sees = u.role == Role::Radiologist.as_str()
                || u.id == c.owner_id
                || members.contains(&u.id);
            if sees && !out.contains(&u.id) {
                out.push(u.id);
            }
        }
        Ok(out)
    }

    /// Posts a message; returns it and whether PostgreSQL must be told.
    pub async fn post(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        input: NewMessage,
    ) -> Result<MessageDto, AppError> {
        let text = body(&input.body)?;
        if !rate_ok(actor.user_id) {
            return Err(AppError::RateLimited);
        }
        let txn = write_txn(db).await?;
        let c = find_visible(&txn, actor, case_id).await?;
        if let Some(f) = input.finding_id {
            finding::Entity::find_by_id(f)
                .filter(finding::Column::CaseId.eq(c.id))
                .one(&txn)
                .await?
                .ok_or_else(|| AppError::field("finding_id", "is not a finding of this case"))?;
        }
        if let Some(i) = input.instance_id {
            let found = instance::Entity::find_by_id(i)
                .filter(instance::Column::OrgId.eq(c.org_id))
                .one(&txn)
                .await?;
            let ok = match found {
                Some(inst) => entity::study::Entity::find_by_id(inst.study_id)
                    .filter(entity::study::Column::CaseId.eq(c.id))
                    .one(&txn)
                    .await?
                    .is_some(),
                None => false,
            };
            if !ok {
                return Err(AppError::field(
                    "instance_id",
                    "is not an image of this case",
                ));
            }
        }
        if input.frame.is_some_and(|f| !(0..=100_000).contains(&f)) {
            return Err(AppError::field("frame", "is out of range"));
        }
        let mentions: Vec<Uuid> = mentioned(&txn, &c, &text)
            .await?
            .into_iter()
            .filter(|u| *u != actor.user_id)
            .collect();
        let at = now();
        let m = message::ActiveModel {
            org_id: Set(c.org_id),
            case_id: Set(c.id),
            author_id: Set(actor.user_id),
            body: Set(text),
            finding_id: Set(input.finding_id),
            instance_id: Set(input.instance_id),
            frame: Set(input.frame),
            mentions: Set(serde_json::to_string(&mentions).unwrap_or_else(|_| "[]".into())),
            created_at: Set(at),
            edited_at: Set(None),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        for u in &mentions {
            notification::ActiveModel {
                org_id: Set(c.org_id),
                user_id: Set(*u),
                case_id: Set(c.id),
                message_id: Set(m.id),
                kind: Set("mention".into()),
                created_at: Set(at),
                read_at: Set(None),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
        }
        notify_pg(&txn, c.id).await?;
        txn.commit().await?;
        Ok(to_dtos(db, vec![m]).await?.remove(0))
    }

    /// Other replicas learn of the message at commit (PostgreSQL NOTIFY).
    async fn notify_pg<C: ConnectionTrait>(txn: &C, case_id: Uuid) -> Result<(), AppError> {
        if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            txn.execute(sea_orm::Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT pg_notify('medvision_chat', $1)",
                [case_id.to_string().into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// The author edits within five minutes; the edit is shown.
    pub async fn edit(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        message_id: i64,
        input: MessageEdit,
    ) -> Result<MessageDto, AppError> {
        let text = body(&input.body)?;
        let txn = write_txn(db).await?;
        let c = find_visible(&txn, actor, case_id).await?;
        let m = message::Entity::find_by_id(message_id)
            .filter(message::Column::CaseId.eq(c.id))
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound)?;
        if m.author_id != actor.user_id {
            return Err(AppError::Forbidden);
        }
        if (now() - m.created_at).num_seconds() > EDIT_WINDOW_SECS {
            return Err(AppError::Conflict(
                "Messages can be edited for five minutes after posting.".into(),
            ));
        }
        let mut am: message::ActiveModel = m.into();
        am.body = Set(text);
        am.edited_at = Set(Some(now()));
        let m = am.update(&txn).await?;
        notify_pg(&txn, c.id).await?;
        txn.commit().await?;
        Ok(to_dtos(db, vec![m]).await?.remove(0))
    }

    /// The actor's notifications, newest first, with the number unread.
    pub async fn notifications(
        db: &DatabaseConnection,
        actor: &Actor,
    ) -> Result<(Vec<NotificationDto>, u64), AppError> {
        // Only cases the actor can still see.
        let visible_cases = case::Entity::find()
            .select_only()
            .column(case::Column::Id)
            .filter(visible(actor))
            .into_tuple::<Uuid>()
            .all(db)
            .await?;
        let rows = notification::Entity::find()
            .filter(notification::Column::UserId.eq(actor.user_id))
            .filter(notification::Column::CaseId.is_in(visible_cases))
            .order_by_desc(notification::Column::Id)
            .limit(100)
            .all(db)
            .await?;
        let unread = rows.iter().filter(|n| n.read_at.is_none()).count() as u64;
        let msgs = message::Entity::find()
            .filter(
                message::Column::Id.is_in(rows.iter().map(|n| n.message_id).collect::<Vec<_>>()),
            )
            .all(db)
            .await?;
        let dtos = to_dtos(db, msgs).await?;
        let by_id: HashMap<i64, &MessageDto> = dtos.iter().map(|m| (m.id, m)).collect();
        Ok((
            rows.into_iter()
                .map(|n| {
                    let m = by_id.get(&n.message_id);
                    NotificationDto {
                        id: n.id,
                        case_id: n.case_id,
                        message_id: n.message_id,
                        kind: n.kind,
                        from: m.map(|m| m.author.clone()).unwrap_or_default(),
                        excerpt: m
                            .map(|m| m.body.chars().take(140).collect())
                            .unwrap_or_default(),
                        created_at: n.created_at,
                        read: n.read_at.is_some(),
                    }
                })
                .collect(),
            unread,
        ))
    }

    /// Marks the actor's notifications read (all, or those of one case).
    pub async fn mark_read(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Option<Uuid>,
    ) -> Result<u64, AppError> {
        use sea_orm::sea_query::Expr;
        let mut q = notification::Entity::update_many()
            .col_expr(notification::Column::ReadAt, Expr::value(now()))
            .filter(notification::Column::UserId.eq(actor.user_id))
            .filter(notification::Column::ReadAt.is_null());
        if let Some(c) = case_id {
            q = q.filter(notification::Column::CaseId.eq(c));
        }
        Ok(q.exec(db).await?.rows_affected)
    }
}

#[server(prefix = "/sfn", endpoint = "case_messages", input = server_fn::codec::GetUrl)]
pub async fn case_messages(case_id: String) -> Result<Vec<MessageDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            let actor = require_user()?;
            let db = &state()?.db;
            let list = ssr::list(db, &actor, id, 0, 500).await?;
            // Opening the conversation reads its mentions.
            ssr::mark_read(db, &actor, Some(id)).await?;
            Ok(list)
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "post_message")]
pub async fn post_message(case_id: String, body: String) -> Result<MessageDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            let m = ssr::post(
                &state()?.db,
                &require_user()?,
                id,
                NewMessage {
                    body,
                    ..Default::default()
                },
            )
            .await?;
            crate::ssr::chat_posted(m.case_id);
            Ok(m)
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "notifications", input = server_fn::codec::GetUrl)]
pub async fn notifications() -> Result<(Vec<NotificationDto>, u64), AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(ssr::notifications(&state()?.db, &require_user()?).await)
}

/// The case conversation: messages oldest first, live over a websocket
/// (a hint to re-read), and a box to post. Text is rendered as text.
#[component]
pub fn ChatPanel(case_id: Uuid) -> impl IntoView {
    use crate::ui::{CsrfField, FieldErr, FormError};
    let tick = RwSignal::new(0u32);
    live_ws(case_id, tick);
    let post = ServerAction::<PostMessage>::new();
    let messages = Resource::new(
        move || (tick.get(), post.version().get()),
        move |_| case_messages(case_id.to_string()),
    );
    view! {
        <section class="card" id="chat">
            <h2>"Discussion"</h2>
            <Transition fallback=|| view! { <p>"Loading messages…"</p> }>
                {move || messages.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No messages yet. Mention a colleague with @ and their e-mail name."</p> }.into_any(),
                    Ok(list) => view! {
                        <ol class="messages">
                            {list.into_iter().map(|m| view! {
                                <li data-message=m.id.to_string()>
                                    <span class="author">{m.author.clone()}</span>
                                    <span class="muted small">" "{m.created_at.format("%Y-%m-%d %H:%M").to_string()}
                                        {m.edited_at.map(|_| " (edited)")}</span>
                                    <p class="prewrap body">{m.body.clone()}</p>
                                    {m.finding_id.map(|f| view! { <a class="small" href=format!("#finding-{f}")>"about a finding"</a> })}
                                    {m.instance_id.map(|i| view! {
                                        <a class="small" href=format!("/cases/{case_id}?image={i}&frame={}", m.frame.unwrap_or(0))>"open the image"</a>
                                    })}
                                </li>
                            }).collect_view()}
                        </ol>
                    }.into_any(),
                })}
            </Transition>
            <ActionForm action=post attr:class="stack chat-form">
                <CsrfField/>
                <input type="hidden" name="case_id" value=case_id.to_string()/>
                <textarea name="body" rows="2" maxlength="4000" required placeholder="Write to the people on this case"></textarea>
                <FieldErr value=post.value() name="body"/>
                <FormError value=post.value()/>
                <button type="submit">"Send"</button>
            </ActionForm>
        </section>
    }
}

/// In the browser: a websocket on the case's chat that bumps `tick` on
/// every message, and reconnects after a drop (the re-read catches up).
fn live_ws(case_id: Uuid, tick: RwSignal<u32>) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        use wasm_bindgen::closure::Closure;
        use wasm_bindgen::JsCast;
        fn connect(case_id: Uuid, tick: RwSignal<u32>) {
            let Some(w) = web_sys::window() else { return };
            let Ok(loc) = w.location().host() else { return };
            let scheme = if w.location().protocol().ok().as_deref() == Some("https:") {
                "wss"
            } else {
                "ws"
            };
            let url = format!("{scheme}://{loc}/api/v1/cases/{case_id}/chat");
            let Ok(ws) = web_sys::WebSocket::new(&url) else {
                return;
            };
            let on_msg = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |_| {
                tick.update(|t| *t = t.wrapping_add(1));
            });
            ws.set_onmessage(Some(on_msg.as_ref().unchecked_ref()));
            on_msg.forget();
            let on_close = Closure::<dyn FnMut()>::new(move || {
                let again = Closure::<dyn FnMut()>::new(move || {
                    tick.update(|t| *t = t.wrapping_add(1));
                    connect(case_id, tick);
                });
                if let Some(w) = web_sys::window() {
                    let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                        again.as_ref().unchecked_ref(),
                        2000,
                    );
                }
                again.forget();
            });
            ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
            on_close.forget();
        }
        connect(case_id, tick);
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (case_id, tick);
}

/// `/notifications`: mentions of the signed-in user, newest first.
#[component]
pub fn NotificationsPage() -> impl IntoView {
    let list = Resource::new(|| (), |_| notifications());
    view! {
        <section class="card">
            <h1>"Notifications"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || list.get().map(|r| match r {
                    Err(e) => view! { <crate::ui::Problem error=e/> }.into_any(),
                    Ok((items, _)) if items.is_empty() => view! { <p class="muted">"Nothing yet."</p> }.into_any(),
                    Ok((items, _)) => view! {
                        <ul class="notifications">
                            {items.into_iter().map(|n| view! {
                                <li class:unread=!n.read>
                                    <a href=format!("/cases/{}#chat", n.case_id)>{n.from.clone()}" mentioned you"</a>
                                    <span class="muted small">" "{n.created_at.format("%Y-%m-%d %H:%M").to_string()}</span>
                                    <p class="prewrap">{n.excerpt.clone()}</p>
                                </li>
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::mention_handles;

    #[test]
    fn handles_are_found_once_lowercased_without_trailing_punctuation() {
        assert_eq!(
            mention_handles(
                "@Radiologist, please look. cc @doctor@alpha.example: thanks @radiologist"
            ),
            vec!["radiologist", "doctor@alpha.example"]
        );
        assert!(mention_handles("e-mail me at a@b.example").is_empty());
        assert!(mention_handles("@ alone").is_empty());
    }
}
