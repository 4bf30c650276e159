//! The report and review endpoints: edit, sign (with re-authentication),
//! addenda, reader decisions on findings, and the PDF a hospital files.
//! Thin: the rules and the tenant checks live in `app::report::ssr` and
//! `app::review::ssr`.

use crate::images::Imaging;
use crate::middleware::User;
use app::error::AppError;
use app::report::{AddendumInput, ReportDto, ReportEdit, SignInput};
use app::review::{AddFindingInput, ReviewDto, ReviewInput};
use app::ssr::{AppState, ClientIp};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use reporting::pdf::{self, ReportDocument};
use std::sync::Arc;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cases/{id}/report", axum::routing::put(edit))
        .route("/cases/{id}/report/sign", post(sign))
        .route("/cases/{id}/report/addenda", post(addendum))
        .route("/cases/{id}/report.pdf", get(report_pdf))
        .route("/cases/{id}/reviews", get(reviews))
        .route("/cases/{id}/findings", post(add_finding))
        .route("/cases/{id}/findings/{finding}/review", post(review))
}

fn id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

/// Replaces the draft's sections (radiologists; a signed report answers 409).
#[utoipa::path(put, path = "/api/v1/cases/{id}/report", tag = "review",
    request_body = ReportEdit,
    responses((status = 200, body = ReportDto), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn edit(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
    Json(input): Json<ReportEdit>,
) -> Result<Json<ReportDto>, AppError> {
    Ok(Json(
        app::report::ssr::edit_report(&state.db, &actor, id(&raw)?, input).await?,
    ))
}

/// Signs the draft: the signer's password again, optionally the final text.
#[utoipa::path(post, path = "/api/v1/cases/{id}/report/sign", tag = "review",
    request_body = SignInput,
    responses((status = 200, body = ReportDto), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn sign(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    User(actor): User,
    Path(raw): Path<String>,
    Json(input): Json<SignInput>,
) -> Result<Json<ReportDto>, AppError> {
    Ok(Json(
        app::report::ssr::sign_report(&state, &actor, id(&raw)?, input, ip.0).await?,
    ))
}

/// Adds text to a signed report, which itself never changes.
#[utoipa::path(post, path = "/api/v1/cases/{id}/report/addenda", tag = "review",
    request_body = AddendumInput,
    responses((status = 201, body = ReportDto), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn addendum(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
    Json(input): Json<AddendumInput>,
) -> Result<(StatusCode, Json<ReportDto>), AppError> {
    Ok((
        StatusCode::CREATED,
        Json(app::report::ssr::add_addendum(&state.db, &actor, id(&raw)?, input).await?),
    ))
}

/// Every reader decision on the case, oldest first.
#[utoipa::path(get, path = "/api/v1/cases/{id}/reviews", tag = "review",
    responses((status = 200, body = Vec<ReviewDto>), (status = 404)))]
pub async fn reviews(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<Vec<ReviewDto>>, AppError> {
    Ok(Json(
        app::review::ssr::list(&state.db, &actor, id(&raw)?).await?,
    ))
}

/// Accept, reject (with a reason) or edit an AI finding.
#[utoipa::path(post, path = "/api/v1/cases/{id}/findings/{finding}/review", tag = "review",
    request_body = ReviewInput,
    responses((status = 201, body = ReviewDto), (status = 403), (status = 404), (status = 422)))]
pub async fn review(
    State(state): State<AppState>,
    User(actor): User,
    Path((raw, finding)): Path<(String, String)>,
    Json(input): Json<ReviewInput>,
) -> Result<(StatusCode, Json<ReviewDto>), AppError> {
    let r = app::review::ssr::review_finding(&state.db, &actor, id(&raw)?, id(&finding)?, input)
        .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// A finding the models missed.
#[utoipa::path(post, path = "/api/v1/cases/{id}/findings", tag = "review",
    request_body = AddFindingInput,
    responses((status = 201, body = ReviewDto), (status = 403), (status = 404), (status = 422)))]
pub async fn add_finding(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
    Json(input): Json<AddFindingInput>,
) -> Result<(StatusCode, Json<ReviewDto>), AppError> {
    let r = app::review::ssr::add_finding(&state.db, &actor, id(&raw)?, input).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// The report as a PDF: DRAFT watermark until signed; findings with each
/// reader's decision, key images with their overlays, references, models
/// and their intended use, the signature and addenda.
#[utoipa::path(get, path = "/api/v1/cases/{id}/report.pdf", tag = "review",
    responses((status = 200, content_type = "application/pdf"), (status = 404), (status = 409)))]
pub async fn report_pdf(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let case_id = id(&raw)?;
    let doc = document(&state, &img, &actor, case_id).await?;
    let bytes = tokio::task::spawn_blocking(move || {
        pdf::render_report_pdf(&doc, &pdf::PdfOptions::default())
    })
    .await
    .map_err(|_| AppError::Internal)?
    .map_err(|e| {
        tracing::error!(error = %e, "PDF rendering failed");
        AppError::Internal
    })?;
    // The file name carries no patient data and nothing a header could be
    // split on: the case id only.
    let name = format!(
        "medvision-report-{}.pdf",
        &case_id.simple().to_string()[..12]
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

/// A finding made by a demonstration model (trained on synthetic
/// phantoms), which every output must say.
pub(crate) fn is_demo(f: &app::pipeline::FindingDto) -> bool {
    reporting::ModelUse {
        model: f.model.clone(),
        model_version: f.model_version.clone(),
        intended_use: f.intended_use.clone(),
    }
    .is_demo()
}

/// Most key images a PDF carries (four fit two pages).
const MAX_KEY_IMAGES: usize = 4;

async fn document(
    state: &AppState,
    img: &Imaging,
    actor: &app::ssr::Actor,
    case_id: Uuid,
) -> Result<ReportDocument, AppError> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
    let db = &state.db;
    let detail = app::cases::ssr::get(db, actor, case_id).await?;
    let c = &detail.case;
    let report = app::report::ssr::case_report(db, actor, case_id)
        .await?
        .ok_or_else(|| AppError::Conflict("The case has no report yet.".into()))?;
    let findings = app::pipeline::ssr::case_findings(db, actor, case_id).await?;
    let reviews = app::review::ssr::case_reviews(db, case_id).await?;
    let org = actor.org_name.clone();
    let studies = entity::study::Entity::find()
        .filter(entity::study::Column::CaseId.eq(case_id))
        .order_by_asc(entity::study::Column::CreatedAt)
        .all(db)
        .await?;

    let urgency = |u: &str| match u {
        "stat" => pdf::Urgency::Stat,
        "urgent" => pdf::Urgency::Urgent,
        "priority" => pdf::Urgency::Priority,
        _ => pdf::Urgency::Routine,
    };
    let mut rows: Vec<pdf::Finding> = findings
        .iter()
        .map(|f| {
            let (decision, by) = match &f.review {
                Some(r) => (
                    match r.decision.as_str() {
                        "accepted" => pdf::Decision::Accepted,
                        "rejected" => pdf::Decision::Rejected,
                        _ => pdf::Decision::Edited,
                    },
                    Some(r.reviewer.clone()),
                ),
                None => (pdf::Decision::Pending, None),
            };
            let label = match &f.review {
                Some(r) if r.label != f.label => format!("{} (AI: {})", r.label, f.label),
                _ => f.label.clone(),
            };
            pdf::Finding {
                label,
                probability: f.probability.clamp(0.0, 1.0),
                threshold: f.threshold.clamp(0.0, 1.0),
                positive: f.review.as_ref().map_or(f.positive, |r| r.present),
                urgency: urgency(&f.urgency),
                decision,
                decided_by: by,
                model: Some(format!("{} {}", f.model, f.model_version)),
            }
        })
        .collect();
    rows.extend(
        reviews
            .iter()
            .filter(|r| r.decision == "added")
            .map(|r| pdf::Finding {
                label: match &r.location {
                    Some(l) => format!("{} ({l})", r.label),
                    None => r.label.clone(),
                },
                probability: 0.0,
                threshold: 0.0,
                positive: true,
                urgency: pdf::Urgency::Routine,
                decision: pdf::Decision::Added,
                decided_by: Some(r.reviewer.clone()),
                model: None,
            }),
    );

    let mut key_images = Vec::new();
    for f in findings.iter().filter(|f| f.heatmap_url.is_some()) {
        if key_images.len() >= MAX_KEY_IMAGES {
            break;
        }
        let Some(artefact_id) = f
            .heatmap_url
            .as_deref()
            .and_then(|u| u.rsplit('/').next())
            .and_then(|s| Uuid::parse_str(s).ok())
        else {
            continue;
        };
        let a = app::pipeline::ssr::artefact(db, actor, artefact_id).await?;
        let png = img.blobs.get(a.org_id, &a.blob_sha256).await.map_err(|e| {
            tracing::error!(error = %e, "blob store failed");
            AppError::Internal
        })?;
        let seg = a.kind == "mask";
        key_images.push(pdf::KeyImage {
            caption: format!(
                "{} for {} ({} {}), AI suggestion",
                if seg {
                    "Segmentation mask"
                } else {
                    "Grad-CAM heatmap"
                },
                f.label,
                f.model,
                f.model_version
            ),
            image_png: png.to_vec(),
            overlay_png: None,
            legend: Some(if seg {
                pdf::Legend::Classes {
                    entries: vec![pdf::LegendEntry {
                        label: f.label.clone(),
                        rgb: [230, 60, 60],
                    }],
                }
            } else {
                pdf::Legend::ColourBar {
                    title: "Model attention (Grad-CAM)".into(),
                    colour_map: pdf::ColourMap::Jet,
                    min_label: "low".into(),
                    max_label: "high".into(),
                }
            }),
        });
    }

    let mut models: Vec<pdf::ModelInfo> = Vec::new();
    for f in &findings {
        if !models
            .iter()
            .any(|m| m.name == f.model && m.version == f.model_version)
        {
            let demo = is_demo(f);
            models.push(pdf::ModelInfo {
                name: f.model.clone(),
                version: f.model_version.clone(),
                intended_use: f.intended_use.clone(),
                demo,
            });
        }
    }
    let s = &report.sections;
    Ok(ReportDocument {
        organisation: pdf::Organisation {
            name: org,
            address_lines: Vec::new(),
        },
        patient_pseudonym: c.patient_ref.clone(),
        case_title: format!("{} {}", c.modality.as_str(), c.body_part)
            .trim()
            .to_owned(),
        case_reference: Some(c.id.to_string()),
        studies: studies
            .iter()
            .map(|st| pdf::Study {
                modality: st.modality.clone(),
                body_part: c.body_part.clone(),
                date: None,
                description: st.description.clone(),
            })
            .collect(),
        key_images,
        findings: rows,
        sections: pdf::ReportSections {
            clinical_information: s.clinical_information.clone(),
            technique: s.technique.clone(),
            findings: s.findings.clone(),
            impression: s.impression.clone(),
            recommendations: s.recommendations.clone(),
        },
        plain_language: Some(report.explanation.text.clone()).filter(|t| !t.trim().is_empty()),
        references: report
            .citations
            .iter()
            .map(|r| pdf::Reference {
                id: r.id.clone(),
                title: r.title.clone(),
                year: r.year.map(i32::from),
                source: r.source.clone(),
                url: r.url.clone(),
            })
            .collect(),
        models,
        signature: match (&report.signed_by, report.signed_at) {
            (Some(by), Some(at)) if report.status == "signed" => Some(pdf::Signature {
                signed_by: by.clone(),
                role: "Radiologist".into(),
                signed_at: at,
            }),
            _ => None,
        },
        addenda: report
            .addenda
            .iter()
            .map(|a| pdf::Addendum {
                author: a.author.clone(),
                written_at: a.created_at,
                text: a.text.clone(),
            })
            .collect(),
        generated_at: app::ssr::now(),
    })
}
