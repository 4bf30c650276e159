//! What leaves MedVision in DICOM: a case's results as Comprehensive SR
//! documents (one per study, referencing its instances by UID) and
//! Secondary Captures of the key images with their overlays, the ZIP
//! export of a case (those plus the stored, de-identified instances), and
//! the outbox sender that C-STOREs them to the organisation's PACS with
//! retries.

use crate::images::header_text;
use crate::images::Imaging;
use crate::middleware::User;
use crate::settings::Settings;
use app::error::AppError;
use app::sends::{DicomSendDto, SendInput};
use app::ssr::{Actor, AppState};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use entity::{dicom_node, dicom_send, instance, study};
use interop::sr::{Finding, SeriesRef, SrDocument, Verifier};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/cases/{id}/dicom/send", post(send))
        .route("/cases/{id}/dicom/sends", get(sends))
        .route("/cases/{id}/dicom.zip", get(export_zip))
}

fn id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

/// A DICOM UID that is the same every time it is derived from the same
/// parts (a re-sent SR replaces the earlier copy in the PACS).
fn derived_uid(parts: &[&str]) -> String {
    imaging::write::uuid_uid(&format!("medvision/{}", parts.join("/")))
}

/// Most key images sent per study.
const MAX_KEY_IMAGES: usize = 4;

/// The case's results as DICOM files under `dir`: per study, the
/// structured report and a Secondary Capture of each key image with its
/// overlay.
pub async fn result_objects(
    db: &DatabaseConnection,
    blobs: &crate::blobs::Blobs,
    actor: &Actor,
    case_id: Uuid,
    dir: &FsPath,
) -> Result<Vec<PathBuf>, AppError> {
    let detail = app::cases::ssr::get(db, actor, case_id).await?;
    let c = &detail.case;
    let report = app::report::ssr::case_report(db, actor, case_id)
        .await?
        .ok_or_else(|| AppError::Conflict("The case has no report yet.".into()))?;
    let findings = app::pipeline::ssr::case_findings(db, actor, case_id).await?;
    let reviews = app::review::ssr::case_reviews(db, case_id).await?;
    let studies = study::Entity::find()
        .filter(study::Column::CaseId.eq(case_id))
        .filter(study::Column::OrgId.eq(actor.org_id))
        .order_by_asc(study::Column::CreatedAt)
        .all(db)
        .await?;
    if studies.is_empty() {
        return Err(AppError::Conflict("The case has no images.".into()));
    }
    let mut text = String::new();
    for (name, body) in report.sections.named() {
        if !body.trim().is_empty() {
            text.push_str(&format!("{name}:\n{}\n\n", body.trim()));
        }
    }
    for a in &report.addenda {
        text.push_str(&format!(
            "Addendum ({}, {}):\n{}\n\n",
            a.author,
            a.created_at.format("%Y-%m-%d %H:%M UTC"),
            a.text.trim()
        ));
    }
    let verifier = match (&report.signed_by, report.signed_at) {
        (Some(name), Some(at)) if report.status == "signed" => Some(Verifier {
            name: name.clone(),
            organisation: actor.org_name.clone(),
            datetime: at.format("%Y%m%d%H%M%S").to_string(),
        }),
        _ => None,
    };
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for s in &studies {
        let rows = instance::Entity::find()
            .filter(instance::Column::StudyId.eq(s.id))
            .filter(instance::Column::OrgId.eq(actor.org_id))
            .filter(instance::Column::Kind.eq("dicom"))
            .order_by_asc(instance::Column::InstanceNumber)
            .all(db)
            .await?;
        if rows.is_empty() {
            // NIfTI and raster studies have no DICOM identity to refer to.
            continue;
        }
        let mut series: Vec<SeriesRef> = Vec::new();
        let mut first_header = serde_json::Value::Null;
        for r in &rows {
            let h: serde_json::Value = serde_json::from_str(&r.header).unwrap_or_default();
            if first_header.is_null() {
                first_header = h.clone();
            }
            let Some(class) = header_text(&h, "00080016") else {
                continue;
            };
            let series_uid = header_text(&h, "0020000E").unwrap_or_default();
            match series.iter_mut().find(|x| x.series_uid == series_uid) {
                Some(x) => x.instances.push((class, r.sop_uid.clone())),
                None => series.push(SeriesRef {
                    series_uid,
                    instances: vec![(class, r.sop_uid.clone())],
                }),
            }
        }
        let study_findings: Vec<Finding> = findings
            .iter()
            .filter(|f| f.study_id == s.id)
            .map(|f| {
                let demo = crate::reports::is_demo(f);
                let mut source = format!("AI suggestion ({} {})", f.model, f.model_version);
                if demo {
                    source.push_str(
                        ", demonstration model trained on synthetic phantoms, not for clinical use",
                    );
                }
                let decision = match &f.review {
                    None => "not reviewed".to_owned(),
                    Some(r) => match r.decision.as_str() {
                        "rejected" => format!(
                            "rejected by {}{}",
                            r.reviewer,
                            r.reason
                                .as_deref()
                                .map(|x| format!(": {x}"))
                                .unwrap_or_default()
                        ),
                        "edited" => format!("edited by {} to {}", r.reviewer, r.label),
                        d => format!("{d} by {}", r.reviewer),
                    },
                };
                Finding {
                    label: f.label.clone(),
                    probability: Some(f.probability),
                    source,
                    decision,
                }
            })
            .chain(
                reviews
                    .iter()
                    .filter(|r| r.decision == "added" && r.study_id.is_none_or(|x| x == s.id))
                    .map(|r| Finding {
                        label: match &r.location {
                            Some(l) => format!("{} ({l})", r.label),
                            None => r.label.clone(),
                        },
                        probability: None,
                        source: format!("Added by {}", r.reviewer),
                        decision: "added".into(),
                    }),
            )
            .collect();
        let algorithm = findings
            .iter()
            .find(|f| f.study_id == s.id)
            .map(|f| (f.model.clone(), f.model_version.clone()));
        let revision = report.revision.to_string();
        let addenda = report.addenda.len().to_string();
        let doc = SrDocument {
            sop_instance_uid: derived_uid(&[
                "sr",
                &report.id.to_string(),
                &s.id.to_string(),
                &revision,
                &addenda,
            ]),
            series_instance_uid: derived_uid(&["sr-series", &s.id.to_string()]),
            study_uid: s.study_uid.clone(),
            study_date: header_text(&first_header, "00080020").unwrap_or_default(),
            study_time: header_text(&first_header, "00080030").unwrap_or_default(),
            study_id: String::new(),
            accession: String::new(),
            patient_id: c.patient_ref.clone(),
            patient_name: String::new(),
            patient_sex: match c.sex.as_str() {
                "M" | "F" | "O" => c.sex.as_str().to_owned(),
                _ => String::new(),
            },
            series,
            algorithm,
            findings: study_findings,
            impression: text.clone(),
            verifier: verifier.clone(),
            content_date: now.format("%Y%m%d").to_string(),
            content_time: now.format("%H%M%S").to_string(),
            institution: actor.org_name.clone(),
        };
        let (patient_id, patient_sex) = (doc.patient_id.clone(), doc.patient_sex.clone());
        let (study_date, study_time) = (doc.study_date.clone(), doc.study_time.clone());
        let path = dir.join(format!("sr-{}.dcm", s.id.simple()));
        let p = path.clone();
        tokio::task::spawn_blocking(move || doc.write(&p))
            .await
            .map_err(|_| AppError::Internal)?
            .map_err(|e| {
                tracing::error!(error = %e, "writing a structured report failed");
                AppError::Internal
            })?;
        out.push(path);

        // Key images: each finding's overlay, as the viewer shows it.
        let mut n = 0u32;
        for f in findings.iter().filter(|f| f.study_id == s.id) {
            if n as usize >= MAX_KEY_IMAGES {
                break;
            }
            let Some(artefact_id) = f
                .heatmap_url
                .as_deref()
                .and_then(|u| u.rsplit('/').next())
                .and_then(|x| Uuid::parse_str(x).ok())
            else {
                continue;
            };
            let a = app::pipeline::ssr::artefact(db, actor, artefact_id).await?;
            let png = blobs.get(a.org_id, &a.blob_sha256).await.map_err(|e| {
                tracing::error!(error = %e, "blob store failed");
                AppError::Internal
            })?;
            n += 1;
            let what = if a.kind == "mask" {
                "Segmentation mask"
            } else {
                "Grad-CAM heatmap"
            };
            let derivation = format!(
                "{what} for {} over the key image of this study; AI suggestion ({} {}){}",
                f.label,
                f.model,
                f.model_version,
                if crate::reports::is_demo(f) {
                    ", demonstration model trained on synthetic phantoms, not for clinical use"
                } else {
                    ""
                }
            );
            let key = interop::sc::KeyImage {
                sop_instance_uid: derived_uid(&["sc", &artefact_id.to_string()]),
                series_instance_uid: derived_uid(&["sc-series", &s.id.to_string()]),
                study_uid: s.study_uid.clone(),
                patient_id: patient_id.clone(),
                patient_sex: patient_sex.clone(),
                study_date: study_date.clone(),
                study_time: study_time.clone(),
                instance_number: n,
                derivation,
                rows: 0,
                columns: 0,
                rgb: Vec::new(),
                content_date: now.format("%Y%m%d").to_string(),
                content_time: now.format("%H%M%S").to_string(),
            };
            let path = dir.join(format!("sc-{}.dcm", artefact_id.simple()));
            let p = path.clone();
            tokio::task::spawn_blocking(move || -> Result<(), String> {
                let im = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
                    .map_err(|e| e.to_string())?
                    .to_rgb8();
                let (w, h) = im.dimensions();
                let key = interop::sc::KeyImage {
                    rows: u16::try_from(h).map_err(|_| "image too tall")?,
                    columns: u16::try_from(w).map_err(|_| "image too wide")?,
                    rgb: im.into_raw(),
                    ..key
                };
                key.write(&p).map_err(|e| e.to_string())
            })
            .await
            .map_err(|_| AppError::Internal)?
            .map_err(|e| {
                tracing::error!(error = %e, "writing a key image failed");
                AppError::Internal
            })?;
            out.push(path);
        }
    }
    if out.is_empty() {
        return Err(AppError::Conflict(
            "The case has no DICOM images to report on.".into(),
        ));
    }
    Ok(out)
}

/// Queue the signed results for the PACS (radiologists and admins).
#[utoipa::path(post, path = "/api/v1/cases/{id}/dicom/send", tag = "dicom",
    request_body = SendInput,
    responses((status = 202, body = Vec<DicomSendDto>), (status = 403), (status = 404), (status = 409)))]
pub async fn send(
    State(state): State<AppState>,
    Extension(outbox): Extension<Arc<Outbox>>,
    User(actor): User,
    Path(raw): Path<String>,
    Json(input): Json<SendInput>,
) -> Result<(StatusCode, Json<Vec<DicomSendDto>>), AppError> {
    let out = app::sends::ssr::request(&state.db, &actor, id(&raw)?, input).await?;
    outbox.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// The case's deliveries to the PACS, newest first.
#[utoipa::path(get, path = "/api/v1/cases/{id}/dicom/sends", tag = "dicom",
    responses((status = 200, body = Vec<DicomSendDto>), (status = 404)))]
pub async fn sends(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<Vec<DicomSendDto>>, AppError> {
    Ok(Json(
        app::sends::ssr::list(&state.db, &actor, id(&raw)?).await?,
    ))
}

/// The case as DICOM: its structured report(s), key images with their
/// overlays and every stored, de-identified instance, in a ZIP (`SR/`,
/// `KEY/`, `IMAGES/`).
#[utoipa::path(get, path = "/api/v1/cases/{id}/dicom.zip", tag = "dicom",
    responses((status = 200, content_type = "application/zip"), (status = 404), (status = 409)))]
pub async fn export_zip(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let case_id = id(&raw)?;
    let internal = |what: &'static str| {
        move |e: std::io::Error| {
            tracing::error!(error = %e, "{what}");
            AppError::Internal
        }
    };
    tokio::fs::create_dir_all(&img.tmp_dir)
        .await
        .map_err(internal("creating the temporary folder"))?;
    let work = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(&img.tmp_dir)
        .map_err(internal("creating an export folder"))?;
    let srs = result_objects(&state.db, &img.blobs, &actor, case_id, work.path()).await?;
    let rows = instance::Entity::find()
        .filter(instance::Column::CaseId.eq(case_id))
        .filter(instance::Column::OrgId.eq(actor.org_id))
        .filter(instance::Column::Kind.eq("dicom"))
        .select_only()
        .column(instance::Column::BlobSha256)
        .column(instance::Column::SopUid)
        .into_tuple::<(String, String)>()
        .all(&state.db)
        .await?;
    let mut files: Vec<(String, PathBuf)> = srs
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let folder = if name.starts_with("sc-") { "KEY" } else { "SR" };
            (format!("{folder}/{name}"), p.clone())
        })
        .collect();
    for (i, (sha, _sop)) in rows.iter().enumerate() {
        let p = work.path().join(format!("i{i:06}.dcm"));
        img.blobs
            .get_to_file(actor.org_id, sha, &p)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "blob store failed");
                AppError::Internal
            })?;
        files.push((format!("IMAGES/{i:06}.dcm"), p));
    }
    let zip_path = work.path().join("case.zip");
    let zp = zip_path.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let f = std::fs::File::create(&zp)?;
        let mut z = zip::ZipWriter::new(std::io::BufWriter::new(f));
        // DICOM pixel data rarely deflates well; stored keeps it quick.
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for (name, path) in files {
            z.start_file(name, opts).map_err(std::io::Error::other)?;
            std::io::copy(&mut std::fs::File::open(path)?, &mut z)?;
        }
        z.finish().map_err(std::io::Error::other)?;
        Ok(())
    })
    .await
    .map_err(|_| AppError::Internal)?
    .map_err(internal("writing the export ZIP"))?;
    // Streamed from the file: a case can be gigabytes. The open handle
    // keeps the data readable after the temporary folder is removed.
    let file = tokio::fs::File::open(&zip_path)
        .await
        .map_err(internal("reading the export ZIP"))?;
    let len = file
        .metadata()
        .await
        .map_err(internal("reading the export ZIP"))?
        .len();
    drop(work);
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let name = format!("medvision-case-{}.zip", &case_id.simple().to_string()[..12]);
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

/// Delivers queued sends: one task per process, woken on request and
/// every few seconds; a crash mid-send leaves the row `sending`, and it is
/// queued again once its lease has run out.
pub struct Outbox {
    pub wake: tokio::sync::Notify,
    blobs: crate::blobs::Blobs,
    calling_ae: String,
    timeout: Duration,
    tmp_dir: PathBuf,
}

/// Attempts before a send is `failed` (an admin can queue it again).
pub const MAX_ATTEMPTS: i32 = 5;
const LEASE: Duration = Duration::from_secs(300);

impl Outbox {
    pub fn new(settings: &Settings, blobs: crate::blobs::Blobs) -> Self {
        Self {
            wake: tokio::sync::Notify::new(),
            blobs,
            calling_ae: settings.scu_ae_title.clone(),
            timeout: Duration::from_secs(settings.scp_timeout_secs.max(1)),
            tmp_dir: settings.data_dir.join("tmp"),
        }
    }

    pub async fn run(self: Arc<Self>, db: DatabaseConnection) {
        loop {
            if let Err(e) = self.round(&db).await {
                tracing::warn!(error = %e, "the DICOM outbox round failed");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    async fn round(&self, db: &DatabaseConnection) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        // Sends whose sender died are due again.
        let stale = now - chrono::Duration::from_std(LEASE)?;
        dicom_send::Entity::update_many()
            .col_expr(dicom_send::Column::State, "queued".into())
            .filter(dicom_send::Column::State.eq("sending"))
            .filter(dicom_send::Column::NextAt.lt(stale))
            .exec(db)
            .await?;
        let due = dicom_send::Entity::find()
            .filter(dicom_send::Column::State.eq("queued"))
            .filter(dicom_send::Column::NextAt.lte(now))
            .order_by_asc(dicom_send::Column::NextAt)
            .limit(20)
            .all(db)
            .await?;
        for s in due {
            // Claim: only one process moves a row from queued to sending.
            let claimed = dicom_send::Entity::update_many()
                .col_expr(dicom_send::Column::State, "sending".into())
                .col_expr(dicom_send::Column::NextAt, chrono::Utc::now().into())
                .filter(dicom_send::Column::Id.eq(s.id))
                .filter(dicom_send::Column::State.eq("queued"))
                .exec(db)
                .await?;
            if claimed.rows_affected != 1 {
                continue;
            }
            let result = self.deliver(db, &s).await;
            let attempts = s.attempts + 1;
            let mut m: dicom_send::ActiveModel = s.clone().into();
            m.attempts = Set(attempts);
            match result {
                Ok(()) => {
                    m.state = Set("sent".into());
                    m.sent_at = Set(Some(chrono::Utc::now()));
                    m.last_error = Set(None);
                }
                Err(why) => {
                    tracing::warn!(send = %s.id, attempt = attempts, reason = %why, "DICOM send failed");
                    m.last_error = Set(Some(why.chars().take(500).collect()));
                    if attempts >= MAX_ATTEMPTS {
                        m.state = Set("failed".into());
                    } else {
                        // 10 s, 20 s, 40 s, 80 s between attempts.
                        let wait = 10i64 << (attempts - 1).clamp(0, 6);
                        m.state = Set("queued".into());
                        m.next_at = Set(chrono::Utc::now() + chrono::Duration::seconds(wait));
                    }
                }
            }
            let saved = m.update(db).await?;
            let actor = app::auth::ssr::actor_for_user(db, saved.requested_by)
                .await
                .ok()
                .flatten();
            if let Some(actor) = actor {
                if saved.state != "queued" {
                    let action = if saved.state == "sent" {
                        "dicom.sent"
                    } else {
                        "dicom.send_failed"
                    };
                    let txn = app::ssr::write_txn(db).await?;
                    app::audit::ssr::append(
                        &txn,
                        app::audit::ssr::Entry::by(&actor, action, "case", saved.case_id).details(
                            serde_json::json!({
                                "send": saved.id,
                                "attempts": saved.attempts,
                                "error": saved.last_error,
                            }),
                        ),
                    )
                    .await?;
                    txn.commit().await?;
                }
            }
        }
        Ok(())
    }

    /// One attempt: the SR as the requester sees the case, C-STOREd.
    async fn deliver(&self, db: &DatabaseConnection, s: &dicom_send::Model) -> Result<(), String> {
        let node = dicom_node::Entity::find_by_id(s.node_id)
            .one(db)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the destination was removed")?;
        let actor = app::auth::ssr::actor_for_user(db, s.requested_by)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the requesting user is disabled")?;
        tokio::fs::create_dir_all(&self.tmp_dir)
            .await
            .map_err(|e| e.to_string())?;
        let work = tempfile::Builder::new()
            .prefix("send-")
            .tempdir_in(&self.tmp_dir)
            .map_err(|e| e.to_string())?;
        let files = result_objects(db, &self.blobs, &actor, s.case_id, work.path())
            .await
            .map_err(|e| e.to_string())?;
        let dest = interop::scu::Node {
            host: node.host.clone(),
            port: u16::try_from(node.port).map_err(|_| "invalid destination port")?,
            ae_title: node.ae_title.clone(),
        };
        let sent = interop::scu::store(&dest, &self.calling_ae, &files, self.timeout)
            .await
            .map_err(|e| e.to_string())?;
        match sent.iter().find(|x| !x.ok()) {
            Some(bad) => Err(format!(
                "{} answered status 0x{:04X}",
                node.ae_title, bad.status
            )),
            None => Ok(()),
        }
    }
}
