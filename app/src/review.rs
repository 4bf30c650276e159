//! Human review of AI findings: a radiologist accepts, rejects (with a
//! reason) or edits each suggestion, and adds findings the models missed.
//! Every decision is a new row (the latest is current, the history stays)
//! and an audit row with before and after. These confirmed labels are the
//! ground truth for model performance.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A reader's current decision on a finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReviewDto {
    pub id: Uuid,
    pub finding_id: Option<Uuid>,
    pub study_id: Option<Uuid>,
    /// `accepted`, `rejected`, `edited` or `added`.
    pub decision: String,
    pub label: String,
    /// The reader's call: present or not.
    pub present: bool,
    pub location: Option<String>,
    pub reason: Option<String>,
    pub reviewer: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// `POST /api/v1/cases/{id}/findings/{finding}/review`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReviewInput {
    /// `accept`, `reject` or `edit`.
    pub decision: String,
    /// Required to reject.
    #[serde(default)]
    pub reason: Option<String>,
    /// For `edit`: the corrected label (default: the AI's).
    #[serde(default)]
    pub label: Option<String>,
    /// For `edit`: present or not (default: the AI's call).
    #[serde(default)]
    pub present: Option<bool>,
    #[serde(default)]
    pub location: Option<String>,
}

/// `POST /api/v1/cases/{id}/findings`: a finding the models missed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AddFindingInput {
    pub label: String,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub study_id: Option<Uuid>,
    #[serde(default)]
    pub note: Option<String>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::audit::ssr::{append, Entry};
    use crate::cases::ssr::find_visible;
    use crate::domain::Role;
    use crate::ssr::{now, write_txn, Actor};
    use entity::{finding, finding_review};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
        EntityTrait, QueryFilter, QueryOrder,
    };
    use std::collections::HashMap;

    fn text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, AppError> {
        let v = v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        if v.as_ref().is_some_and(|s| s.chars().count() > max) {
            return Err(AppError::field(
                field,
                format!("must be at most {max} characters"),
            ));
        }
        Ok(v)
    }

    fn label(v: &str) -> Result<String, AppError> {
        let v = v.trim();
        if v.is_empty() || v.chars().count() > 64 {
            return Err(AppError::field("label", "must be 1 to 64 characters"));
        }
        if v.chars().any(char::is_control) {
            return Err(AppError::field("label", "must be plain text"));
        }
        Ok(v.to_owned())
    }

    /// Every review row of a case, oldest first, with reviewer names.
    pub async fn case_reviews<C: ConnectionTrait>(
        db: &C,
        case_id: Uuid,
    ) -> Result<Vec<ReviewDto>, AppError> {
        let rows = finding_review::Entity::find()
            .filter(finding_review::Column::CaseId.eq(case_id))
            .order_by_asc(finding_review::Column::CreatedAt)
            .all(db)
            .await?;
        let names =
            crate::cases::ssr::names(db, rows.iter().map(|r| r.reviewer_id).collect()).await?;
        Ok(rows
            .into_iter()
            .map(|r| ReviewDto {
                reviewer: names.get(&r.reviewer_id).cloned().unwrap_or_default(),
                id: r.id,
                finding_id: r.finding_id,
                study_id: r.study_id,
                decision: r.decision,
                label: r.label,
                present: r.present,
                location: r.location,
                reason: r.reason,
                created_at: r.created_at,
            })
            .collect())
    }

    /// The current decision per AI finding (the latest row).
    pub async fn latest_by_finding<C: ConnectionTrait>(
        db: &C,
        case_id: Uuid,
    ) -> Result<HashMap<Uuid, ReviewDto>, AppError> {
        let mut out = HashMap::new();
        for r in case_reviews(db, case_id).await? {
            if let Some(f) = r.finding_id {
                out.insert(f, r);
            }
        }
        Ok(out)
    }

    /// A visible case's review history.
    pub async fn list(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<Vec<ReviewDto>, AppError> {
        let case = find_visible(db, actor, case_id).await?;
        case_reviews(db, case.id).await
    }

    pub async fn review_finding(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        finding_id: Uuid,
        input: ReviewInput,
    ) -> Result<ReviewDto, AppError> {
        actor.require_role(Role::Radiologist)?;
        let reason = text("reason", input.reason, 2000)?;
        let location = text("location", input.location, 200)?;
        let txn = write_txn(db).await?;
        let case = find_visible(&txn, actor, case_id).await?;
        let f = finding::Entity::find_by_id(finding_id)
            .filter(finding::Column::CaseId.eq(case.id))
            .one(&txn)
            .await?
            .ok_or(AppError::NotFound)?;
        let (decision, label_v, present) = match input.decision.trim() {
            "accept" => ("accepted", f.label.clone(), f.positive),
            "reject" => {
                if reason.is_none() {
                    return Err(AppError::field("reason", "is required to reject a finding"));
                }
                ("rejected", f.label.clone(), !f.positive)
            }
            "edit" => (
                "edited",
                match input.label.as_deref() {
                    Some(l) => label(l)?,
                    None => f.label.clone(),
                },
                input.present.unwrap_or(f.positive),
            ),
            _ => {
                return Err(AppError::field(
                    "decision",
                    "must be accept, reject or edit",
                ))
            }
        };
        let before = match latest_by_finding(&txn, case.id).await?.remove(&f.id) {
            Some(r) => serde_json::json!({
                "decision": r.decision, "label": r.label, "present": r.present,
                "location": r.location, "reason": r.reason,
            }),
            None => serde_json::json!({
                "decision": "pending", "label": f.label, "present": f.positive,
                "probability": f.probability, "model": f.model, "model_version": f.model_version,
            }),
        };
        let row = finding_review::ActiveModel {
            id: Set(Uuid::new_v4()),
            org_id: Set(case.org_id),
            case_id: Set(case.id),
            finding_id: Set(Some(f.id)),
            study_id: Set(Some(f.study_id)),
            decision: Set(decision.into()),
            label: Set(label_v),
            present: Set(present),
            location: Set(location),
            reason: Set(reason),
            reviewer_id: Set(actor.user_id),
            created_at: Set(now()),
        }
        .insert(&txn)
        .await?;
        let after = serde_json::json!({
            "decision": row.decision, "label": row.label, "present": row.present,
            "location": row.location, "reason": row.reason,
        });
        let mut e = Entry::by(actor, "finding.reviewed", "finding", f.id);
        e.details = serde_json::json!({"case": case.id, "before": before, "after": after});
        append(&txn, e).await?;
        txn.commit().await?;
        Ok(ReviewDto {
            id: row.id,
            finding_id: row.finding_id,
            study_id: row.study_id,
            decision: row.decision,
            label: row.label,
            present: row.present,
            location: row.location,
            reason: row.reason,
            reviewer: actor.name.clone(),
            created_at: row.created_at,
        })
    }

    pub async fn add_finding(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        input: AddFindingInput,
    ) -> Result<ReviewDto, AppError> {
        actor.require_role(Role::Radiologist)?;
        let label_v = label(&input.label)?;
        let location = text("location", input.location, 200)?;
        let note = text("note", input.note, 2000)?;
        let txn = write_txn(db).await?;
        let case = find_visible(&txn, actor, case_id).await?;
        if let Some(s) = input.study_id {
            entity::study::Entity::find_by_id(s)
                .filter(entity::study::Column::CaseId.eq(case.id))
                .one(&txn)
                .await?
                .ok_or_else(|| AppError::field("study_id", "is not a study of this case"))?;
        }
        let row = finding_review::ActiveModel {
            id: Set(Uuid::new_v4()),
            org_id: Set(case.org_id),
            case_id: Set(case.id),
            finding_id: Set(None),
            study_id: Set(input.study_id),
            decision: Set("added".into()),
            label: Set(label_v),
            present: Set(true),
            location: Set(location),
            reason: Set(note),
            reviewer_id: Set(actor.user_id),
            created_at: Set(now()),
        }
        .insert(&txn)
        .await?;
        let mut e = Entry::by(actor, "finding.added", "finding_review", row.id);
        e.details = serde_json::json!({
            "case": case.id, "before": null,
            "after": {"label": row.label, "location": row.location, "study": row.study_id},
        });
        append(&txn, e).await?;
        txn.commit().await?;
        Ok(ReviewDto {
            id: row.id,
            finding_id: None,
            study_id: row.study_id,
            decision: row.decision,
            label: row.label,
            present: true,
            location: row.location,
            reason: row.reason,
            reviewer: actor.name.clone(),
            created_at: row.created_at,
        })
    }
}

#[server(prefix = "/sfn", endpoint = "review_finding")]
pub async fn review_finding(
    case_id: String,
    finding_id: String,
    decision: String,
    reason: Option<String>,
    label: Option<String>,
    present: Option<String>,
) -> Result<ReviewDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let case_id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            let finding_id = Uuid::parse_str(&finding_id).map_err(|_| AppError::NotFound)?;
            let input = ReviewInput {
                decision,
                reason,
                label: label.filter(|l| !l.trim().is_empty()),
                present: present.as_deref().map(|p| p == "present"),
                location: None,
            };
            ssr::review_finding(&state()?.db, &require_user()?, case_id, finding_id, input).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "add_finding")]
pub async fn add_finding(
    case_id: String,
    label: String,
    location: Option<String>,
) -> Result<ReviewDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let case_id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            let input = AddFindingInput {
                label,
                location,
                ..Default::default()
            };
            ssr::add_finding(&state()?.db, &require_user()?, case_id, input).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "case_reviews", input = server_fn::codec::GetUrl)]
pub async fn case_reviews(case_id: String) -> Result<Vec<ReviewDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let case_id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            ssr::list(&state()?.db, &require_user()?, case_id).await
        }
        .await,
    )
}
