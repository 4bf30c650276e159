//! The case's draft report as people see it: sections, citations, the
//! plain-language explanation and the literature it could cite, always
//! labelled as an AI suggestion with its writer and versions. The drafting
//! itself happens in the server's pipeline (crates/reporting); this is the
//! data layer the pages and `GET /api/v1/cases/{id}/report` read.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The standard sections, in report order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct SectionsDto {
    pub clinical_information: String,
    pub technique: String,
    pub findings: String,
    pub impression: String,
    pub recommendations: String,
}

impl SectionsDto {
    pub fn named(&self) -> [(&'static str, &str); 5] {
        [
            ("Clinical information", &self.clinical_information),
            ("Technique", &self.technique),
            ("Findings", &self.findings),
            ("Impression", &self.impression),
            ("Recommendations", &self.recommendations),
        ]
    }
}

/// A source the text cites: `PMID:…` or `GL:…`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CitationDto {
    pub id: String,
    /// `literature`, `guideline` or `org_report`.
    pub source: String,
    pub title: String,
    pub year: Option<u16>,
    pub url: Option<String>,
}

/// What the citation and finding checks found in the draft.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct VerificationDto {
    pub removed_citations: Vec<String>,
    pub missing_findings: Vec<String>,
    pub asserted_negatives: Vec<String>,
    pub rejected_reason: Option<String>,
}

/// Why the built-in writer wrote the text instead of the LLM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FallbackDto {
    /// `not_configured`, `breaker_open`, `llm_error` or `verification_rejected`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient: Option<bool>,
}

impl FallbackDto {
    /// What the case page says about it.
    pub fn describe(&self) -> String {
        match self.reason.as_str() {
            "not_configured" => "no LLM endpoint is configured".into(),
            "breaker_open" => {
                "the LLM endpoint failed repeatedly and is paused (circuit breaker open)".into()
            }
            "llm_error" => format!(
                "the LLM endpoint failed ({})",
                self.error.as_deref().unwrap_or("error")
            ),
            "verification_rejected" => {
                "the LLM's draft failed the citation and finding checks".into()
            }
            other => other.replace('_', " "),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ModelRefDto {
    pub model: String,
    pub model_version: String,
}

/// The plain-language explanation for the referring doctor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct ExplanationDto {
    pub text: String,
    pub writer: String,
    pub verification: VerificationDto,
    pub citations: Vec<CitationDto>,
    pub model: Option<String>,
    pub prompt_version: Option<String>,
    pub fallback: Option<FallbackDto>,
}

/// A passage retrieval returned for the case, with why it matched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SourceDto {
    pub id: String,
    pub source: String,
    pub title: String,
    pub year: Option<i32>,
    pub url: Option<String>,
    pub section: Option<String>,
    pub passage: String,
    pub score: f32,
    pub why_matched: String,
}

/// `GET /api/v1/cases/{id}/report`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReportDto {
    pub id: Uuid,
    /// `draft` or `signed`.
    pub status: String,
    /// "AI draft, requires review" until signed.
    pub label: String,
    pub sections: SectionsDto,
    pub citations: Vec<CitationDto>,
    /// `llm` or `builtin`.
    pub writer: String,
    pub verification: VerificationDto,
    /// LLM model id when `writer` is `llm`.
    pub model: Option<String>,
    pub prompt_version: Option<String>,
    pub builtin_version: Option<String>,
    /// The models whose findings the report states.
    pub finding_models: Vec<ModelRefDto>,
    /// A demonstration model (trained on synthetic phantoms) contributed.
    pub demo: bool,
    pub fallback: Option<FallbackDto>,
    pub explanation: ExplanationDto,
    /// What retrieval returned for the case (the Literature panel).
    pub sources: Vec<SourceDto>,
    /// Why there are no sources, when there are none.
    pub sources_note: Option<String>,
    pub revision: i32,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The reader who last edited the draft, if one did.
    pub edited_by: Option<String>,
    pub signed_by: Option<String>,
    pub signed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Added after signing, oldest first.
    pub addenda: Vec<AddendumDto>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AddendumDto {
    pub id: Uuid,
    pub author: String,
    pub text: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// `PUT /api/v1/cases/{id}/report`: the reader's edit of the draft.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ReportEdit {
    pub sections: SectionsDto,
}

/// `POST /api/v1/cases/{id}/report/sign`: the signer's password again, and
/// optionally the final text (saved, then signed, in one step).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SignInput {
    pub password: String,
    #[serde(default)]
    pub sections: Option<SectionsDto>,
}

/// `POST /api/v1/cases/{id}/report/addenda`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AddendumInput {
    pub text: String,
}

/// Longest section or addendum a reader may write.
pub const MAX_SECTION_CHARS: usize = 20_000;

impl SectionsDto {
    /// Trims each section and checks its length; on sign, Findings and
    /// Impression must say something.
    pub fn parse(mut self, signing: bool) -> Result<Self, AppError> {
        use crate::domain::FieldError;
        let mut errors = Vec::new();
        for (name, text) in [
            ("clinical_information", &mut self.clinical_information),
            ("technique", &mut self.technique),
            ("findings", &mut self.findings),
            ("impression", &mut self.impression),
            ("recommendations", &mut self.recommendations),
        ] {
            *text = text.trim().replace("\r\n", "\n");
            if text.chars().count() > MAX_SECTION_CHARS {
                errors.push(FieldError::new(
                    name,
                    format!("must be at most {MAX_SECTION_CHARS} characters"),
                ));
            }
        }
        if signing {
            for (name, text) in [
                ("findings", &self.findings),
                ("impression", &self.impression),
            ] {
                if text.is_empty() {
                    errors.push(FieldError::new(
                        name,
                        "must not be empty in a signed report",
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(AppError::invalid(errors))
        }
    }
}

/// The stored body: the drafting crate's JSON, read leniently so a newer
/// writer's extra fields do not break an older reader.
#[derive(Deserialize)]
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
struct StoredBody {
    #[serde(default)]
    label: String,
    #[serde(default)]
    sections: SectionsDto,
    #[serde(default)]
    citations: Vec<CitationDto>,
    #[serde(default)]
    verification: VerificationDto,
    model: Option<String>,
    prompt_version: Option<String>,
    builtin_version: Option<String>,
    #[serde(default)]
    finding_models: Vec<ModelRefDto>,
    #[serde(default)]
    demo: bool,
    fallback: Option<FallbackDto>,
    #[serde(default)]
    explanation: ExplanationDto,
    #[serde(default)]
    edited_by_name: Option<String>,
    #[serde(default)]
    signed_by_name: Option<String>,
}

/// What the drafting stage stores beside the report: the passages and,
/// when there are none, why.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoredSources {
    pub passages: Vec<SourceDto>,
    pub note: Option<String>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::audit::ssr::{append, Entry};
    use crate::cases::ssr::{find_visible, names};
    use crate::domain::Role;
    use crate::ssr::{now, write_txn, Actor, AppState};
    use entity::{report, report_addendum};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
        EntityTrait, QueryFilter, QueryOrder,
    };

    pub fn to_dto(r: report::Model, addenda: Vec<AddendumDto>) -> Result<ReportDto, AppError> {
        let body: StoredBody = serde_json::from_str(&r.body).map_err(|e| {
            tracing::error!(report = %r.id, error = %e, "a stored report is unreadable");
            AppError::Internal
        })?;
        let sources: StoredSources = serde_json::from_str(&r.sources).unwrap_or_default();
        let signed = r.status == "signed";
        Ok(ReportDto {
            id: r.id,
            label: if signed {
                "Signed report (AI-assisted)".into()
            } else {
                body.label
            },
            status: r.status,
            sections: body.sections,
            citations: body.citations,
            writer: r.writer,
            verification: body.verification,
            model: body.model,
            prompt_version: body.prompt_version,
            builtin_version: body.builtin_version,
            finding_models: body.finding_models,
            demo: body.demo,
            fallback: body.fallback,
            explanation: body.explanation,
            sources: sources.passages,
            sources_note: sources.note,
            revision: r.revision,
            updated_at: r.updated_at,
            edited_by: body.edited_by_name,
            signed_by: body.signed_by_name,
            signed_at: r.signed_at,
            addenda,
        })
    }

    async fn addenda<C: ConnectionTrait>(
        db: &C,
        report: Uuid,
    ) -> Result<Vec<AddendumDto>, AppError> {
        let rows = report_addendum::Entity::find()
            .filter(report_addendum::Column::ReportId.eq(report))
            .order_by_asc(report_addendum::Column::CreatedAt)
            .all(db)
            .await?;
        let who = names(db, rows.iter().map(|a| a.author_id).collect()).await?;
        Ok(rows
            .into_iter()
            .map(|a| AddendumDto {
                id: a.id,
                author: who.get(&a.author_id).cloned().unwrap_or_default(),
                text: a.text,
                created_at: a.created_at,
            })
            .collect())
    }

    async fn load<C: ConnectionTrait>(
        db: &C,
        case_id: Uuid,
    ) -> Result<Option<report::Model>, AppError> {
        Ok(report::Entity::find()
            .filter(report::Column::CaseId.eq(case_id))
            .one(db)
            .await?)
    }

    /// The report of a visible case; `None` until the pipeline drafted one.
    pub async fn case_report(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<Option<ReportDto>, AppError> {
        let case = find_visible(db, actor, case_id).await?;
        let Some(r) = load(db, case.id).await? else {
            return Ok(None);
        };
        let a = addenda(db, r.id).await?;
        to_dto(r, a).map(Some)
    }

    /// Only radiologists edit, sign and addend reports.
    fn require_reader(actor: &Actor) -> Result<(), AppError> {
        actor.require_role(Role::Radiologist)
    }

    fn body_value(r: &report::Model) -> Result<serde_json::Value, AppError> {
        serde_json::from_str(&r.body).map_err(|e| {
            tracing::error!(report = %r.id, error = %e, "a stored report is unreadable");
            AppError::Internal
        })
    }

    fn sections_value(s: &SectionsDto) -> serde_json::Value {
        serde_json::to_value(s).unwrap_or(serde_json::Value::Null)
    }

    /// Loads the case's draft for a change, inside the write transaction.
    async fn draft_for_change(
        txn: &sea_orm::DatabaseTransaction,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<report::Model, AppError> {
        find_visible(txn, actor, case_id).await?;
        let r = load(txn, case_id)
            .await?
            .ok_or_else(|| AppError::Conflict("The case has no draft report yet.".into()))?;
        if r.status == "signed" {
            return Err(AppError::Conflict(
                "The report is signed and cannot change; add an addendum instead.".into(),
            ));
        }
        Ok(r)
    }

    /// Saves the reader's text over the draft. The pipeline no longer
    /// redrafts a report a person edited.
    async fn apply_edit(
        txn: &sea_orm::DatabaseTransaction,
        actor: &Actor,
        r: report::Model,
        sections: &SectionsDto,
    ) -> Result<report::Model, AppError> {
        let mut body = body_value(&r)?;
        let before = body["sections"].clone();
        let after = sections_value(sections);
        if before == after {
            return Ok(r);
        }
        body["sections"] = after.clone();
        body["edited_by"] = serde_json::json!(actor.user_id);
        body["edited_by_name"] = serde_json::json!(actor.name);
        let report_id = r.id;
        let case_id = r.case_id;
        let mut am: report::ActiveModel = r.into();
        am.body = Set(body.to_string());
        am.updated_at = Set(now());
        let updated = am.update(txn).await?;
        let mut e = Entry::by(actor, "report.edited", "report", report_id);
        e.details = serde_json::json!({"case": case_id, "before": before, "after": after});
        append(txn, e).await?;
        Ok(updated)
    }

    pub async fn edit_report(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        input: ReportEdit,
    ) -> Result<ReportDto, AppError> {
        require_reader(actor)?;
        let sections = input.sections.parse(false)?;
        let txn = write_txn(db).await?;
        let r = draft_for_change(&txn, actor, case_id).await?;
        let r = apply_edit(&txn, actor, r, &sections).await?;
        let a = addenda(&txn, r.id).await?;
        txn.commit().await?;
        to_dto(r, a)
    }

    /// Signs the draft after asking for the signer's password again. A
    /// signed report never changes; later text is an addendum.
    pub async fn sign_report(
        state: &AppState,
        actor: &Actor,
        case_id: Uuid,
        input: SignInput,
        ip: Option<std::net::IpAddr>,
    ) -> Result<ReportDto, AppError> {
        require_reader(actor)?;
        find_visible(&state.db, actor, case_id).await?;
        let sections = input.sections.map(|s| s.parse(true)).transpose()?;
        crate::auth::ssr::reauthenticate(state, actor, &input.password, ip).await?;
        let txn = write_txn(&state.db).await?;
        let mut r = draft_for_change(&txn, actor, case_id).await?;
        if let Some(s) = &sections {
            r = apply_edit(&txn, actor, r, s).await?;
        }
        let mut body = body_value(&r)?;
        let final_sections: SectionsDto =
            serde_json::from_value(body["sections"].clone()).unwrap_or_default();
        final_sections.clone().parse(true)?;
        let at = now();
        body["signed_by"] = serde_json::json!(actor.user_id);
        body["signed_by_name"] = serde_json::json!(actor.name);
        let report_id = r.id;
        let mut am: report::ActiveModel = r.into();
        am.status = Set("signed".into());
        am.body = Set(body.to_string());
        am.signed_by = Set(Some(actor.user_id));
        am.signed_at = Set(Some(at));
        am.updated_at = Set(at);
        let signed = am.update(&txn).await?;
        let mut e = Entry::by(actor, "report.signed", "report", report_id);
        e.details = serde_json::json!({
            "case": case_id,
            "before": {"status": "draft"},
            "after": {"status": "signed", "sections": sections_value(&final_sections)},
        });
        append(&txn, e).await?;
        // The transactional outbox: a signed report and its queued sends to
        // the PACS commit together or not at all.
        crate::sends::ssr::queue_on_sign(&txn, actor, case_id).await?;
        txn.commit().await?;
        to_dto(signed, Vec::new())
    }

    pub async fn add_addendum(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        input: AddendumInput,
    ) -> Result<ReportDto, AppError> {
        require_reader(actor)?;
        let text = input.text.trim().replace("\r\n", "\n");
        if text.is_empty() {
            return Err(AppError::field("text", "must not be empty"));
        }
        if text.chars().count() > MAX_SECTION_CHARS {
            return Err(AppError::field(
                "text",
                format!("must be at most {MAX_SECTION_CHARS} characters"),
            ));
        }
        let txn = write_txn(db).await?;
        find_visible(&txn, actor, case_id).await?;
        let r = load(&txn, case_id)
            .await?
            .ok_or_else(|| AppError::Conflict("The case has no report yet.".into()))?;
        if r.status != "signed" {
            return Err(AppError::Conflict(
                "Only a signed report takes addenda; edit the draft instead.".into(),
            ));
        }
        let id = Uuid::new_v4();
        report_addendum::ActiveModel {
            id: Set(id),
            org_id: Set(r.org_id),
            case_id: Set(r.case_id),
            report_id: Set(r.id),
            author_id: Set(actor.user_id),
            text: Set(text.clone()),
            created_at: Set(now()),
        }
        .insert(&txn)
        .await?;
        let mut e = Entry::by(actor, "report.addendum", "report", r.id);
        e.details = serde_json::json!({"case": case_id, "addendum": id, "before": null, "after": {"text": text}});
        append(&txn, e).await?;
        let a = addenda(&txn, r.id).await?;
        txn.commit().await?;
        to_dto(r, a)
    }
}

#[server(prefix = "/sfn", endpoint = "case_report", input = server_fn::codec::GetUrl)]
pub async fn case_report(id: String) -> Result<Option<ReportDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
            ssr::case_report(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "save_report")]
pub async fn save_report(
    case_id: String,
    clinical_information: String,
    technique: String,
    findings: String,
    impression: String,
    recommendations: String,
) -> Result<ReportDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            let sections = SectionsDto {
                clinical_information,
                technique,
                findings,
                impression,
                recommendations,
            };
            ssr::edit_report(&state()?.db, &require_user()?, id, ReportEdit { sections }).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "sign_report")]
pub async fn sign_report(case_id: String, password: String) -> Result<ReportDto, AppError> {
    use crate::ssr::{client_ip, fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            let input = SignInput {
                password,
                sections: None,
            };
            ssr::sign_report(&state()?, &require_user()?, id, input, client_ip()).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "add_addendum")]
pub async fn add_addendum(case_id: String, text: String) -> Result<ReportDto, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&case_id).map_err(|_| AppError::NotFound)?;
            ssr::add_addendum(&state()?.db, &require_user()?, id, AddendumInput { text }).await
        }
        .await,
    )
}

/// The draft report beside the findings: its label, who wrote it and why,
/// the sections with their citations, the explanation for the referring
/// doctor, and the Literature panel.
#[component]
pub fn ReportPanel(case_id: Uuid, tick: RwSignal<u32>) -> impl IntoView {
    let save = ServerAction::<SaveReport>::new();
    let sign = ServerAction::<SignReport>::new();
    let addendum = ServerAction::<AddAddendum>::new();
    let report = Resource::new(
        move || {
            (
                tick.get(),
                save.version().get(),
                sign.version().get(),
                addendum.version().get(),
            )
        },
        move |_| case_report(case_id.to_string()),
    );
    let session = expect_context::<crate::ui::SessionResource>();
    let reader = move || {
        session
            .get()
            .and_then(|r| r.ok())
            .and_then(|s| s.user)
            .is_some_and(|u| u.role == crate::domain::Role::Radiologist)
    };
    view! {
        <Transition fallback=|| ()>
            {move || report.get().map(|r| match r {
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                // An element, not `()`: an empty AnyView renders a comment on
                // the server that hydration then trips over.
                Ok(None) => view! { <div class="no-report" hidden></div> }.into_any(),
                Ok(Some(r)) => view! {
                    <ReportView r=r.clone()/>
                    <ReportActions r case_id reader=reader() save sign addendum/>
                }.into_any(),
            })}
        </Transition>
    }
}

/// Download for everyone; edit, sign and addenda for radiologists.
#[component]
fn ReportActions(
    r: ReportDto,
    case_id: Uuid,
    reader: bool,
    save: ServerAction<SaveReport>,
    sign: ServerAction<SignReport>,
    addendum: ServerAction<AddAddendum>,
) -> impl IntoView {
    use crate::ui::{CsrfField, FieldErr, FormError};
    let signed = r.status == "signed";
    let s = r.sections.clone();
    view! {
        <div class="row report-actions">
            <a class="button" href=format!("/api/v1/cases/{case_id}/report.pdf") download>
                {if signed { "Download PDF" } else { "Download draft PDF" }}
            </a>
            <a class="button" href=format!("/api/v1/cases/{case_id}/dicom.zip") download>
                "Download DICOM (SR, key images, studies)"
            </a>
        </div>
        {signed.then(|| view! { <crate::sends::PacsPanel case_id reader/> })}
        {(reader && !signed).then(|| view! {
            <details class="edit-report">
                <summary>"Edit the draft"</summary>
                <ActionForm action=save attr:class="stack">
                    <CsrfField/>
                    <input type="hidden" name="case_id" value=case_id.to_string()/>
                    <label>"Clinical information"<textarea name="clinical_information" rows="2">{s.clinical_information.clone()}</textarea></label>
                    <label>"Technique"<textarea name="technique" rows="2">{s.technique.clone()}</textarea></label>
                    <label>"Findings"<textarea name="findings" rows="6">{s.findings.clone()}</textarea></label>
                    <label>"Impression"<textarea name="impression" rows="4">{s.impression.clone()}</textarea></label>
                    <label>"Recommendations"<textarea name="recommendations" rows="3">{s.recommendations.clone()}</textarea></label>
                    <FieldErr value=save.value() name="clinical_information"/>
                    <FieldErr value=save.value() name="technique"/>
                    <FieldErr value=save.value() name="findings"/>
                    <FieldErr value=save.value() name="impression"/>
                    <FieldErr value=save.value() name="recommendations"/>
                    <FormError value=save.value()/>
                    <button type="submit">"Save draft"</button>
                </ActionForm>
            </details>
            <ActionForm action=sign attr:class="stack sign-report">
                <CsrfField/>
                <input type="hidden" name="case_id" value=case_id.to_string()/>
                <p class="muted small">"Signing makes the saved text final under your name; later changes are addenda."</p>
                <label>"Your password"<input type="password" name="password" autocomplete="current-password" required/></label>
                <FieldErr value=sign.value() name="password"/>
                <FieldErr value=sign.value() name="findings"/>
                <FieldErr value=sign.value() name="impression"/>
                <FormError value=sign.value()/>
                <button type="submit" class="primary">"Sign report"</button>
            </ActionForm>
        })}
        {(reader && signed).then(|| view! {
            <ActionForm action=addendum attr:class="stack addendum">
                <CsrfField/>
                <input type="hidden" name="case_id" value=case_id.to_string()/>
                <label>"Addendum"<textarea name="text" rows="3" required></textarea></label>
                <FieldErr value=addendum.value() name="text"/>
                <FormError value=addendum.value()/>
                <button type="submit">"Add addendum"</button>
            </ActionForm>
        })}
    }
}

#[component]
fn ReportView(r: ReportDto) -> impl IntoView {
    let writer = match (r.writer.as_str(), &r.model, &r.builtin_version) {
        ("llm", Some(m), _) => format!(
            "Drafted by the language model {m} (prompt {})",
            r.prompt_version.clone().unwrap_or_default()
        ),
        (_, _, Some(v)) => format!("Drafted by MedVision's built-in writer {v}"),
        _ => "Drafted by MedVision's built-in writer".into(),
    };
    let why = r
        .fallback
        .as_ref()
        .filter(|_| r.writer != "llm")
        .map(|f| format!("Built-in writer used because {}.", f.describe()));
    let models = r
        .finding_models
        .iter()
        .map(|m| format!("{} {}", m.model, m.model_version))
        .collect::<Vec<_>>()
        .join(", ");
    let v = r.verification.clone();
    let removed = (!v.removed_citations.is_empty()).then(|| {
        format!(
            "{} citation(s) removed because retrieval did not return them for this case: {}",
            v.removed_citations.len(),
            v.removed_citations.join(", ")
        )
    });
    let rejected = v
        .rejected_reason
        .clone()
        .map(|why| format!("The LLM's draft was rejected: {why}"));
    let signed = r.status == "signed";
    view! {
        <div class="report" id="report" data-writer=r.writer.clone() data-status=r.status.clone()>
            <h3>{if signed { "Report (signed)" } else { "Draft report" }}</h3>
            {(!signed).then(|| view! {
                <p class="badge ai">{r.label.clone()}</p>
            })}
            <p class="muted small">{writer}" · revision "{r.revision}" · findings from "{models}</p>
            {r.demo.then(|| view! {
                <p class="warning">"A demonstration model trained on synthetic phantoms contributed: not for clinical use."</p>
            })}
            {why.map(|w| view! { <p class="notice fallback">{w}</p> })}
            {rejected.map(|w| view! { <p class="notice">{w}</p> })}
            {removed.map(|w| view! { <p class="notice">{w}</p> })}
            <dl class="sections">
                {r.sections.named().into_iter().filter(|(_, t)| !t.trim().is_empty()).map(|(name, text)| view! {
                    <dt>{name}</dt>
                    <dd class="prewrap">{text.to_owned()}</dd>
                }).collect_view()}
            </dl>
            {(!r.explanation.text.trim().is_empty()).then(|| view! {
                <h4>"For the referring doctor"</h4>
                <p class="prewrap explanation">{r.explanation.text.clone()}</p>
            })}
            {(!r.citations.is_empty()).then(|| view! {
                <h4>"References"</h4>
                <ol class="references">
                    {r.citations.iter().map(|c| view! {
                        <li>
                            <span class="mono">"["{c.id.clone()}"]"</span>" "
                            {match c.url.clone() {
                                Some(u) => view! { <a href=u target="_blank" rel="noopener noreferrer">{c.title.clone()}</a> }.into_any(),
                                None => view! { <span>{c.title.clone()}</span> }.into_any(),
                            }}
                            {c.year.map(|y| format!(" ({y})"))}
                        </li>
                    }).collect_view()}
                </ol>
            })}
            {r.signed_by.clone().map(|by| view! {
                <p class="signature">"Signed by "{by}{r.signed_at.map(|t| format!(" on {}", t.format("%Y-%m-%d %H:%M UTC")))}</p>
            })}
            {r.edited_by.clone().filter(|_| !signed).map(|by| view! {
                <p class="muted small">"Edited by "{by}"; no longer redrafted by the pipeline."</p>
            })}
            {(!r.addenda.is_empty()).then(|| view! {
                <h4>"Addenda"</h4>
                <ol class="addenda">
                    {r.addenda.iter().map(|a| view! {
                        <li><p class="prewrap">{a.text.clone()}</p>
                            <span class="muted small">{a.author.clone()}", "{a.created_at.format("%Y-%m-%d %H:%M UTC").to_string()}</span></li>
                    }).collect_view()}
                </ol>
            })}
            <LiteraturePanel sources=r.sources.clone() note=r.sources_note.clone()/>
        </div>
    }
}

/// The passages retrieval returned: what the draft could cite, and why each matched.
#[component]
fn LiteraturePanel(sources: Vec<SourceDto>, note: Option<String>) -> impl IntoView {
    let open = !sources.is_empty();
    view! {
        <details class="literature" open=open>
            <summary>{format!("Literature and guidelines ({})", sources.len())}</summary>
            {note.map(|n| view! { <p class="muted">{n}</p> })}
            <ul>
                {sources.into_iter().map(|s| view! {
                    <li data-source=s.id.clone()>
                        <div>
                            <span class="mono">{s.id.clone()}</span>" · "
                            {match s.url.clone() {
                                Some(u) => view! { <a href=u target="_blank" rel="noopener noreferrer">{s.title.clone()}</a> }.into_any(),
                                None => view! { <span>{s.title.clone()}</span> }.into_any(),
                            }}
                            {s.year.map(|y| format!(" ({y})"))}
                            {s.section.clone().map(|x| view! { <span class="muted">" · "{x}</span> })}
                        </div>
                        <blockquote>{s.passage.clone()}</blockquote>
                        <div class="muted small">"Why it matched: "{s.why_matched.clone()}</div>
                    </li>
                }).collect_view()}
            </ul>
        </details>
    }
}
