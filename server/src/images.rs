//! Image upload, listing, metadata and rendering over HTTP. The upload is
//! streamed to a private temporary folder, handed whole to
//! `imaging::ingest::ingest` (expansion, limits, de-identification), the
//! accepted files are put in the blob store and then indexed in one
//! transaction; the temporary folder goes away whatever happens.

use crate::blobs::{BlobError, Blobs};
use crate::middleware::User;
use app::cases::ssr as cases;
use app::error::AppError;
use app::images::{ssr as images, InstanceDto, RejectedDto, StudyDto, UploadOutcome};
use app::ssr::{Actor, AppState};

use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use imaging::ingest::IngestConfig;
use imaging::pixel::{CtPreset, Window};
use imaging::{Accepted, InstanceKind, Source};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

/// What the image routes need beyond [`AppState`]: server-only services
/// that the `app` crate (which also compiles to wasm) must not know.
pub struct Imaging {
    pub blobs: Blobs,
    pub ingest: IngestConfig,
    /// Largest upload, all parts together, in bytes.
    pub max_upload_bytes: u64,
    /// Uploads in progress; private to the server.
    pub tmp_dir: PathBuf,
    /// Rendered previews and local copies of blobs, safe to delete.
    pub cache_dir: PathBuf,
    /// Attempts each analysis job gets.
    pub job_attempts: i32,
    /// Woken when an upload queues jobs.
    pub hub: Arc<crate::pipeline::events::Hub>,
}

impl Imaging {
    pub fn new(
        settings: &crate::settings::Settings,
        hub: Arc<crate::pipeline::events::Hub>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            blobs: Blobs::from_settings(settings)?,
            ingest: settings.ingest_config()?,
            max_upload_bytes: settings.max_upload_bytes,
            tmp_dir: settings.data_dir.join("tmp"),
            cache_dir: settings.data_dir.join("cache"),
            job_attempts: settings.job_attempts,
            hub,
        })
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/cases/{id}/images",
            // The body limit is enforced while streaming, with a clear message.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/cases/{id}/studies", get(list_studies))
        .route("/studies/{id}/instances", get(list_instances))
        .route("/instances/{id}/metadata", get(metadata))
        .route("/instances/{id}/render", get(render))
}

fn id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound)
}

fn internal(what: &'static str) -> impl FnOnce(std::io::Error) -> AppError {
    move |e| {
        tracing::error!(error = %e, what, "image handling failed");
        AppError::Internal
    }
}

/// The store failing is an outage, not a bug in the request: 503 with a
/// sentence the uploader can act on (nothing of the upload is recorded:
/// files are stored before the database transaction that records them).
fn storage(e: BlobError) -> AppError {
    tracing::error!(error = %e, "blob store failed");
    AppError::Unavailable(
        "The image store is not accepting files right now; nothing was added to the case. Try again in a minute."
            .into(),
    )
}

fn bad_multipart(e: MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return AppError::TooLarge("limit for uploads".into());
    }
    AppError::BadRequest(
        "The upload could not be read: send multipart/form-data with one or more parts named \"file\"."
            .into(),
    )
}

/// A name from the client, for messages only: never a path we open.
fn display_name(raw: Option<&str>, n: usize) -> String {
    let base = raw
        .map(|s| s.rsplit(['/', '\\']).next().unwrap_or(s))
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        })
        .filter(|s| !s.is_empty());
    base.unwrap_or_else(|| format!("file {n}"))
}

/// Upload DICOM, NIfTI, raster images or ZIPs of them to a case.
#[utoipa::path(post, path = "/api/v1/cases/{id}/images", tag = "images",
    request_body(content_type = "multipart/form-data", description = "one or more parts named `file`"),
    responses((status = 201, body = UploadOutcome, description = "at least one file accepted"),
              (status = 422, body = UploadOutcome, description = "nothing accepted; `rejected` says why"),
              (status = 404), (status = 413)))]
async fn upload(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    Path(raw): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, AppError> {
    let case_id = id(&raw)?;
    // Unknown or foreign case: answer before reading a byte of the body.
    cases::find_visible(&state.db, &actor, case_id).await?;
    state.auth.check_upload(actor.user_id)?;
    let mut multipart = multipart.map_err(|_| {
        AppError::BadRequest(
            "Send the files as multipart/form-data, each in a part named \"file\".".into(),
        )
    })?;
    tokio::fs::create_dir_all(&img.tmp_dir)
        .await
        .map_err(internal("creating the upload folder"))?;
    let work = tempfile::Builder::new()
        .prefix("upload-")
        .tempdir_in(&img.tmp_dir)
        .map_err(internal("creating the upload folder"))?;
    let inbox = work.path().join("in");
    let out = work.path().join("out");
    for d in [&inbox, &out] {
        tokio::fs::create_dir(d)
            .await
            .map_err(internal("creating the upload folder"))?;
    }
    let mut sources = Vec::new();
    let mut total: u64 = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_multipart)? {
        if field.name() != Some("file") {
            return Err(AppError::BadRequest(
                "Unexpected form field: send each file in a part named \"file\".".into(),
            ));
        }
        let name = display_name(field.file_name(), sources.len() + 1);
        let path = inbox.join(format!("{:06}", sources.len()));
        let mut f = tokio::fs::File::create(&path)
            .await
            .map_err(internal("writing an upload"))?;
        while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
            total += chunk.len() as u64;
            if total > img.max_upload_bytes {
                return Err(AppError::TooLarge(format!(
                    "{} MB per upload",
                    img.max_upload_bytes / (1024 * 1024)
                )));
            }
            f.write_all(&chunk)
                .await
                .map_err(internal("writing an upload"))?;
        }
        f.flush().await.map_err(internal("writing an upload"))?;
        sources.push(Source { name, path });
    }
    if sources.is_empty() {
        return Err(AppError::BadRequest(
            "No files: send one or more parts named \"file\".".into(),
        ));
    }
    let outcome = ingest_and_record(
        &state.db, &img, &actor, case_id, sources, out, None, "upload",
    )
    .await?;
    drop(work);
    let status = if outcome.accepted > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(outcome)).into_response())
}

/// The part of an upload after the bytes are on disk; shared with
/// `medvision import`.
pub async fn ingest_and_record(
    db: &sea_orm::DatabaseConnection,
    img: &Imaging,
    actor: &Actor,
    case_id: Uuid,
    sources: Vec<Source>,
    out: PathBuf,
    progress: Option<&indicatif::ProgressBar>,
    source: &str,
) -> Result<UploadOutcome, AppError> {
    let mut cfg = img.ingest.clone();
    // Each organisation de-identifies with its own key, so the same patient
    // in two organisations cannot be linked through remapped UIDs.
    cfg.deid.key = imaging::deid::keyed_hash(&img.ingest.deid.key, b"org", actor.org_id.as_bytes());
    let report = tokio::task::spawn_blocking(move || imaging::ingest::ingest(&sources, &cfg, &out))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "ingest task failed");
            AppError::Internal
        })?
        .map_err(|e| AppError::BadRequest(format!("The upload was refused: {e}.")))?;
    if let Some(p) = progress {
        p.set_length(report.accepted.len() as u64);
        p.set_position(0);
        p.set_message("storing");
    }
    for a in &report.accepted {
        if let Some(p) = progress {
            p.inc(1);
        }
        img.blobs
            .put_file(actor.org_id, &a.sha256, &a.path)
            .await
            .map_err(storage)?;
    }
    let files = report.accepted.iter().map(new_instance).collect();
    let rejected: Vec<RejectedDto> = report
        .rejected
        .into_iter()
        .map(|r| RejectedDto {
            file: r.file,
            reason: r.reason,
        })
        .collect();
    let enqueue = app::pipeline::ssr::Enqueue {
        source,
        files: report.accepted.len() + rejected.len(),
        max_attempts: img.job_attempts,
    };
    let outcome = images::record_upload(db, actor, case_id, files, rejected, &enqueue).await?;
    img.hub.poke();
    Ok(outcome)
}

/// The first value of `tag` (e.g. `"00080016"`) in a stored header (DICOM
/// JSON, PS3.18 F.2), when it is a string.
pub(crate) fn header_text(header: &serde_json::Value, tag: &str) -> Option<String> {
    header
        .get(tag)?
        .get("Value")?
        .get(0)?
        .as_str()
        .map(str::to_owned)
}

fn kind_str(k: InstanceKind) -> &'static str {
    match k {
        InstanceKind::Dicom => "dicom",
        InstanceKind::Nifti => "nifti",
        InstanceKind::Raster => "raster",
    }
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// Position along the slice normal, so a series sorts as a volume.
fn slice_location(a: &Accepted) -> Option<f64> {
    let p = a.info.image_position?;
    let o = a.info.image_orientation?;
    let n = [
        o[1] * o[5] - o[2] * o[4],
        o[2] * o[3] - o[0] * o[5],
        o[0] * o[4] - o[1] * o[3],
    ];
    Some(p[0] * n[0] + p[1] * n[1] + p[2] * n[2])
}

fn new_instance(a: &Accepted) -> images::NewInstance {
    let i = &a.info;
    images::NewInstance {
        source_name: a.file.chars().take(255).collect(),
        kind: kind_str(a.kind).into(),
        study_uid: i.study_uid.clone(),
        study_description: i.study_description.clone(),
        series_uid: i.series_uid.clone(),
        series_number: i.series_number,
        series_description: i.series_description.clone(),
        modality: i.modality.clone(),
        body_part: i.body_part.clone(),
        transfer_syntax: i.transfer_syntax.clone(),
        sop_uid: i.sop_uid.clone(),
        instance_number: i.instance_number,
        slice_location: slice_location(a),
        frames: clamp_i32(i.frames),
        rows: clamp_i32(i.rows),
        columns: clamp_i32(i.columns),
        blob_sha256: a.sha256.clone(),
        bytes: i64::try_from(a.bytes).unwrap_or(i64::MAX),
        info: serde_json::to_string(i).unwrap_or_else(|_| "{}".into()),
        header: a.dicom_json.to_string(),
        deid: serde_json::to_string(&a.deid).unwrap_or_else(|_| "[]".into()),
        burned_in: i.burned_in_annotation,
    }
}

/// The studies of a case, each with its series.
#[utoipa::path(get, path = "/api/v1/cases/{id}/studies", tag = "images",
    responses((status = 200, body = Vec<StudyDto>), (status = 404)))]
async fn list_studies(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<Vec<StudyDto>>, AppError> {
    Ok(Json(images::studies(&state.db, &actor, id(&raw)?).await?))
}

/// The instances of a study, in viewing order.
#[utoipa::path(get, path = "/api/v1/studies/{id}/instances", tag = "images",
    responses((status = 200, body = Vec<InstanceDto>), (status = 404)))]
async fn list_instances(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Json<Vec<InstanceDto>>, AppError> {
    Ok(Json(images::instances(&state.db, &actor, id(&raw)?).await?))
}

/// The stored, de-identified header in the DICOM JSON model (PS3.18 F.2).
#[utoipa::path(get, path = "/api/v1/instances/{id}/metadata", tag = "images",
    responses((status = 200, content_type = "application/dicom+json"), (status = 404)))]
async fn metadata(
    State(state): State<AppState>,
    User(actor): User,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    let json = images::metadata(&state.db, &actor, id(&raw)?).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/dicom+json")],
        Json(json),
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RenderQuery {
    /// Frame (or slice of a NIfTI volume), from 0.
    frame: Option<u32>,
    /// `auto` (the file's own window), `minmax`, a CT preset (`brain`,
    /// `subdural`, `bone`, `lung`, `abdomen`) or `CENTER,WIDTH`.
    window: Option<String>,
    /// Longest side in pixels, 16–2048 (default 512).
    size: Option<u32>,
}

fn parse_window(raw: Option<&str>) -> Result<(Window, String), AppError> {
    let raw = raw.unwrap_or("auto").trim();
    let bad = || {
        AppError::field(
            "window",
            "must be auto, minmax, brain, subdural, bone, lung, abdomen or CENTER,WIDTH",
        )
    };
    let w = match raw.to_ascii_lowercase().as_str() {
        "auto" | "" => Window::FromFile,
        "minmax" => Window::MinMax,
        other => match other.split_once(',') {
            Some((c, w)) => {
                let center: f64 = c.trim().parse().map_err(|_| bad())?;
                let width: f64 = w.trim().parse().map_err(|_| bad())?;
                if !center.is_finite() || !width.is_finite() || !(1.0..=1e6).contains(&width) {
                    return Err(bad());
                }
                Window::Explicit { center, width }
            }
            None => Window::Preset(other.parse::<CtPreset>().map_err(|_| bad())?),
        },
    };
    let key = raw.to_ascii_lowercase().replace([',', ' '], "_");
    Ok((w, key))
}

/// A frame as PNG, windowed and scaled; cached on disk.
#[utoipa::path(get, path = "/api/v1/instances/{id}/render", tag = "images", params(RenderQuery),
    responses((status = 200, content_type = "image/png"), (status = 404), (status = 400)))]
async fn render(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    Path(raw): Path<String>,
    crate::api::ApiQuery(q): crate::api::ApiQuery<RenderQuery>,
) -> Result<Response, AppError> {
    let inst = images::find_instance(&state.db, &actor, id(&raw)?).await?;
    let frame = q.frame.unwrap_or(0);
    if i64::from(frame) >= i64::from(inst.frames.max(1)) {
        return Err(AppError::field(
            "frame",
            format!("must be below {}", inst.frames.max(1)),
        ));
    }
    let size = q.size.unwrap_or(512);
    if !(16..=2048).contains(&size) {
        return Err(AppError::field("size", "must be between 16 and 2048"));
    }
    let (window, wkey) = parse_window(q.window.as_deref())?;
    let cached = img
        .cache_dir
        .join("render")
        .join(format!("{}-{frame}-{wkey}-{size}.png", inst.blob_sha256));
    let png = match tokio::fs::read(&cached).await {
        Ok(b) => b,
        Err(_) => {
            let src = local_copy(&img, inst.org_id, &inst.blob_sha256).await?;
            let kind = match inst.kind.as_str() {
                "nifti" => InstanceKind::Nifti,
                "raster" => InstanceKind::Raster,
                _ => InstanceKind::Dicom,
            };
            let rendered = tokio::task::spawn_blocking(move || {
                imaging::render::render_png(&src, kind, frame, window, size)
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "render task failed");
                AppError::Internal
            })?
            .map_err(|e| {
                tracing::warn!(instance = %inst.id, error = %e, "stored image could not be rendered");
                AppError::Conflict(format!("This image cannot be displayed: {e}."))
            })?;
            write_atomic(&cached, &rendered.png).await;
            rendered.png
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            // Content-addressed and de-identified, but still per user.
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        png,
    )
        .into_response())
}

/// A blob as a local file for the decoders, kept in the cache folder.
pub(crate) async fn local_copy(
    img: &Imaging,
    org: Uuid,
    sha256: &str,
) -> Result<PathBuf, AppError> {
    let path = img.cache_dir.join("blobs").join(sha256);
    if tokio::fs::metadata(&path).await.is_ok() {
        return Ok(path);
    }
    let bytes = img.blobs.get(org, sha256).await.map_err(storage)?;
    write_atomic(&path, &bytes).await;
    Ok(path)
}

/// Best effort: a cache that cannot be written only costs a re-render.
async fn write_atomic(path: &std::path::Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else { return };
    if tokio::fs::create_dir_all(dir).await.is_err() {
        return;
    }
    let tmp = dir.join(format!(".{}.tmp", Uuid::new_v4()));
    if tokio::fs::write(&tmp, bytes).await.is_ok() {
        let _ = tokio::fs::rename(&tmp, path).await;
    }
}
