//! The tamper-evident audit log: every change to accounts, roles and cases
//! appends one row whose hash covers the row and the previous row's hash.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The result of re-computing the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ChainReport {
    pub rows: u64,
    /// The first row whose stored hash or link does not match, with why.
    pub first_broken: Option<BrokenLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

/// One audit row as an admin reads it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditRowDto {
    pub seq: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor_id: Option<Uuid>,
    pub actor: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// The recorded details (before/after), as stored.
    pub details: serde_json::Value,
}

/// Filters of the audit page and `GET /api/v1/admin/audit`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
pub struct AuditFilter {
    /// The acting user's e-mail.
    #[serde(default)]
    pub user: Option<String>,
    /// A case id: rows about the case or anything under it.
    #[serde(default)]
    pub case: Option<Uuid>,
    /// An action, e.g. `report.signed`, or a prefix ending in `.` (`report.`).
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub limit: Option<u64>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::{AuditFilter, AuditRowDto, BrokenLink, ChainReport};
    use crate::error::AppError;
    use crate::ssr::{now, Actor};
    use entity::audit_log;
    use sea_orm::{
        ActiveValue::Set, ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait,
        QueryOrder, QuerySelect, Statement, StreamTrait,
    };
    use sha2::{Digest, Sha256};
    use uuid::Uuid;

    /// Hash of the (empty) row before the first one.
    pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    /// What happened, to what, by whom.
    pub struct Entry {
        pub org_id: Option<Uuid>,
        pub actor_id: Option<Uuid>,
        pub action: &'static str,
        pub target_type: &'static str,
        pub target_id: Option<String>,
        pub details: serde_json::Value,
    }

    impl Entry {
        /// An action by a signed-in user within their organisation.
        pub fn by(
            actor: &Actor,
            action: &'static str,
            target_type: &'static str,
            target_id: impl ToString,
        ) -> Self {
            Self {
                org_id: Some(actor.org_id),
                actor_id: Some(actor.user_id),
                action,
                target_type,
                target_id: Some(target_id.to_string()),
                details: serde_json::Value::Null,
            }
        }

        pub fn details(mut self, details: serde_json::Value) -> Self {
            self.details = details;
            self
        }

        /// `{"before": …, "after": …, "changed": [fields]}` with the values
        /// of `redact` replaced: the audit log is read by administrators,
        /// who must learn that a patient field changed, never what it says.
        pub fn change_redacted<B: serde::Serialize, A: serde::Serialize>(
            self,
            before: &B,
            after: &A,
            redact: &[&str],
        ) -> Self {
            let mut b = serde_json::to_value(before).unwrap_or_default();
            let mut a = serde_json::to_value(after).unwrap_or_default();
            let mut changed: Vec<String> = Vec::new();
            if let Some(ao) = a.as_object() {
                for (k, v) in ao {
                    if b.get(k) != Some(v) {
                        changed.push(k.clone());
                    }
                }
            }
            changed.sort();
            for v in [&mut b, &mut a] {
                if let Some(o) = v.as_object_mut() {
                    for f in redact {
                        if let Some(x) = o.get_mut(*f) {
                            if !x.is_null() {
                                *x = serde_json::Value::String("[redacted]".into());
                            }
                        }
                    }
                }
            }
            self.details(serde_json::json!({ "before": b, "after": a, "changed": changed }))
        }

        /// `{"before": …, "after": …}`.
        pub fn change<B: serde::Serialize, A: serde::Serialize>(
            self,
            before: &B,
            after: &A,
        ) -> Self {
            self.details(serde_json::json!({ "before": before, "after": after }))
        }
    }

    /// The canonical text a row's hash covers.
    fn canonical(m: &audit_log::Model) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            m.seq,
            m.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            m.org_id.map(|u| u.to_string()).unwrap_or_default(),
            m.actor_id.map(|u| u.to_string()).unwrap_or_default(),
            m.action,
            m.target_type,
            m.target_id.clone().unwrap_or_default(),
            m.details,
            m.prev_hash,
        )
    }

    pub fn row_hash(m: &audit_log::Model) -> String {
        hex::encode(Sha256::digest(canonical(m).as_bytes()))
    }

    /// Appends one row inside the caller's transaction, so the change and its
    /// audit row commit together or not at all. The transaction must come
    /// from [`crate::ssr::write_txn`] (SQLite write lock held); on PostgreSQL
    /// an advisory lock serialises appenders across processes. `seq` is the
    /// primary key, so even without the lock the chain could never fork.
    pub async fn append(txn: &DatabaseTransaction, e: Entry) -> Result<(), AppError> {
        if txn.get_database_backend() == DatabaseBackend::Postgres {
            txn.execute(Statement::from_string(
                DatabaseBackend::Postgres,
                "SELECT pg_advisory_xact_lock(724311)",
            ))
            .await?;
        }
        let last = audit_log::Entity::find()
            .order_by_desc(audit_log::Column::Seq)
            .limit(1)
            .one(txn)
            .await?;
        let (seq, prev_hash) = match last {
            Some(l) => (l.seq + 1, l.hash),
            None => (1, GENESIS.to_owned()),
        };
        let mut row = audit_log::Model {
            seq,
            at: now(),
            org_id: e.org_id,
            actor_id: e.actor_id,
            action: e.action.to_owned(),
            target_type: e.target_type.to_owned(),
            target_id: e.target_id,
            details: e.details.to_string(),
            prev_hash,
            hash: String::new(),
        };
        row.hash = row_hash(&row);
        audit_log::Entity::insert(audit_log::ActiveModel {
            seq: Set(row.seq),
            at: Set(row.at),
            org_id: Set(row.org_id),
            actor_id: Set(row.actor_id),
            action: Set(row.action),
            target_type: Set(row.target_type),
            target_id: Set(row.target_id),
            details: Set(row.details),
            prev_hash: Set(row.prev_hash),
            hash: Set(row.hash),
        })
        .exec_without_returning(txn)
        .await?;
        Ok(())
    }

    /// The admin's organisation's rows, newest first, filtered.
    pub async fn list(
        db: &sea_orm::DatabaseConnection,
        actor: &Actor,
        f: &AuditFilter,
    ) -> Result<Vec<AuditRowDto>, AppError> {
        use entity::user;
        use sea_orm::{ColumnTrait, Condition, QueryFilter};
        actor.require_role(crate::domain::Role::Admin)?;
        let mut q = audit_log::Entity::find().filter(audit_log::Column::OrgId.eq(actor.org_id));
        if let Some(email) = f.user.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            let u = user::Entity::find()
                .filter(user::Column::Email.eq(email.to_lowercase()))
                .filter(user::Column::OrgId.eq(actor.org_id))
                .one(db)
                .await?;
            match u {
                Some(u) => q = q.filter(audit_log::Column::ActorId.eq(u.id)),
                None => return Ok(Vec::new()),
            }
        }
        if let Some(c) = f.case {
            q = q.filter(
                Condition::any()
                    .add(audit_log::Column::TargetId.eq(c.to_string()))
                    .add(audit_log::Column::Details.contains(c.to_string())),
            );
        }
        if let Some(a) = f.action.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            if a.len() > 64 {
                return Err(AppError::field("action", "is too long"));
            }
            q = if let Some(prefix) = a.strip_suffix('.') {
                q.filter(audit_log::Column::Action.starts_with(format!("{prefix}.")))
            } else {
                q.filter(audit_log::Column::Action.eq(a))
            };
        }
        if let Some(from) = f.from {
            q = q.filter(audit_log::Column::At.gte(from));
        }
        if let Some(to) = f.to {
            q = q.filter(audit_log::Column::At.lte(to));
        }
        let rows = q
            .order_by_desc(audit_log::Column::Seq)
            .limit(f.limit.unwrap_or(500).clamp(1, 5000))
            .all(db)
            .await?;
        let ids: Vec<Uuid> = rows.iter().filter_map(|r| r.actor_id).collect();
        let names: std::collections::HashMap<Uuid, String> = if ids.is_empty() {
            Default::default()
        } else {
            user::Entity::find()
                .filter(user::Column::Id.is_in(ids))
                .all(db)
                .await?
                .into_iter()
                .map(|u| (u.id, u.email))
                .collect()
        };
        Ok(rows
            .into_iter()
            .map(|r| AuditRowDto {
                seq: r.seq,
                at: r.at,
                actor: r.actor_id.and_then(|a| names.get(&a).cloned()),
                actor_id: r.actor_id,
                action: r.action,
                target_type: r.target_type,
                target_id: r.target_id,
                details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    /// The rows as CSV (formula-looking cells quoted).
    pub fn csv(rows: &[AuditRowDto]) -> String {
        let mut out = String::from("seq,at,actor,action,target_type,target_id,details\r\n");
        for r in rows {
            let cells = [
                r.seq.to_string(),
                r.at.to_rfc3339(),
                r.actor.clone().unwrap_or_default(),
                r.action.clone(),
                r.target_type.clone(),
                r.target_id.clone().unwrap_or_default(),
                r.details.to_string(),
            ];
            out.push_str(&crate::ssr::csv_line(&cells));
        }
        out
    }

    /// Streams the whole log in order and re-computes every link.
    pub async fn verify<C: ConnectionTrait + StreamTrait>(db: &C) -> Result<ChainReport, AppError> {
        use futures_util::StreamExt;
        let mut stream = audit_log::Entity::find()
            .order_by_asc(audit_log::Column::Seq)
            .stream(db)
            .await?;
        let mut prev = GENESIS.to_owned();
        let mut expected_seq = 1i64;
        let mut rows = 0u64;
        while let Some(row) = stream.next().await {
            let row = row?;
            rows += 1;
            let broken = |reason: String| ChainReport {
                rows,
                first_broken: Some(BrokenLink {
                    seq: row.seq,
                    reason,
                }),
            };
            if row.seq != expected_seq {
                return Ok(broken(format!(
                    "expected row {expected_seq} next, found row {}: rows are missing",
                    row.seq
                )));
            }
            if row.prev_hash != prev {
                return Ok(broken("its link to the previous row does not match".into()));
            }
            if row_hash(&row) != row.hash {
                return Ok(broken(
                    "its content does not match its hash (the row was altered)".into(),
                ));
            }
            prev = row.hash.clone();
            expected_seq += 1;
        }
        Ok(ChainReport {
            rows,
            first_broken: None,
        })
    }
}

#[server(prefix = "/sfn", endpoint = "audit_rows", input = server_fn::codec::GetUrl)]
pub async fn audit_rows(filter: AuditFilter) -> Result<Vec<AuditRowDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(ssr::list(&state()?.db, &require_user()?, &filter).await)
}

#[server(prefix = "/sfn", endpoint = "audit_verify")]
pub async fn audit_verify() -> Result<ChainReport, AppError> {
    use crate::ssr::{fail, require_role, state};
    fail(
        async {
            require_role(crate::domain::Role::Admin)?;
            ssr::verify(&state()?.db).await
        }
        .await,
    )
}

/// `/admin/audit`: the organisation's audit trail for its admins, with
/// filters, the chain check and a CSV download.
#[component]
pub fn AuditPage() -> impl IntoView {
    use leptos_router::hooks::use_query_map;
    let q = use_query_map();
    let filter = Memo::new(move |_| {
        q.with(|q| AuditFilter {
            user: q.get("user").filter(|s| !s.is_empty()),
            case: q.get("case").and_then(|s| Uuid::parse_str(&s).ok()),
            action: q.get("action").filter(|s| !s.is_empty()),
            from: None,
            to: None,
            limit: Some(500),
        })
    });
    let rows = Resource::new(move || filter.get(), audit_rows);
    let verify = ServerAction::<AuditVerify>::new();
    let csv = move || {
        let f = filter.get();
        let mut qs = vec![];
        if let Some(u) = f.user {
            qs.push(format!("user={u}"));
        }
        if let Some(c) = f.case {
            qs.push(format!("case={c}"));
        }
        if let Some(a) = f.action {
            qs.push(format!("action={a}"));
        }
        format!("/api/v1/admin/audit.csv?{}", qs.join("&"))
    };
    view! {
        <section class="card">
            <h1>"Audit trail"</h1>
            <form method="get" class="row">
                <input name="user" placeholder="user e-mail" value=move || filter.get().user.unwrap_or_default()/>
                <input name="case" placeholder="case id" value=move || filter.get().case.map(|c| c.to_string()).unwrap_or_default()/>
                <input name="action" placeholder="action, e.g. report. or report.signed" value=move || filter.get().action.unwrap_or_default()/>
                <button type="submit">"Filter"</button>
                <a class="button" href=csv>"CSV"</a>
            </form>
            <ActionForm action=verify attr:class="inline">
                <crate::ui::CsrfField/>
                <button type="submit">"Verify the chain"</button>
            </ActionForm>
            {move || verify.value().get().map(|r| match r {
                Ok(ChainReport { rows, first_broken: None }) => view! { <p class="signature">{format!("Chain intact: {rows} rows verified.")}</p> }.into_any(),
                Ok(ChainReport { first_broken: Some(b), .. }) => view! { <p class="error">{format!("Chain broken at row {}: {}", b.seq, b.reason)}</p> }.into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || rows.get().map(|r| match r {
                    Err(e) => view! { <crate::ui::Problem error=e/> }.into_any(),
                    Ok(list) => view! {
                        <table class="table audit">
                            <thead><tr><th>"#"</th><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Target"</th><th>"Details"</th></tr></thead>
                            <tbody>{list.into_iter().map(|r| view! {
                                <tr><td>{r.seq}</td><td>{r.at.format("%Y-%m-%d %H:%M:%S").to_string()}</td>
                                    <td>{r.actor.clone().unwrap_or_else(|| "system".into())}</td><td class="mono">{r.action.clone()}</td>
                                    <td class="mono small">{format!("{} {}", r.target_type, r.target_id.clone().unwrap_or_default())}</td>
                                    <td class="mono small details">{r.details.to_string()}</td></tr>
                            }).collect_view()}</tbody>
                        </table>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}
