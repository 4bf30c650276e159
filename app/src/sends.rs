//! Sending a case's results to the organisation's PACS: the outbox rows a
//! signature (for destinations marked "send on sign") or a reader's request
//! queues, and their delivery state. The server delivers them (DICOM
//! C-STORE of a Comprehensive SR) with retries; this module only records
//! what is wanted and shows what happened.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One delivery of a case's results to one destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DicomSendDto {
    pub id: Uuid,
    /// The destination's AE title.
    pub destination: String,
    /// `queued`, `sending`, `sent` or `failed` (attempts exhausted).
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Body of `POST /api/v1/cases/{id}/dicom/send`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SendInput {
    /// One destination's AE title; absent sends to every destination.
    #[serde(default)]
    pub destination: Option<String>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::audit::ssr::{append, Entry};
    use crate::cases::ssr::find_visible;
    use crate::domain::Role;
    use crate::ssr::{now, write_txn, Actor};
    use entity::{dicom_node, dicom_send, report};
    use sea_orm::{
        ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
        QueryFilter, QueryOrder, Set,
    };

    pub const DESTINATION: &str = "destination";

    async fn queue(
        c: &DatabaseTransaction,
        actor: &Actor,
        case_id: Uuid,
        nodes: Vec<dicom_node::Model>,
        automatic: bool,
    ) -> Result<Vec<DicomSendDto>, AppError> {
        let at = now();
        let mut out = Vec::with_capacity(nodes.len());
        for n in nodes {
            let m = dicom_send::ActiveModel {
                id: Set(Uuid::new_v4()),
                org_id: Set(actor.org_id),
                case_id: Set(case_id),
                node_id: Set(n.id),
                state: Set("queued".into()),
                attempts: Set(0),
                last_error: Set(None),
                requested_by: Set(actor.user_id),
                created_at: Set(at),
                next_at: Set(at),
                sent_at: Set(None),
            }
            .insert(c)
            .await?;
            append(
                c,
                Entry::by(actor, "dicom.send_queued", "case", case_id).details(serde_json::json!({
                    "destination": n.ae_title,
                    "automatic": automatic,
                    "send": m.id,
                })),
            )
            .await?;
            out.push(to_dto(m, n.ae_title));
        }
        Ok(out)
    }

    fn to_dto(m: dicom_send::Model, destination: String) -> DicomSendDto {
        DicomSendDto {
            id: m.id,
            destination,
            state: m.state,
            attempts: m.attempts,
            last_error: m.last_error,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }

    /// In the signing transaction: queue the results for every destination
    /// of the organisation marked "send on sign".
    pub async fn queue_on_sign(
        c: &DatabaseTransaction,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<usize, AppError> {
        let nodes = dicom_node::Entity::find()
            .filter(dicom_node::Column::OrgId.eq(actor.org_id))
            .filter(dicom_node::Column::Kind.eq(DESTINATION))
            .filter(dicom_node::Column::SendOnSign.eq(true))
            .all(c)
            .await?;
        Ok(queue(c, actor, case_id, nodes, true).await?.len())
    }

    /// A reader (radiologist or admin) asks for the signed results to go to
    /// one or every destination now.
    pub async fn request(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        input: SendInput,
    ) -> Result<Vec<DicomSendDto>, AppError> {
        if actor.role != Role::Radiologist && actor.role != Role::Admin {
            return Err(AppError::Forbidden);
        }
        find_visible(db, actor, case_id).await?;
        let signed = report::Entity::find()
            .filter(report::Column::CaseId.eq(case_id))
            .filter(report::Column::OrgId.eq(actor.org_id))
            .filter(report::Column::Status.eq("signed"))
            .one(db)
            .await?;
        if signed.is_none() {
            return Err(AppError::Conflict(
                "Only a signed report is sent to the PACS; sign it first.".into(),
            ));
        }
        let mut q = dicom_node::Entity::find()
            .filter(dicom_node::Column::OrgId.eq(actor.org_id))
            .filter(dicom_node::Column::Kind.eq(DESTINATION));
        if let Some(d) = input.destination.as_deref().map(str::trim) {
            q = q.filter(dicom_node::Column::AeTitle.eq(d));
        }
        let nodes = q.all(db).await?;
        if nodes.is_empty() {
            return Err(match input.destination {
                Some(_) => AppError::NotFound,
                None => AppError::Conflict(
                    "No DICOM destination is configured for the organisation.".into(),
                ),
            });
        }
        let txn = write_txn(db).await?;
        let out = queue(&txn, actor, case_id, nodes, false).await?;
        txn.commit().await?;
        Ok(out)
    }

    /// The case's deliveries, newest first.
    pub async fn list(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<Vec<DicomSendDto>, AppError> {
        find_visible(db, actor, case_id).await?;
        let rows = dicom_send::Entity::find()
            .filter(dicom_send::Column::CaseId.eq(case_id))
            .filter(dicom_send::Column::OrgId.eq(actor.org_id))
            .order_by_desc(dicom_send::Column::CreatedAt)
            .all(db)
            .await?;
        let nodes: std::collections::HashMap<Uuid, String> = dicom_node::Entity::find()
            .filter(dicom_node::Column::OrgId.eq(actor.org_id))
            .all(db)
            .await?
            .into_iter()
            .map(|n| (n.id, n.ae_title))
            .collect();
        Ok(rows
            .into_iter()
            .map(|m| {
                let d = nodes.get(&m.node_id).cloned().unwrap_or_default();
                to_dto(m, d)
            })
            .collect())
    }
}

#[server(prefix = "/sfn", endpoint = "case_dicom_sends", input = server_fn::codec::GetUrl)]
pub async fn case_dicom_sends(case_id: String) -> Result<Vec<DicomSendDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            ssr::list(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "send_to_pacs")]
pub async fn send_to_pacs(case_id: String) -> Result<Vec<DicomSendDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            ssr::request(&state()?.db, &require_user()?, id, SendInput::default()).await
        }
        .await,
    )
}

/// Where the signed results went: each delivery to the PACS with its state,
/// and (for readers) a button to send them again.
#[component]
pub fn PacsPanel(case_id: Uuid, reader: bool) -> impl IntoView {
    use crate::ui::{CsrfField, FormError};
    let send = ServerAction::<SendToPacs>::new();
    let sends = Resource::new(
        move || send.version().get(),
        move |_| case_dicom_sends(case_id.to_string()),
    );
    view! {
        <section class="pacs">
            <h4>"PACS"</h4>
            <Transition fallback=|| ()>
                {move || sends.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted small">"Not sent to a PACS yet."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <ul class="sends">
                            {list.into_iter().map(|s| {
                                let when = s.sent_at.unwrap_or(s.created_at).format("%Y-%m-%d %H:%M UTC").to_string();
                                let detail = s.last_error.clone().map(|e| format!(" ({e})")).unwrap_or_default();
                                view! {
                                    <li data-state=s.state.clone()>
                                        {s.destination.clone()}": "{s.state.clone()}", "{when}
                                        " · attempts "{s.attempts}{detail}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                })}
            </Transition>
            {reader.then(|| view! {
                <ActionForm action=send attr:class="row">
                    <CsrfField/>
                    <input type="hidden" name="case_id" value=case_id.to_string()/>
                    <button type="submit">"Send to PACS"</button>
                    <FormError value=send.value()/>
                </ActionForm>
            })}
        </section>
    }
}
