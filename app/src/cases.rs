//! Cases: the unit of work. Types, the data layer (the one place where case
//! visibility is decided), server functions and pages.

use crate::domain::{CaseStatus, Modality, Sex, Urgency};
use crate::error::AppError;
use crate::ui::{when, CsrfField, FieldErr, FormError, Problem};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A case as the API and the pages show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseDto {
    pub id: Uuid,
    pub patient_ref: String,
    pub age: Option<u8>,
    #[cfg_attr(feature = "ssr", schema(value_type = String, example = "F"))]
    pub sex: Sex,
    #[cfg_attr(feature = "ssr", schema(value_type = String, example = "CT"))]
    pub modality: Modality,
    pub body_part: String,
    #[cfg_attr(feature = "ssr", schema(value_type = String, example = "urgent"))]
    pub urgency: Urgency,
    /// The highest urgency among the models' findings (a suggestion).
    #[cfg_attr(feature = "ssr", schema(value_type = Option<String>, example = "stat"))]
    pub ai_urgency: Option<Urgency>,
    pub history: String,
    #[cfg_attr(feature = "ssr", schema(value_type = String, example = "open"))]
    pub status: CaseStatus,
    pub owner_id: Uuid,
    pub owner_name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A colleague on a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MemberDto {
    pub user_id: Uuid,
    pub name: String,
    pub email: String,
    #[cfg_attr(feature = "ssr", schema(value_type = String, example = "radiologist"))]
    pub role: crate::domain::Role,
    pub owner: bool,
}

/// The detail page: the case, who is on it and what the viewer may do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CaseDetail {
    #[serde(flatten)]
    pub case: CaseDto,
    pub members: Vec<MemberDto>,
    /// May close/reopen the case and add colleagues (owner, radiologists).
    pub can_manage: bool,
}

/// One page of the case list; `next` is an opaque cursor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CasePage {
    pub items: Vec<CaseDto>,
    pub next: Option<String>,
}

/// List filters, as query parameters (all optional).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    /// `open` or `closed`.
    pub status: Option<String>,
    /// `routine`, `urgent` or `stat`.
    pub urgency: Option<String>,
    /// `CT`, `MR`, `CR`, `DX`, `US` or `other`.
    pub modality: Option<String>,
    /// Searches patient reference, body part and history.
    pub q: Option<String>,
    /// Cursor from the previous page's `next`.
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
}

/// Body of `POST /api/v1/cases`, parsed field by field so every problem is
/// reported at once.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCaseInput {
    pub patient_ref: String,
    pub age: Option<i64>,
    pub sex: String,
    pub modality: String,
    pub body_part: String,
    pub urgency: String,
    #[serde(default)]
    pub history: Option<String>,
}

/// Body of `PATCH /api/v1/cases/{id}`: only the fields present change;
/// `"age": null` clears the age.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CasePatchInput {
    pub patient_ref: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<i64>))]
    pub age: Option<Option<i64>>,
    pub sex: Option<String>,
    pub modality: Option<String>,
    pub body_part: Option<String>,
    pub urgency: Option<String>,
    pub history: Option<String>,
    /// `open` or `closed`.
    pub status: Option<String>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Body of `POST /api/v1/cases/{id}/members`: a colleague by id or e-mail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMemberInput {
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::audit::ssr::{append, Entry};
    use crate::domain::{Age, BodyPart, ClinicalHistory, Email, Fields, PatientRef, Role};
    use crate::ssr::{now, write_txn, Actor};
    use base64::Engine;
    use entity::{case, case_member, user};
    use sea_orm::sea_query::{Expr, Func, LikeExpr, Query};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
        DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    };
    use std::collections::HashMap;

    /// Case fields that identify or describe the patient: the audit log
    /// records that they changed, not their values.
    const PATIENT_FIELDS: &[&str] = &["patient_ref", "age", "sex", "history"];

    /// The cases an actor may see. **Every** query for a case or anything
    /// under it starts here: same organisation always; radiologists read the
    /// whole organisation's worklist; everyone else only cases they own or
    /// were added to. Admins are not radiologists: managing accounts gives no
    /// access to patient data (minimum necessary).
    pub fn visible(actor: &Actor) -> Condition {
        let same_org = Condition::all().add(case::Column::OrgId.eq(actor.org_id));
        if actor.role == Role::Radiologist {
            return same_org;
        }
        let membership = Query::select()
            .column(case_member::Column::CaseId)
            .from(case_member::Entity)
            .and_where(case_member::Column::UserId.eq(actor.user_id))
            .to_owned();
        same_org.add(
            Condition::any()
                .add(case::Column::OwnerId.eq(actor.user_id))
                .add(case::Column::Id.in_subquery(membership)),
        )
    }

    /// The ids of the cases an actor may see, as a subquery for tables
    /// under a case (studies, series, instances, results).
    pub fn visible_case_ids(actor: &Actor) -> sea_orm::sea_query::SelectStatement {
        Query::select()
            .column((case::Entity, case::Column::Id))
            .from(case::Entity)
            .cond_where(visible(actor))
            .to_owned()
    }

    fn can_manage(actor: &Actor, c: &case::Model) -> bool {
        c.owner_id == actor.user_id || actor.role == Role::Radiologist
    }

    /// A visible case or `NotFound` (never `Forbidden`: another tenant's
    /// case must be indistinguishable from one that does not exist).
    pub async fn find_visible<C: ConnectionTrait>(
        c: &C,
        actor: &Actor,
        id: Uuid,
    ) -> Result<case::Model, AppError> {
        case::Entity::find_by_id(id)
            .filter(visible(actor))
            .one(c)
            .await?
            .ok_or(AppError::NotFound)
    }

    fn bad_row(what: &str) -> AppError {
        tracing::error!(column = what, "unparseable value stored in cases");
        AppError::Internal
    }

    pub fn to_dto(m: case::Model, owner_name: String) -> Result<CaseDto, AppError> {
        Ok(CaseDto {
            id: m.id,
            sex: m.sex.parse().map_err(|_| bad_row("sex"))?,
            modality: m.modality.parse().map_err(|_| bad_row("modality"))?,
            urgency: m.urgency.parse().map_err(|_| bad_row("urgency"))?,
            ai_urgency: m
                .ai_urgency
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|_| bad_row("ai_urgency"))?,
            status: m.status.parse().map_err(|_| bad_row("status"))?,
            age: m.age.and_then(|a| u8::try_from(a).ok()),
            patient_ref: m.patient_ref,
            body_part: m.body_part,
            history: m.history,
            owner_id: m.owner_id,
            owner_name,
            created_at: m.created_at,
            updated_at: m.updated_at,
            closed_at: m.closed_at,
        })
    }

    /// Display names of users by id (one query; the rest of the app uses it
    /// for owners, reviewers, signers and authors).
    pub async fn names<C: ConnectionTrait>(
        c: &C,
        ids: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, String>, AppError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .all(c)
            .await?
            .into_iter()
            .map(|u| (u.id, u.name))
            .collect())
    }

    async fn dto<C: ConnectionTrait>(c: &C, m: case::Model) -> Result<CaseDto, AppError> {
        let name = names(c, vec![m.owner_id])
            .await?
            .remove(&m.owner_id)
            .unwrap_or_default();
        to_dto(m, name)
    }

    struct NewCase {
        patient_ref: PatientRef,
        age: Option<Age>,
        sex: Sex,
        modality: Modality,
        body_part: BodyPart,
        urgency: Urgency,
        history: ClinicalHistory,
    }

    fn parse_new(i: &NewCaseInput) -> Result<NewCase, AppError> {
        let mut f = Fields::default();
        let patient_ref = f.take(PatientRef::parse(&i.patient_ref));
        let age = f.take(i.age.map(Age::parse).transpose());
        let sex = f.take(Sex::parse(&i.sex));
        let modality = f.take(Modality::parse(&i.modality));
        let body_part = f.take(BodyPart::parse(&i.body_part));
        let urgency = f.take(Urgency::parse(&i.urgency));
        let history = f.take(ClinicalHistory::parse(i.history.as_deref().unwrap_or("")));
        match (patient_ref, age, sex, modality, body_part, urgency, history) {
            (
                Some(patient_ref),
                Some(age),
                Some(sex),
                Some(modality),
                Some(body_part),
                Some(urgency),
                Some(history),
            ) => Ok(NewCase {
                patient_ref,
                age,
                sex,
                modality,
                body_part,
                urgency,
                history,
            }),
            _ => Err(AppError::invalid(f.0)),
        }
    }

    pub async fn create(
        db: &DatabaseConnection,
        actor: &Actor,
        input: &NewCaseInput,
    ) -> Result<CaseDto, AppError> {
        let n = parse_new(input)?;
        let t = now();
        let txn = write_txn(db).await?;
        let m = case::ActiveModel {
            id: Set(Uuid::new_v4()),
            org_id: Set(actor.org_id),
            owner_id: Set(actor.user_id),
            patient_ref: Set(n.patient_ref.as_str().to_owned()),
            age: Set(n.age.map(|a| i32::from(a.get()))),
            sex: Set(n.sex.as_str().to_owned()),
            modality: Set(n.modality.as_str().to_owned()),
            body_part: Set(n.body_part.as_str().to_owned()),
            urgency: Set(n.urgency.as_str().to_owned()),
            urgency_rank: Set(n.urgency.rank()),
            ai_urgency: Set(None),
            history: Set(n.history.as_str().to_owned()),
            status: Set(CaseStatus::Open.as_str().to_owned()),
            created_at: Set(t),
            updated_at: Set(t),
            closed_at: Set(None),
        }
        .insert(&txn)
        .await?;
        let dto = to_dto(m, actor.name.clone())?;
        append(
            &txn,
            Entry::by(actor, "case.create", "case", dto.id).change_redacted(
                &serde_json::Value::Null,
                &dto,
                PATIENT_FIELDS,
            ),
        )
        .await?;
        txn.commit().await?;
        Ok(dto)
    }

    pub async fn get(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<CaseDetail, AppError> {
        let m = find_visible(db, actor, id).await?;
        let manage = can_manage(actor, &m);
        let mut members = vec![];
        let owner = user::Entity::find_by_id(m.owner_id).one(db).await?;
        if let Some(o) = owner {
            members.push(member_dto(&o, true)?);
        }
        let rows = case_member::Entity::find()
            .filter(case_member::Column::CaseId.eq(m.id))
            .find_also_related(user::Entity)
            .order_by_asc(case_member::Column::AddedAt)
            .all(db)
            .await?;
        for (_, u) in rows {
            if let Some(u) = u {
                if u.id != m.owner_id {
                    members.push(member_dto(&u, false)?);
                }
            }
        }
        Ok(CaseDetail {
            case: dto(db, m).await?,
            members,
            can_manage: manage,
        })
    }

    fn member_dto(u: &user::Model, owner: bool) -> Result<MemberDto, AppError> {
        Ok(MemberDto {
            user_id: u.id,
            name: u.name.clone(),
            email: u.email.clone(),
            role: crate::auth::ssr::parse_role(&u.role)?,
            owner,
        })
    }

    #[derive(Serialize, Deserialize)]
    struct Cursor {
        r: i16,
        t: chrono::DateTime<chrono::Utc>,
        i: Uuid,
    }

    fn encode_cursor(m: &case::Model) -> String {
        let c = Cursor {
            r: m.urgency_rank,
            t: m.created_at,
            i: m.id,
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&c).unwrap_or_default())
    }

    fn decode_cursor(s: &str) -> Result<Cursor, AppError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| AppError::field("cursor", "is not a cursor this server issued"))
    }

    /// `%`, `_` and `\` in a search are literal characters, not wildcards.
    fn like_pattern(q: &str) -> String {
        let mut p = String::from("%");
        for ch in q.to_lowercase().chars() {
            if matches!(ch, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(ch);
        }
        p.push('%');
        p
    }

    pub async fn list(
        db: &DatabaseConnection,
        actor: &Actor,
        q: &CaseQuery,
    ) -> Result<CasePage, AppError> {
        let mut f = Fields::default();
        let status = f.take(
            q.status
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(CaseStatus::parse)
                .transpose(),
        );
        let urgency = f.take(
            q.urgency
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Urgency::parse)
                .transpose(),
        );
        let modality = f.take(
            q.modality
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(Modality::parse)
                .transpose(),
        );
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            f.0.push(crate::domain::FieldError::new(
                "limit",
                "must be between 1 and 200",
            ));
        }
        let search = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
        if search.is_some_and(|s| s.chars().count() > 100) {
            f.0.push(crate::domain::FieldError::new(
                "q",
                "must be at most 100 characters",
            ));
        }
        let cursor = q
            .cursor
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(decode_cursor)
            .transpose();
        let cursor = match cursor {
            Ok(c) => c,
            Err(AppError::Invalid { fields, .. }) => {
                f.0.extend(fields);
                None
            }
            Err(e) => return Err(e),
        };
        if !f.0.is_empty() {
            return Err(AppError::invalid(f.0));
        }
        let mut query = case::Entity::find().filter(visible(actor));
        if let Some(Some(s)) = status {
            query = query.filter(case::Column::Status.eq(s.as_str()));
        }
        if let Some(Some(u)) = urgency {
            query = query.filter(case::Column::Urgency.eq(u.as_str()));
        }
        if let Some(Some(m)) = modality {
            query = query.filter(case::Column::Modality.eq(m.as_str()));
        }
        if let Some(s) = search {
            let pat = like_pattern(s);
            let like = |col: case::Column| {
                Expr::expr(Func::lower(Expr::col((case::Entity, col))))
                    .like(LikeExpr::new(pat.clone()).escape('\\'))
            };
            query = query.filter(
                Condition::any()
                    .add(like(case::Column::PatientRef))
                    .add(like(case::Column::BodyPart))
                    .add(like(case::Column::History)),
            );
        }
        if let Some(c) = cursor {
            query = query.filter(
                Condition::any()
                    .add(case::Column::UrgencyRank.lt(c.r))
                    .add(
                        Condition::all()
                            .add(case::Column::UrgencyRank.eq(c.r))
                            .add(case::Column::CreatedAt.lt(c.t)),
                    )
                    .add(
                        Condition::all()
                            .add(case::Column::UrgencyRank.eq(c.r))
                            .add(case::Column::CreatedAt.eq(c.t))
                            .add(case::Column::Id.lt(c.i)),
                    ),
            );
        }
        // Owner names come from the same query: one round trip per page.
        let mut rows = query
            .find_also_related(user::Entity)
            .order_by_desc(case::Column::UrgencyRank)
            .order_by_desc(case::Column::CreatedAt)
            .order_by_desc(case::Column::Id)
            .limit(limit + 1)
            .all(db)
            .await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(|(c, _)| encode_cursor(c))
        } else {
            None
        };
        let items = rows
            .into_iter()
            .map(|(c, owner)| to_dto(c, owner.map(|u| u.name).unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        Ok(CasePage { items, next })
    }

    pub async fn update(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
        p: &CasePatchInput,
    ) -> Result<CaseDto, AppError> {
        let mut f = Fields::default();
        let patient_ref = f.take(p.patient_ref.as_deref().map(PatientRef::parse).transpose());
        let age = f.take(p.age.map(|a| a.map(Age::parse).transpose()).transpose());
        let sex = f.take(p.sex.as_deref().map(Sex::parse).transpose());
        let modality = f.take(p.modality.as_deref().map(Modality::parse).transpose());
        let body_part = f.take(p.body_part.as_deref().map(BodyPart::parse).transpose());
        let urgency = f.take(p.urgency.as_deref().map(Urgency::parse).transpose());
        let history = f.take(p.history.as_deref().map(ClinicalHistory::parse).transpose());
        let status = f.take(p.status.as_deref().map(CaseStatus::parse).transpose());
        let (
            Some(patient_ref),
            Some(age),
            Some(sex),
            Some(modality),
            Some(body_part),
            Some(urgency),
            Some(history),
            Some(status),
        ) = (
            patient_ref,
            age,
            sex,
            modality,
            body_part,
            urgency,
            history,
            status,
        )
        else {
            return Err(AppError::invalid(f.0));
        };
        let txn = write_txn(db).await?;
        let m = find_visible(&txn, actor, id).await?;
        if status.is_some_and(|s| s.as_str() != m.status) && !can_manage(actor, &m) {
            return Err(AppError::Forbidden);
        }
        let before = dto(&txn, m.clone()).await?;
        let mut am: case::ActiveModel = m.into();
        if let Some(v) = patient_ref {
            am.patient_ref = Set(v.as_str().to_owned());
        }
        if let Some(v) = age {
            am.age = Set(v.map(|a| i32::from(a.get())));
        }
        if let Some(v) = sex {
            am.sex = Set(v.as_str().to_owned());
        }
        if let Some(v) = modality {
            am.modality = Set(v.as_str().to_owned());
        }
        if let Some(v) = body_part {
            am.body_part = Set(v.as_str().to_owned());
        }
        if let Some(v) = urgency {
            am.urgency = Set(v.as_str().to_owned());
            am.urgency_rank = Set(Urgency::effective_rank(v, before.ai_urgency));
        }
        if let Some(v) = history {
            am.history = Set(v.as_str().to_owned());
        }
        if let Some(s) = status {
            am.status = Set(s.as_str().to_owned());
            am.closed_at = Set((s == CaseStatus::Closed).then(now));
        }
        am.updated_at = Set(now());
        let m = am.update(&txn).await?;
        let after = to_dto(m, before.owner_name.clone())?;
        let action = match (before.status, after.status) {
            (CaseStatus::Open, CaseStatus::Closed) => "case.close",
            (CaseStatus::Closed, CaseStatus::Open) => "case.reopen",
            _ => "case.update",
        };
        append(
            &txn,
            Entry::by(actor, action, "case", id).change_redacted(&before, &after, PATIENT_FIELDS),
        )
        .await?;
        txn.commit().await?;
        Ok(after)
    }

    pub async fn add_member(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
        input: &AddMemberInput,
    ) -> Result<MemberDto, AppError> {
        let txn = write_txn(db).await?;
        let m = find_visible(&txn, actor, id).await?;
        if !can_manage(actor, &m) {
            return Err(AppError::Forbidden);
        }
        // The colleague must be an enabled user of the same organisation;
        // anyone else is "no such colleague", whatever exists elsewhere.
        let mut q = user::Entity::find()
            .filter(user::Column::OrgId.eq(actor.org_id))
            .filter(user::Column::Enabled.eq(true));
        q = match (&input.user_id, &input.email) {
            (Some(uid), _) => q.filter(user::Column::Id.eq(*uid)),
            (None, Some(e)) => q.filter(user::Column::Email.eq(Email::parse(e)?.as_str())),
            (None, None) => {
                return Err(AppError::field(
                    "user_id",
                    "name a colleague by user_id or email",
                ))
            }
        };
        let Some(u) = q.one(&txn).await? else {
            return Err(AppError::field(
                "user_id",
                "no active colleague in your organisation matches",
            ));
        };
        let dto = member_dto(&u, u.id == m.owner_id)?;
        if u.id == m.owner_id {
            return Ok(dto);
        }
        let exists = case_member::Entity::find_by_id((m.id, u.id))
            .one(&txn)
            .await?
            .is_some();
        if !exists {
            case_member::ActiveModel {
                case_id: Set(m.id),
                user_id: Set(u.id),
                added_by: Set(actor.user_id),
                added_at: Set(now()),
            }
            .insert(&txn)
            .await?;
            append(
                &txn,
                Entry::by(actor, "case.member_add", "case", id)
                    .details(serde_json::json!({ "user_id": u.id, "email": u.email })),
            )
            .await?;
        }
        txn.commit().await?;
        Ok(dto)
    }

    /// Enabled colleagues of the actor's organisation, for the member picker.
    pub async fn colleagues(
        db: &DatabaseConnection,
        actor: &Actor,
    ) -> Result<Vec<MemberDto>, AppError> {
        user::Entity::find()
            .filter(user::Column::OrgId.eq(actor.org_id))
            .filter(user::Column::Enabled.eq(true))
            .order_by_asc(user::Column::Name)
            .all(db)
            .await?
            .iter()
            .map(|u| member_dto(u, false))
            .collect()
    }
}

// ---------------------------------------------------------------- server fns

#[cfg(feature = "ssr")]
fn parse_id(id: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.trim()).map_err(|_| AppError::NotFound)
}

#[server(prefix = "/sfn", endpoint = "list_cases", input = server_fn::codec::GetUrl)]
pub async fn list_cases(query: CaseQuery) -> Result<CasePage, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(async { ssr::list(&state()?.db, &require_user()?, &query).await }.await)
}

#[server(prefix = "/sfn", endpoint = "get_case", input = server_fn::codec::GetUrl)]
pub async fn get_case(id: String) -> Result<CaseDetail, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let actor = require_user()?;
            ssr::get(&state()?.db, &actor, parse_id(&id)?).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "colleagues", input = server_fn::codec::GetUrl)]
pub async fn list_colleagues() -> Result<Vec<MemberDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(async { ssr::colleagues(&state()?.db, &require_user()?).await }.await)
}

#[server(prefix = "/sfn", endpoint = "save_case")]
pub async fn save_case(
    id: Option<String>,
    patient_ref: String,
    age: String,
    sex: String,
    modality: String,
    body_part: String,
    urgency: String,
    history: String,
    _csrf: String,
) -> Result<CaseDto, AppError> {
    use crate::domain::Age;
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let actor = require_user()?;
            let db = state()?.db;
            // The form sends text; an unparseable age is a field error like any other.
            let age_num = match Age::parse_text(&age) {
                Ok(a) => a.map(|a| i64::from(a.get())),
                Err(e) => return Err(AppError::from(e)),
            };
            let saved = match id.as_deref().filter(|s| !s.is_empty()) {
                None => {
                    let input = NewCaseInput {
                        patient_ref,
                        age: age_num,
                        sex,
                        modality,
                        body_part,
                        urgency,
                        history: Some(history),
                    };
                    ssr::create(&db, &actor, &input).await?
                }
                Some(id) => {
                    let patch = CasePatchInput {
                        patient_ref: Some(patient_ref),
                        age: Some(age_num),
                        sex: Some(sex),
                        modality: Some(modality),
                        body_part: Some(body_part),
                        urgency: Some(urgency),
                        history: Some(history),
                        status: None,
                    };
                    ssr::update(&db, &actor, parse_id(id)?, &patch).await?
                }
            };
            leptos_axum::redirect(&format!("/cases/{}", saved.id));
            Ok(saved)
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "set_case_status")]
pub async fn set_case_status(
    id: String,
    status: String,
    _csrf: String,
) -> Result<CaseDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let actor = require_user()?;
            let patch = CasePatchInput {
                status: Some(status),
                ..Default::default()
            };
            ssr::update(&state()?.db, &actor, parse_id(&id)?, &patch).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "add_case_member")]
pub async fn add_case_member(
    id: String,
    user_id: String,
    _csrf: String,
) -> Result<MemberDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let actor = require_user()?;
            let uid = Uuid::parse_str(user_id.trim())
                .map_err(|_| AppError::field("user_id", "choose a colleague"))?;
            let input = AddMemberInput {
                user_id: Some(uid),
                email: None,
            };
            ssr::add_member(&state()?.db, &actor, parse_id(&id)?, &input).await
        }
        .await,
    )
}

// ---------------------------------------------------------------- pages

fn urgency_badge(u: Urgency) -> impl IntoView {
    view! { <span class=format!("badge urgency-{}", u.as_str())>{u.label()}</span> }
}

/// The models' urgency, marked as theirs.
fn ai_badge(u: Option<Urgency>) -> impl IntoView {
    u.filter(|u| *u != Urgency::Routine).map(|u| view! {
        <span class=format!("badge ai urgency-{}", u.as_str()) title="Suggested by the AI triage; a person decides">
            "AI: "{u.label()}
        </span>
    })
}

#[component]
pub fn CaseListPage() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        query.with(|q| CaseQuery {
            status: q.get("status"),
            urgency: q.get("urgency"),
            modality: q.get("modality"),
            q: q.get("q"),
            cursor: q.get("cursor"),
            // Always one field set: an all-empty query would encode as an
            // empty URL, which the server function cannot tell from no
            // argument at all.
            limit: Some(50),
        })
    };
    let cases = Resource::new(params, list_cases);
    let sel = move |k: &'static str| move || query.with(|q| q.get(k).unwrap_or_default());
    view! {
        <section class="card">
            <div class="row spread">
                <h1>"Cases"</h1>
                <A href="/cases/new" attr:class="button primary">"New case"</A>
            </div>
            <form method="get" action="/cases" class="filters">
                <input type="search" name="q" placeholder="Search patient, body part, history" maxlength="100" value=sel("q")/>
                <select name="status" prop:value=sel("status")>
                    <option value="">"Any status"</option>
                    {CaseStatus::ALL.iter().map(|s| view! { <option value=s.as_str()>{s.label()}</option> }).collect_view()}
                </select>
                <select name="urgency" prop:value=sel("urgency")>
                    <option value="">"Any urgency"</option>
                    {Urgency::ALL.iter().map(|s| view! { <option value=s.as_str()>{s.label()}</option> }).collect_view()}
                </select>
                <select name="modality" prop:value=sel("modality")>
                    <option value="">"Any modality"</option>
                    {Modality::ALL.iter().map(|s| view! { <option value=s.as_str()>{s.label()}</option> }).collect_view()}
                </select>
                <button type="submit">"Filter"</button>
            </form>
            <Transition fallback=|| view! { <p>"Loading cases…"</p> }>
                {move || cases.get().map(|r| match r {
                    Err(e) => view! { <Problem error=e/> }.into_any(),
                    Ok(page) if page.items.is_empty() => view! {
                        <p class="muted empty">"No cases match. " <A href="/cases/new">"Open a new case"</A></p>
                    }.into_any(),
                    Ok(page) => {
                        let next = page.next.clone().map(|c| {
                            let mut q: Vec<(String, String)> = query.with_untracked(|m| {
                                ["status", "urgency", "modality", "q"].iter().filter_map(|k| m.get(k).map(|v| (k.to_string(), v))).collect()
                            });
                            q.push(("cursor".into(), c));
                            let qs: Vec<String> = q.into_iter().map(|(k, v)| format!("{k}={}", urlencode(&v))).collect();
                            format!("/cases?{}", qs.join("&"))
                        });
                        view! {
                            <table class="table cases">
                                <thead><tr>
                                    <th>"Urgency"</th><th>"Patient"</th><th>"Age/Sex"</th><th>"Modality"</th>
                                    <th>"Body part"</th><th>"Status"</th><th>"Owner"</th><th>"Opened"</th>
                                </tr></thead>
                                <tbody>
                                {page.items.into_iter().map(|c| view! {
                                    <tr>
                                        <td>{urgency_badge(c.urgency)}" "{ai_badge(c.ai_urgency)}</td>
                                        <td><A href=format!("/cases/{}", c.id)>{c.patient_ref.clone()}</A></td>
                                        <td>{c.age.map(|a| a.to_string()).unwrap_or_else(|| "?".into())}" / "{c.sex.as_str()}</td>
                                        <td>{c.modality.as_str()}</td>
                                        <td>{c.body_part.clone()}</td>
                                        <td><span class=format!("status status-{}", c.status.as_str())>{c.status.label()}</span></td>
                                        <td>{c.owner_name.clone()}</td>
                                        <td>{when(&c.created_at)}</td>
                                    </tr>
                                }).collect_view()}
                                </tbody>
                            </table>
                            {next.map(|href| view! { <p><a class="button" href=href>"More cases →"</a></p> })}
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The create / edit form; `initial` is the case being edited.
#[component]
fn CaseForm(initial: Option<CaseDto>) -> impl IntoView {
    let save = ServerAction::<SaveCase>::new();
    let value = save.value();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(c)) = value.get() {
            navigate(&format!("/cases/{}", c.id), Default::default());
        }
    });
    let i = initial.clone();
    let v = move |f: fn(&CaseDto) -> String| i.as_ref().map(f).unwrap_or_default();
    let sex = initial.as_ref().map(|c| c.sex).unwrap_or(Sex::U);
    let modality = initial.as_ref().map(|c| c.modality).unwrap_or(Modality::Ct);
    let urgency = initial
        .as_ref()
        .map(|c| c.urgency)
        .unwrap_or(Urgency::Routine);
    let editing = initial.is_some();
    view! {
        <ActionForm action=save attr:class="form grid">
            <CsrfField/>
            <input type="hidden" name="id" value=v(|c| c.id.to_string())/>
            <label>"Patient pseudonym or MRN"
                <input name="patient_ref" required maxlength="64" value=v(|c| c.patient_ref.clone())/>
                <FieldErr value name="patient_ref"/>
            </label>
            <label>"Age (years)"
                <input name="age" inputmode="numeric" maxlength="3" value=v(|c| c.age.map(|a| a.to_string()).unwrap_or_default())/>
                <FieldErr value name="age"/>
            </label>
            <label>"Sex"
                <select name="sex">
                    {Sex::ALL.iter().map(|s| view! { <option value=s.as_str() selected=*s == sex>{s.label()}</option> }).collect_view()}
                </select>
                <FieldErr value name="sex"/>
            </label>
            <label>"Modality"
                <select name="modality">
                    {Modality::ALL.iter().map(|s| view! { <option value=s.as_str() selected=*s == modality>{s.label()}</option> }).collect_view()}
                </select>
                <FieldErr value name="modality"/>
            </label>
            <label>"Body part"
                <input name="body_part" required maxlength="64" placeholder="e.g. head, chest" value=v(|c| c.body_part.clone())/>
                <FieldErr value name="body_part"/>
            </label>
            <label>"Urgency"
                <select name="urgency">
                    {Urgency::ALL.iter().map(|s| view! { <option value=s.as_str() selected=*s == urgency>{s.label()}</option> }).collect_view()}
                </select>
                <FieldErr value name="urgency"/>
            </label>
            <label class="wide">"Clinical history"
                <textarea name="history" rows="5" maxlength="4000">{v(|c| c.history.clone())}</textarea>
                <FieldErr value name="history"/>
            </label>
            <FormError value/>
            <div class="wide row">
                <button type="submit" class="primary" disabled=save.pending()>{if editing { "Save changes" } else { "Open case" }}</button>
            </div>
        </ActionForm>
    }
}

#[component]
pub fn NewCasePage() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"New case"</h1>
            <CaseForm initial=None/>
        </section>
    }
}

fn case_id() -> Memo<String> {
    let params = use_params_map();
    Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()))
}

#[component]
pub fn EditCasePage() -> impl IntoView {
    let id = case_id();
    let case = Resource::new(move || id.get(), get_case);
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || case.get().map(|r| match r {
                Ok(d) => view! {
                    <section class="card">
                        <h1>"Edit case " {d.case.patient_ref.clone()}</h1>
                        <CaseForm initial=Some(d.case)/>
                    </section>
                }.into_any(),
                Err(e) => view! { <Problem error=e/> }.into_any(),
            })}
        </Suspense>
    }
}

/// The case page, made anew when the route's case changes (a link from
/// one case to another keeps the route, so it would otherwise keep the
/// first case's panels).
#[component]
pub fn CaseRoute() -> impl IntoView {
    let id = case_id();
    move || {
        id.track();
        view! { <CaseDetailPage/> }
    }
}

#[component]
pub fn CaseDetailPage() -> impl IntoView {
    let id = case_id();
    let status = ServerAction::<SetCaseStatus>::new();
    let add = ServerAction::<AddCaseMember>::new();
    let case = Resource::new(
        move || (id.get(), status.version().get(), add.version().get()),
        |(id, _, _)| get_case(id),
    );
    let colleagues = Resource::new(|| (), |_| list_colleagues());
    let add_value = add.value();
    let status_value = status.value();
    // Both read inside a Suspense or Transition, so they wait for the case.
    let readable = move || case.get().is_some_and(|r| r.is_ok());
    let closed = move || {
        case.get()
            .and_then(|r| r.ok())
            .is_some_and(|d| d.case.status == CaseStatus::Closed)
    };
    // The panels (and so their resources) are created now, before the
    // case's Suspense: the server renders a Suspense's children more than
    // once and only after its own tree is built, the browser once and in
    // document order, so resources created inside or after it got other
    // ids on each side and a page loaded directly failed to hydrate.
    // `CaseRoute` re-creates the page when the route's case changes.
    let panels = id.get_untracked().parse::<Uuid>().ok().map(|cid| {
        view! {
            <crate::pipeline::AnalysisPanel case_id=cid/>
            <crate::chat::ChatPanel case_id=cid/>
            <crate::images::ImagesPanel case_id=cid can_upload=Signal::derive(move || !closed())/>
        }
    });
    view! {
        <Suspense fallback=|| view! { <p>"Loading case…"</p> }>
            {move || case.get().map(|r| match r {
                Err(e) => view! { <Problem error=e/> }.into_any(),
                Ok(d) => {
                    let c = d.case.clone();
                    let closed = c.status == CaseStatus::Closed;
                    let member_ids: Vec<Uuid> = d.members.iter().map(|m| m.user_id).collect();
                    view! {
                        <section class="card">
                            <div class="row spread">
                                <h1>{urgency_badge(c.urgency)} " " {ai_badge(c.ai_urgency)} " " {c.patient_ref.clone()}</h1>
                                <div class="row">
                                    <A href=format!("/cases/{}/edit", c.id) attr:class="button">"Edit"</A>
                                    {d.can_manage.then(|| view! {
                                        <ActionForm action=status attr:class="inline">
                                            <CsrfField/>
                                            <input type="hidden" name="id" value=c.id.to_string()/>
                                            <input type="hidden" name="status" value=if closed { "open" } else { "closed" }/>
                                            <button type="submit">{if closed { "Reopen case" } else { "Close case" }}</button>
                                        </ActionForm>
                                    })}
                                </div>
                            </div>
                            <FormError value=status_value/>
                            <dl class="facts">
                                <dt>"Status"</dt><dd><span class=format!("status status-{}", c.status.as_str())>{c.status.label()}</span></dd>
                                <dt>"Age / sex"</dt><dd>{c.age.map(|a| format!("{a} y")).unwrap_or_else(|| "unknown".into())}" / "{c.sex.label()}</dd>
                                <dt>"Modality"</dt><dd>{c.modality.label()}</dd>
                                <dt>"Body part"</dt><dd>{c.body_part.clone()}</dd>
                                <dt>"Opened"</dt><dd>{when(&c.created_at)}" by "{c.owner_name.clone()}</dd>
                                <dt>"Updated"</dt><dd>{when(&c.updated_at)}</dd>
                                {c.closed_at.map(|t| view! { <dt>"Closed"</dt><dd>{when(&t)}</dd> })}
                            </dl>
                            <h2>"Clinical history"</h2>
                            <p class="history">{if c.history.is_empty() { "None recorded.".to_owned() } else { c.history.clone() }}</p>
                        </section>
                        <section class="card">
                            <h2>"Care team"</h2>
                            <ul class="members">
                                {d.members.iter().map(|m| view! {
                                    <li>{m.name.clone()}" "<span class="badge">{m.role.label()}</span>
                                        {m.owner.then(|| view! { <span class="muted">" (owner)"</span> })}</li>
                                }).collect_view()}
                            </ul>
                            {d.can_manage.then(|| {
                                let member_ids = member_ids.clone();
                                view! {
                                    <ActionForm action=add attr:class="form inline">
                                        <CsrfField/>
                                        <input type="hidden" name="id" value=c.id.to_string()/>
                                        // Read in the case's own Suspense (which waits for
                                        // it): a nested Transition here hydrated as its
                                        // fallback on a page loaded directly.
                                        {
                                            let member_ids = member_ids.clone();
                                            move || {
                                                let list = colleagues.get().and_then(|r| r.ok()).unwrap_or_default();
                                                let options = list.into_iter().filter(|m| !member_ids.contains(&m.user_id)).map(|m| view! {
                                                    <option value=m.user_id.to_string()>{m.name.clone()}" ("{m.role.label()}")"</option>
                                                }).collect_view();
                                                view! {
                                                    <select name="user_id" required>
                                                        <option value="">"Add a colleague…"</option>
                                                        {options}
                                                    </select>
                                                }
                                            }
                                        }
                                        <button type="submit">"Add"</button>
                                    </ActionForm>
                                    <FieldErr value=add_value name="user_id"/>
                                    <FormError value=add_value/>
                                }
                            })}
                        </section>
                    }.into_any()
                }
            })}
        </Suspense>
        // Hidden while the case is unknown or not readable (their requests
        // are refused the same way; this only keeps the page tidy).
        <Suspense fallback=|| ()>
            <div class="case-panels" hidden=move || !readable()>{panels}</div>
        </Suspense>
    }
}
