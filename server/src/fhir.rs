//! FHIR R4 (4.0.1) read access to a case's results for the EHR:
//! `DiagnosticReport` (the report), `ImagingStudy` (each study with its
//! series and instances by DICOM UID) and `Observation` (each AI finding
//! with the reader's decision). JSON only (`application/fhir+json`);
//! errors are `OperationOutcome`s. The same authentication and tenant
//! scoping as the REST API: another organisation's ids answer 404.

use crate::middleware::User;
use app::error::AppError;
use app::pipeline::FindingDto;
use app::ssr::{Actor, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use entity::{instance, report, series, study};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{json, Value};
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(capabilities))
        .route("/DiagnosticReport", get(search_reports))
        .route("/DiagnosticReport/{id}", get(diagnostic_report))
        .route("/ImagingStudy/{id}", get(imaging_study))
        .route("/Observation/{id}", get(observation))
        .fallback(|| async {
            outcome(
                StatusCode::NOT_FOUND,
                "not-found",
                "No such FHIR resource type or interaction here.",
            )
        })
}

/// The server's public URL, for the absolute URLs FHIR requires
/// (`presentedForm.url`, `Bundle.entry.fullUrl`).
#[derive(Clone)]
pub struct Base(pub String);

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
const CASE_SYSTEM: &str = "urn:medvision:case";

fn resource(v: Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, FHIR_JSON),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        v.to_string(),
    )
        .into_response()
}

fn outcome(status: StatusCode, code: &str, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, FHIR_JSON)],
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": text}]
        })
        .to_string(),
    )
        .into_response()
}

/// Application errors as OperationOutcomes, with the same status and the
/// same safe message the REST API gives.
fn fail(e: AppError) -> Response {
    let status = e.status();
    let code = match status {
        StatusCode::UNAUTHORIZED => "login",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::CONFLICT => "conflict",
        s if s.is_client_error() => "invalid",
        _ => "exception",
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "FHIR request failed");
    }
    outcome(status, code, &e.to_string())
}

fn id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

fn instant(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn subject(patient_ref: &str) -> Value {
    // MedVision keeps no Patient resource: the case's pseudonym is shown.
    json!({"display": patient_ref, "identifier": {"system": "urn:medvision:patient-ref", "value": patient_ref}})
}

async fn capabilities() -> Response {
    resource(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-24",
        "kind": "instance",
        "software": {"name": "MedVision", "version": env!("CARGO_PKG_VERSION")},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "resource": [
                {"type": "DiagnosticReport", "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchParam": [{"name": "identifier", "type": "token"}]},
                {"type": "ImagingStudy", "interaction": [{"code": "read"}]},
                {"type": "Observation", "interaction": [{"code": "read"}]}
            ]
        }]
    }))
}

async fn report_resource(
    db: &DatabaseConnection,
    base: &str,
    actor: &Actor,
    r: report::Model,
) -> Result<Value, AppError> {
    let case_id = r.case_id;
    let detail = app::cases::ssr::get(db, actor, case_id).await?;
    let dto = app::report::ssr::case_report(db, actor, case_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let findings = app::pipeline::ssr::case_findings(db, actor, case_id).await?;
    let studies = study::Entity::find()
        .filter(study::Column::CaseId.eq(case_id))
        .filter(study::Column::OrgId.eq(actor.org_id))
        .order_by_asc(study::Column::CreatedAt)
        .all(db)
        .await?;
    let status = match (dto.status.as_str(), dto.addenda.is_empty()) {
        ("signed", true) => "final",
        ("signed", false) => "appended",
        _ => "preliminary",
    };
    let mut conclusion = String::new();
    for (name, body) in dto.sections.named() {
        if !body.trim().is_empty() {
            conclusion.push_str(&format!("{name}: {}\n", body.trim()));
        }
    }
    for a in &dto.addenda {
        conclusion.push_str(&format!("Addendum ({}): {}\n", a.author, a.text.trim()));
    }
    let mut v = json!({
        "resourceType": "DiagnosticReport",
        "id": r.id.to_string(),
        "meta": {"lastUpdated": instant(dto.updated_at)},
        "identifier": [{"system": CASE_SYSTEM, "value": case_id.to_string()}],
        "status": status,
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
            "code": "RAD", "display": "Radiology"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4",
                             "display": "Diagnostic imaging study"}],
                 "text": format!("{} {}", detail.case.modality.as_str(), detail.case.body_part).trim().to_owned()},
        "subject": subject(&detail.case.patient_ref),
        "effectiveDateTime": instant(detail.case.created_at),
        "issued": instant(dto.signed_at.unwrap_or(dto.updated_at)),
        "result": findings.iter().map(|f| json!({"reference": format!("Observation/{}", f.id), "display": f.label})).collect::<Vec<_>>(),
        "imagingStudy": studies.iter().map(|s| json!({"reference": format!("ImagingStudy/{}", s.id)})).collect::<Vec<_>>(),
        "conclusion": conclusion.trim_end(),
        "presentedForm": [{
            "contentType": "application/pdf",
            "url": format!("{base}/api/v1/cases/{case_id}/report.pdf"),
            "title": if status == "preliminary" { "Draft report (AI-assisted, requires review)" } else { "Signed report (AI-assisted)" }
        }],
    });
    if let Some(by) = &dto.signed_by {
        v["resultsInterpreter"] = json!([{"display": by}]);
    }
    if v["result"].as_array().is_some_and(|a| a.is_empty()) {
        v.as_object_mut().map(|o| o.remove("result"));
    }
    if v["imagingStudy"].as_array().is_some_and(|a| a.is_empty()) {
        v.as_object_mut().map(|o| o.remove("imagingStudy"));
    }
    Ok(v)
}

async fn find_report(
    db: &DatabaseConnection,
    actor: &Actor,
    rid: Uuid,
) -> Result<report::Model, AppError> {
    let r = report::Entity::find_by_id(rid)
        .filter(report::Column::OrgId.eq(actor.org_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound)?;
    // The case's own visibility rule (doctors: their cases; readers: the
    // organisation's) decides, not the report's organisation alone.
    app::cases::ssr::find_visible(db, actor, r.case_id).await?;
    Ok(r)
}

/// `GET /fhir/DiagnosticReport/{id}`.
pub async fn diagnostic_report(
    State(state): State<AppState>,
    Extension(Base(base)): Extension<Base>,
    user: Result<User, AppError>,
    Path(raw): Path<String>,
) -> Response {
    let run = async {
        let User(actor) = user?;
        let r = find_report(&state.db, &actor, id(&raw)?).await?;
        report_resource(&state.db, &base, &actor, r).await
    };
    match run.await {
        Ok(v) => resource(v),
        Err(e) => fail(e),
    }
}

#[derive(serde::Deserialize)]
pub struct ReportSearch {
    /// `urn:medvision:case|<case id>` or the bare case id.
    identifier: Option<String>,
}

/// `GET /fhir/DiagnosticReport?identifier=urn:medvision:case|<case id>`:
/// a searchset Bundle with the case's report (or none).
pub async fn search_reports(
    State(state): State<AppState>,
    Extension(Base(base)): Extension<Base>,
    user: Result<User, AppError>,
    Query(q): Query<ReportSearch>,
) -> Response {
    let run = async {
        let User(actor) = user?;
        let raw = q.identifier.ok_or_else(|| {
            AppError::BadRequest("Search by identifier=urn:medvision:case|<case id>.".into())
        })?;
        let value = raw.strip_prefix(&format!("{CASE_SYSTEM}|")).unwrap_or(&raw);
        let mut entries = Vec::new();
        if let Ok(case_id) = Uuid::parse_str(value) {
            if app::cases::ssr::find_visible(&state.db, &actor, case_id)
                .await
                .is_ok()
            {
                if let Some(r) = report::Entity::find()
                    .filter(report::Column::CaseId.eq(case_id))
                    .filter(report::Column::OrgId.eq(actor.org_id))
                    .one(&state.db)
                    .await?
                {
                    let rid = r.id;
                    let v = report_resource(&state.db, &base, &actor, r).await?;
                    entries.push(json!({
                        "fullUrl": format!("{base}/fhir/DiagnosticReport/{rid}"),
                        "resource": v,
                        "search": {"mode": "match"}
                    }));
                }
            }
        }
        Ok::<_, AppError>(json!({
            "resourceType": "Bundle",
            "type": "searchset",
            "total": entries.len(),
            "entry": entries,
        }))
    };
    match run.await {
        Ok(mut v) => {
            if v["entry"].as_array().is_some_and(|a| a.is_empty()) {
                v.as_object_mut().map(|o| o.remove("entry"));
            }
            resource(v)
        }
        Err(e) => fail(e),
    }
}

fn dicom_modality(code: &str) -> Value {
    json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": code})
}

/// `GET /fhir/ImagingStudy/{id}`.
pub async fn imaging_study(
    State(state): State<AppState>,
    user: Result<User, AppError>,
    Path(raw): Path<String>,
) -> Response {
    let run = async {
        let User(actor) = user?;
        let db = &state.db;
        let s = study::Entity::find_by_id(id(&raw)?)
            .filter(study::Column::OrgId.eq(actor.org_id))
            .one(db)
            .await?
            .ok_or(AppError::NotFound)?;
        let detail = app::cases::ssr::get(db, &actor, s.case_id).await?;
        let all_series = series::Entity::find()
            .filter(series::Column::StudyId.eq(s.id))
            .order_by_asc(series::Column::Number)
            .all(db)
            .await?;
        let instances = instance::Entity::find()
            .filter(instance::Column::StudyId.eq(s.id))
            .order_by_asc(instance::Column::InstanceNumber)
            .all(db)
            .await?;
        let mut series_out = Vec::new();
        let mut modalities: Vec<String> = Vec::new();
        for se in &all_series {
            let mine: Vec<&instance::Model> =
                instances.iter().filter(|i| i.series_id == se.id).collect();
            let inst: Vec<Value> = mine
                .iter()
                .filter_map(|i| {
                    let h: Value = serde_json::from_str(&i.header).unwrap_or_default();
                    let class = crate::images::header_text(&h, "00080016")?;
                    let mut x = json!({
                        "uid": i.sop_uid,
                        "sopClass": {"system": "urn:ietf:rfc:3986", "code": format!("urn:oid:{class}")},
                    });
                    if let Some(n) = i.instance_number.and_then(|n| u32::try_from(n).ok()) {
                        x["number"] = json!(n);
                    }
                    Some(x)
                })
                .collect();
            if inst.is_empty() {
                // NIfTI and raster series have no DICOM identity.
                continue;
            }
            if !modalities.contains(&se.modality) {
                modalities.push(se.modality.clone());
            }
            let mut x = json!({
                "uid": se.series_uid,
                "modality": dicom_modality(&se.modality),
                "numberOfInstances": inst.len(),
                "instance": inst,
            });
            if let Some(n) = se.number.and_then(|n| u32::try_from(n).ok()) {
                x["number"] = json!(n);
            }
            if let Some(d) = &se.description {
                x["description"] = json!(d);
            }
            if let Some(b) = &se.body_part {
                x["bodySite"] = json!({"display": b});
            }
            series_out.push(x);
        }
        let n_instances: usize = series_out
            .iter()
            .map(|x| x["numberOfInstances"].as_u64().unwrap_or(0) as usize)
            .sum();
        let mut v = json!({
            "resourceType": "ImagingStudy",
            "id": s.id.to_string(),
            "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:{}", s.study_uid)}],
            "status": "available",
            "modality": modalities.iter().map(|m| dicom_modality(m)).collect::<Vec<_>>(),
            "subject": subject(&detail.case.patient_ref),
            "started": instant(s.created_at),
            "numberOfSeries": series_out.len(),
            "numberOfInstances": n_instances,
            "series": series_out,
        });
        if let Some(d) = &s.description {
            v["description"] = json!(d);
        }
        for k in ["modality", "series"] {
            if v[k].as_array().is_some_and(|a| a.is_empty()) {
                v.as_object_mut().map(|o| o.remove(k));
            }
        }
        Ok::<_, AppError>(v)
    };
    match run.await {
        Ok(v) => resource(v),
        Err(e) => fail(e),
    }
}

fn observation_resource(f: &FindingDto, patient_ref: &str) -> Value {
    let demo = crate::reports::is_demo(f);
    let (status, present, note) = match &f.review {
        None => (
            "preliminary",
            f.positive,
            "AI suggestion, not yet reviewed by a radiologist.".to_owned(),
        ),
        Some(r) => (
            // A rejected suggestion is a final, negative observation.
            "final",
            r.present,
            format!(
                "Radiologist decision: {} by {}{}",
                r.decision,
                r.reviewer,
                r.reason
                    .as_deref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default()
            ),
        ),
    };
    let mut method = format!("AI suggestion: {} {}", f.model, f.model_version);
    if demo {
        method
            .push_str(" (demonstration model trained on synthetic phantoms, not for clinical use)");
    }
    let label = f
        .review
        .as_ref()
        .filter(|r| r.decision == "edited")
        .map_or(f.label.clone(), |r| r.label.clone());
    json!({
        "resourceType": "Observation",
        "id": f.id.to_string(),
        "status": status,
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "imaging", "display": "Imaging"}]}],
        "code": {"text": label},
        "subject": subject(patient_ref),
        "valueQuantity": {
            "value": (f.probability.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0,
            "unit": "probability",
            "system": "http://unitsofmeasure.org",
            "code": "1"
        },
        "interpretation": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": if present { "POS" } else { "NEG" },
            "display": if present { "Positive" } else { "Negative" }}]}],
        "method": {"text": method},
        "note": [{"text": note}],
        "derivedFrom": [{"reference": format!("ImagingStudy/{}", f.study_id)}],
    })
}

/// `GET /fhir/Observation/{id}`: an AI finding.
pub async fn observation(
    State(state): State<AppState>,
    user: Result<User, AppError>,
    Path(raw): Path<String>,
) -> Response {
    let run = async {
        let User(actor) = user?;
        let fid = id(&raw)?;
        let f = entity::finding::Entity::find_by_id(fid)
            .filter(entity::finding::Column::OrgId.eq(actor.org_id))
            .one(&state.db)
            .await?
            .ok_or(AppError::NotFound)?;
        let detail = app::cases::ssr::get(&state.db, &actor, f.case_id).await?;
        let all = app::pipeline::ssr::case_findings(&state.db, &actor, f.case_id).await?;
        let dto = all
            .into_iter()
            .find(|x| x.id == fid)
            .ok_or(AppError::NotFound)?;
        Ok::<_, AppError>(observation_resource(&dto, &detail.case.patient_ref))
    };
    match run.await {
        Ok(v) => resource(v),
        Err(e) => fail(e),
    }
}
