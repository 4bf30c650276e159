//! DICOMweb (PS3.18) over the organisation's stored, de-identified studies:
//! STOW-RS to send studies in (the same ingest as uploads and C-STORE),
//! QIDO-RS to search them, WADO-RS to take instances, frames, rendered
//! images and metadata out. Authenticated like the REST API (session or
//! API token) and scoped to the cases the caller may see: another
//! organisation's UIDs answer 404 exactly as unknown ones do.

use crate::images::Imaging;
use crate::middleware::User;
use app::error::AppError;
use app::ssr::{Actor, AppState};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use entity::{instance, series, study};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/studies", get(search_studies).post(stow))
        .route("/series", get(search_series))
        .route("/instances", get(search_instances))
        .route("/studies/{study}/series", get(study_series))
        .route("/studies/{study}/instances", get(study_instances))
        .route(
            "/studies/{study}/series/{series}/instances",
            get(series_instances),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{sop}",
            get(retrieve_instance),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{sop}/metadata",
            get(instance_metadata),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{sop}/frames/{frames}",
            get(retrieve_frames),
        )
        .route(
            "/studies/{study}/series/{series}/instances/{sop}/rendered",
            get(rendered),
        )
        // Uploads have their own (larger) limit, checked while streaming.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// How STOW-RS names itself as a sender in case histories.
const STOW_ORIGIN: &str = "STOW-RS";

const DICOM_JSON: &str = "application/dicom+json";

fn dicom_json(v: Value) -> Response {
    ([(header::CONTENT_TYPE, DICOM_JSON)], v.to_string()).into_response()
}

fn attr(vr: &str, value: Value) -> Value {
    if value.is_null() || value.as_str() == Some("") {
        json!({ "vr": vr })
    } else {
        json!({ "vr": vr, "Value": [value] })
    }
}

/// A string attribute of a stored header, as a DICOM JSON value.
fn header_value(h: &Value, tag: &str) -> Value {
    crate::images::header_text(h, tag).map_or(Value::Null, Value::from)
}

/// A UID in a path or query.
fn uid(raw: &str) -> Result<String, AppError> {
    if interop::valid_uid(raw) {
        Ok(raw.to_owned())
    } else {
        Err(AppError::NotFound)
    }
}

// ---------------------------------------------------------------- QIDO-RS

/// The query keys MedVision matches, by keyword or tag; paging and the
/// presentation hints clients send are accepted and the rest refused.
#[derive(Clone)]
struct Qido {
    study_uid: Option<String>,
    series_uid: Option<String>,
    sop_uid: Option<String>,
    modality: Option<String>,
    patient_id: Option<String>,
    study_date: Option<(String, String)>,
    description: Option<String>,
    limit: u64,
    offset: u64,
}

fn parse_qido(q: &HashMap<String, String>) -> Result<Qido, AppError> {
    let mut out = Qido {
        study_uid: None,
        series_uid: None,
        sop_uid: None,
        modality: None,
        patient_id: None,
        study_date: None,
        description: None,
        limit: 100,
        offset: 0,
    };
    for (k, v) in q {
        let v = v.trim();
        match k.as_str() {
            "StudyInstanceUID" | "0020000D" => out.study_uid = Some(uid(v).map_err(|_| bad_key(k))?),
            "SeriesInstanceUID" | "0020000E" => out.series_uid = Some(uid(v).map_err(|_| bad_key(k))?),
            "SOPInstanceUID" | "00080018" => out.sop_uid = Some(uid(v).map_err(|_| bad_key(k))?),
            "Modality" | "00080060" | "ModalitiesInStudy" | "00080061" => {
                out.modality = Some(v.to_ascii_uppercase())
            }
            "PatientID" | "00100020" => out.patient_id = Some(v.to_owned()),
            "StudyDescription" | "00081030" => out.description = Some(v.to_owned()),
            "StudyDate" | "00080020" => out.study_date = Some(date_range(v).ok_or_else(|| bad_key(k))?),
            "limit" => {
                out.limit = v
                    .parse::<u64>()
                    .map_err(|_| bad_key(k))?
                    .clamp(1, 1000)
            }
            "offset" => out.offset = v.parse().map_err(|_| bad_key(k))?,
            // Presentation hints: every supported attribute is returned.
            "includefield" | "fuzzymatching" => {}
            other => {
                return Err(AppError::BadRequest(format!(
                    "Unsupported QIDO-RS query key {other:?}: MedVision matches StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, Modality, ModalitiesInStudy, PatientID, StudyDate, StudyDescription."
                )))
            }
        }
    }
    Ok(out)
}

fn bad_key(k: &str) -> AppError {
    AppError::BadRequest(format!("Invalid value for the QIDO-RS key {k}."))
}

/// `YYYYMMDD`, `A-B`, `A-`, `-B` → inclusive bounds.
fn date_range(v: &str) -> Option<(String, String)> {
    let d = |s: &str| (s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.to_owned());
    match v.split_once('-') {
        None => d(v).map(|x| (x.clone(), x)),
        Some((a, b)) => {
            let lo = if a.is_empty() {
                "00000000".to_owned()
            } else {
                d(a)?
            };
            let hi = if b.is_empty() {
                "99999999".to_owned()
            } else {
                d(b)?
            };
            Some((lo, hi))
        }
    }
}

/// `*` and `?` wildcards (PS3.4 C.2.2.2.4), case-insensitive.
fn wildcard(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b) && go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

struct StudyRow {
    study: study::Model,
    patient_ref: String,
    header: Value,
    modalities: Vec<String>,
    series: usize,
    instances: usize,
}

async fn visible_studies(
    db: &DatabaseConnection,
    actor: &Actor,
    q: &Qido,
) -> Result<Vec<StudyRow>, AppError> {
    let mut find = study::Entity::find()
        .filter(study::Column::OrgId.eq(actor.org_id))
        .filter(study::Column::CaseId.in_subquery(app::cases::ssr::visible_case_ids(actor)))
        .order_by_desc(study::Column::CreatedAt);
    if let Some(u) = &q.study_uid {
        find = find.filter(study::Column::StudyUid.eq(u.as_str()));
    }
    let studies = find.all(db).await?;
    let case_ids: Vec<Uuid> = studies.iter().map(|s| s.case_id).collect();
    let refs: HashMap<Uuid, String> = entity::case::Entity::find()
        .filter(entity::case::Column::Id.is_in(case_ids))
        .select_only()
        .column(entity::case::Column::Id)
        .column(entity::case::Column::PatientRef)
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    // Matching needs each study's series and first header, so stop once
    // the requested page is full rather than examining every study.
    let wanted = q.offset.saturating_add(q.limit);
    let mut out = Vec::new();
    for s in studies {
        if out.len() as u64 >= wanted {
            break;
        }
        let patient_ref = refs.get(&s.case_id).cloned().unwrap_or_default();
        if let Some(p) = &q.patient_id {
            if !wildcard(p, &patient_ref) {
                continue;
            }
        }
        if let Some(d) = &q.description {
            if !wildcard(d, s.description.as_deref().unwrap_or("")) {
                continue;
            }
        }
        let all_series = series::Entity::find()
            .filter(series::Column::StudyId.eq(s.id))
            .filter(series::Column::Kind.eq("dicom"))
            .all(db)
            .await?;
        if all_series.is_empty() {
            continue;
        }
        let mut modalities: Vec<String> = Vec::new();
        for se in &all_series {
            if !modalities.contains(&se.modality) {
                modalities.push(se.modality.clone());
            }
        }
        if let Some(m) = &q.modality {
            if !modalities.iter().any(|x| x == m) {
                continue;
            }
        }
        let first = instance::Entity::find()
            .filter(instance::Column::StudyId.eq(s.id))
            .filter(instance::Column::Kind.eq("dicom"))
            .one(db)
            .await?;
        let header: Value = first
            .map(|i| serde_json::from_str(&i.header).unwrap_or_default())
            .unwrap_or_default();
        if let Some((lo, hi)) = &q.study_date {
            let d = crate::images::header_text(&header, "00080020").unwrap_or_default();
            if d.is_empty() || d.as_str() < lo.as_str() || d.as_str() > hi.as_str() {
                continue;
            }
        }
        let instances = count(
            instance::Entity::find()
                .filter(instance::Column::StudyId.eq(s.id))
                .filter(instance::Column::Kind.eq("dicom")),
            db,
        )
        .await?;
        out.push(StudyRow {
            patient_ref,
            header,
            modalities,
            series: all_series.len(),
            instances,
            study: s,
        });
    }
    Ok(out)
}

/// Rows a query matches, as a `usize`.
async fn count<E: EntityTrait>(
    q: sea_orm::Select<E>,
    db: &DatabaseConnection,
) -> Result<usize, sea_orm::DbErr>
where
    E::Model: Sync,
{
    use sea_orm::PaginatorTrait;
    Ok(usize::try_from(q.count(db).await?).unwrap_or(usize::MAX))
}

/// RetrieveURLs are relative to the server: behind a proxy the client
/// knows its own origin.
const BASE: &str = "/dicomweb";

fn study_json(base: &str, r: &StudyRow) -> Value {
    let s = &r.study;
    json!({
        "00080020": attr("DA", header_value(&r.header, "00080020")),
        "00080030": attr("TM", header_value(&r.header, "00080030")),
        "00080050": attr("SH", Value::Null),
        "00080061": { "vr": "CS", "Value": r.modalities },
        "00081030": attr("LO", json!(s.description.clone().unwrap_or_default())),
        "00081190": attr("UR", json!(format!("{base}/studies/{}", s.study_uid))),
        "00100010": attr("PN", Value::Null),
        "00100020": attr("LO", json!(r.patient_ref)),
        "0020000D": attr("UI", json!(s.study_uid)),
        "00201206": attr("IS", json!(r.series)),
        "00201208": attr("IS", json!(r.instances)),
    })
}

fn page<T>(rows: Vec<T>, q: &Qido) -> Vec<T> {
    rows.into_iter()
        .skip(usize::try_from(q.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(q.limit).unwrap_or(100))
        .collect()
}

/// QIDO-RS `GET /dicomweb/studies`.
async fn search_studies(
    State(state): State<AppState>,
    User(actor): User,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let q = parse_qido(&raw)?;
    let base = BASE;
    let rows = visible_studies(&state.db, &actor, &q).await?;
    let out: Vec<Value> = page(rows, &q).iter().map(|r| study_json(base, r)).collect();
    Ok(dicom_json(Value::Array(out)))
}

async fn series_rows(
    db: &DatabaseConnection,
    actor: &Actor,
    q: &Qido,
) -> Result<Vec<(study::Model, series::Model, usize)>, AppError> {
    let studies = visible_studies(
        db,
        actor,
        &Qido {
            modality: None,
            limit: u64::MAX,
            offset: 0,
            ..q.clone()
        },
    )
    .await?;
    let mut out = Vec::new();
    for r in studies {
        let mut find = series::Entity::find()
            .filter(series::Column::StudyId.eq(r.study.id))
            .filter(series::Column::Kind.eq("dicom"))
            .order_by_asc(series::Column::Number);
        if let Some(u) = &q.series_uid {
            find = find.filter(series::Column::SeriesUid.eq(u.as_str()));
        }
        if let Some(m) = &q.modality {
            find = find.filter(series::Column::Modality.eq(m.as_str()));
        }
        for se in find.all(db).await? {
            let n = count(
                instance::Entity::find().filter(instance::Column::SeriesId.eq(se.id)),
                db,
            )
            .await?;
            out.push((r.study.clone(), se, n));
        }
    }
    Ok(out)
}

fn series_json(base: &str, s: &study::Model, se: &series::Model, n: usize) -> Value {
    json!({
        "00080060": attr("CS", json!(se.modality)),
        "0008103E": attr("LO", json!(se.description.clone().unwrap_or_default())),
        "00081190": attr("UR", json!(format!("{base}/studies/{}/series/{}", s.study_uid, se.series_uid))),
        "0020000D": attr("UI", json!(s.study_uid)),
        "0020000E": attr("UI", json!(se.series_uid)),
        "00200011": attr("IS", se.number.map_or(Value::Null, |n| json!(n))),
        "00201209": attr("IS", json!(n)),
    })
}

async fn series_response(state: &AppState, actor: &Actor, q: Qido) -> Result<Response, AppError> {
    let base = BASE;
    let rows = series_rows(&state.db, actor, &q).await?;
    let out: Vec<Value> = page(rows, &q)
        .iter()
        .map(|(s, se, n)| series_json(base, s, se, *n))
        .collect();
    Ok(dicom_json(Value::Array(out)))
}

/// QIDO-RS `GET /dicomweb/series`.
async fn search_series(
    State(state): State<AppState>,
    User(actor): User,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    series_response(&state, &actor, parse_qido(&raw)?).await
}

/// QIDO-RS `GET /dicomweb/studies/{study}/series`.
async fn study_series(
    State(state): State<AppState>,
    User(actor): User,
    Path(study_uid): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let mut q = parse_qido(&raw)?;
    q.study_uid = Some(uid(&study_uid)?);
    series_response(&state, &actor, q).await
}

async fn instances_response(
    state: &AppState,
    actor: &Actor,
    q: Qido,
) -> Result<Response, AppError> {
    let base = BASE;
    let series = series_rows(
        &state.db,
        actor,
        &Qido {
            limit: u64::MAX,
            offset: 0,
            ..q.clone()
        },
    )
    .await?;
    let mut out = Vec::new();
    for (s, se, _) in &series {
        let mut find = instance::Entity::find()
            .filter(instance::Column::SeriesId.eq(se.id))
            .order_by_asc(instance::Column::InstanceNumber);
        if let Some(u) = &q.sop_uid {
            find = find.filter(instance::Column::SopUid.eq(u.as_str()));
        }
        for i in find.all(&state.db).await? {
            let h: Value = serde_json::from_str(&i.header).unwrap_or_default();
            out.push(json!({
                "00080016": attr("UI", header_value(&h, "00080016")),
                "00080018": attr("UI", json!(i.sop_uid)),
                "00080060": attr("CS", json!(se.modality)),
                "00081190": attr("UR", json!(format!("{base}/studies/{}/series/{}/instances/{}", s.study_uid, se.series_uid, i.sop_uid))),
                "0020000D": attr("UI", json!(s.study_uid)),
                "0020000E": attr("UI", json!(se.series_uid)),
                "00200013": attr("IS", i.instance_number.map_or(Value::Null, |n| json!(n))),
                "00280008": attr("IS", json!(i.frames)),
                "00280010": attr("US", json!(i.rows)),
                "00280011": attr("US", json!(i.columns)),
            }));
        }
    }
    Ok(dicom_json(Value::Array(page(out, &q))))
}

/// QIDO-RS `GET /dicomweb/instances`.
async fn search_instances(
    State(state): State<AppState>,
    User(actor): User,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    instances_response(&state, &actor, parse_qido(&raw)?).await
}

/// QIDO-RS `GET /dicomweb/studies/{study}/instances`.
async fn study_instances(
    State(state): State<AppState>,
    User(actor): User,
    Path(study_uid): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let mut q = parse_qido(&raw)?;
    q.study_uid = Some(uid(&study_uid)?);
    instances_response(&state, &actor, q).await
}

/// QIDO-RS `GET /dicomweb/studies/{study}/series/{series}/instances`.
async fn series_instances(
    State(state): State<AppState>,
    User(actor): User,
    Path((study_uid, series_uid)): Path<(String, String)>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let mut q = parse_qido(&raw)?;
    q.study_uid = Some(uid(&study_uid)?);
    q.series_uid = Some(uid(&series_uid)?);
    instances_response(&state, &actor, q).await
}

// ---------------------------------------------------------------- WADO-RS

/// The stored instance at study/series/sop, if the caller may see it.
async fn find_instance(
    db: &DatabaseConnection,
    actor: &Actor,
    study_uid: &str,
    series_uid: &str,
    sop_uid: &str,
) -> Result<instance::Model, AppError> {
    let (study_uid, series_uid, sop_uid) = (uid(study_uid)?, uid(series_uid)?, uid(sop_uid)?);
    let candidates = instance::Entity::find()
        .filter(instance::Column::OrgId.eq(actor.org_id))
        .filter(instance::Column::SopUid.eq(sop_uid.as_str()))
        .filter(instance::Column::Kind.eq("dicom"))
        .filter(instance::Column::CaseId.in_subquery(app::cases::ssr::visible_case_ids(actor)))
        .all(db)
        .await?;
    for i in candidates {
        let se = series::Entity::find_by_id(i.series_id).one(db).await?;
        let st = study::Entity::find_by_id(i.study_id).one(db).await?;
        if se.is_some_and(|x| x.series_uid == series_uid)
            && st.is_some_and(|x| x.study_uid == study_uid)
        {
            return Ok(i);
        }
    }
    Err(AppError::NotFound)
}

fn boundary() -> String {
    format!("medvision-{}", Uuid::new_v4().simple())
}

fn multipart_related(type_: &str, parts: Vec<(String, Vec<u8>)>) -> Response {
    let b = boundary();
    let mut body = Vec::new();
    for (ct, bytes) in parts {
        body.extend_from_slice(format!("--{b}\r\nContent-Type: {ct}\r\n\r\n").as_bytes());
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (
        [(
            header::CONTENT_TYPE,
            format!("multipart/related; type=\"{type_}\"; boundary={b}"),
        )],
        body,
    )
        .into_response()
}

async fn blob(img: &Imaging, i: &instance::Model) -> Result<Vec<u8>, AppError> {
    img.blobs
        .get(i.org_id, &i.blob_sha256)
        .await
        .map(|b| b.to_vec())
        .map_err(|e| {
            tracing::error!(error = %e, "blob store failed");
            AppError::Internal
        })
}

/// WADO-RS: the instance as stored (de-identified), `application/dicom`.
async fn retrieve_instance(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    Path((st, se, sop)): Path<(String, String, String)>,
) -> Result<Response, AppError> {
    let i = find_instance(&state.db, &actor, &st, &se, &sop).await?;
    let bytes = blob(&img, &i).await?;
    Ok(multipart_related(
        "application/dicom",
        vec![("application/dicom".into(), bytes)],
    ))
}

/// WADO-RS: the instance's metadata (DICOM JSON, no bulk data).
async fn instance_metadata(
    State(state): State<AppState>,
    User(actor): User,
    Path((st, se, sop)): Path<(String, String, String)>,
) -> Result<Response, AppError> {
    let i = find_instance(&state.db, &actor, &st, &se, &sop).await?;
    let h: Value = serde_json::from_str(&i.header).unwrap_or_default();
    Ok(dicom_json(Value::Array(vec![h])))
}

/// WADO-RS: frames (1-based, comma-separated) as uncompressed little-endian
/// pixel data, one `application/octet-stream` part each.
async fn retrieve_frames(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    Path((st, se, sop, frames)): Path<(String, String, String, String)>,
) -> Result<Response, AppError> {
    let i = find_instance(&state.db, &actor, &st, &se, &sop).await?;
    let total = u32::try_from(i.frames.max(1)).unwrap_or(1);
    let mut wanted = Vec::new();
    for f in frames.split(',') {
        let n: u32 = f
            .trim()
            .parse()
            .map_err(|_| AppError::BadRequest("Frame numbers are 1-based integers.".into()))?;
        if n == 0 || n > total {
            return Err(AppError::NotFound);
        }
        wanted.push(n - 1);
    }
    if wanted.is_empty() || wanted.len() > 512 {
        return Err(AppError::BadRequest("Ask for 1 to 512 frames.".into()));
    }
    let bytes = blob(&img, &i).await?;
    let parts = tokio::task::spawn_blocking(move || -> Result<Vec<Vec<u8>>, String> {
        let f = imaging::dicom::open_vec(bytes).map_err(|e| e.to_string())?;
        wanted
            .into_iter()
            .map(|n| {
                f.decode_frame(n)
                    .map(|fr| fr.data.to_le_bytes())
                    .map_err(|e| e.to_string())
            })
            .collect()
    })
    .await
    .map_err(|_| AppError::Internal)?
    .map_err(|e| {
        tracing::warn!(error = %e, "a stored frame could not be decoded");
        AppError::Conflict("The frame could not be decoded.".into())
    })?;
    Ok(multipart_related(
        "application/octet-stream",
        parts
            .into_iter()
            .map(|p| {
                (
                    "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1".to_owned(),
                    p,
                )
            })
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
pub struct RenderedQuery {
    /// 1-based frame (default 1).
    #[serde(default)]
    frame: Option<u32>,
}

/// WADO-RS: the instance rendered with its own window, PNG by default or
/// JPEG when that is all the client accepts.
async fn rendered(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    headers: HeaderMap,
    Path((st, se, sop)): Path<(String, String, String)>,
    Query(q): Query<RenderedQuery>,
) -> Result<Response, AppError> {
    let i = find_instance(&state.db, &actor, &st, &se, &sop).await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("image/png");
    let jpeg = accept.contains("image/jpeg") && !accept.contains("image/png");
    if !jpeg
        && !accept.contains("image/png")
        && !accept.contains("*/*")
        && !accept.contains("image/*")
    {
        return Err(AppError::BadRequest(
            "Rendered images are image/png or image/jpeg.".into(),
        ));
    }
    let frame = q.frame.unwrap_or(1);
    if frame == 0 || i64::from(frame) > i64::from(i.frames.max(1)) {
        return Err(AppError::NotFound);
    }
    let path = crate::images::local_copy(&img, i.org_id, &i.blob_sha256).await?;
    let out = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let png = imaging::render::render_png(
            &path,
            imaging::InstanceKind::Dicom,
            frame - 1,
            imaging::pixel::Window::FromFile,
            1024,
        )
        .map_err(|e| e.to_string())?
        .png;
        if !jpeg {
            return Ok(png);
        }
        let im = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
            .map_err(|e| e.to_string())?;
        let mut out = std::io::Cursor::new(Vec::new());
        im.to_rgb8()
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .map_err(|e| e.to_string())?;
        Ok(out.into_inner())
    })
    .await
    .map_err(|_| AppError::Internal)?
    .map_err(|e| {
        tracing::warn!(error = %e, "rendering failed");
        AppError::Conflict("The image could not be rendered.".into())
    })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                if jpeg { "image/jpeg" } else { "image/png" },
            ),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        out,
    )
        .into_response())
}

// ---------------------------------------------------------------- STOW-RS

/// STOW-RS `POST /dicomweb/studies`: a `multipart/related;
/// type="application/dicom"` body. Each study goes to the case it went to
/// before (by Study Instance UID), or a new case owned by the caller.
async fn stow(
    State(state): State<AppState>,
    Extension(img): Extension<Arc<Imaging>>,
    User(actor): User,
    request: Request,
) -> Result<Response, AppError> {
    state.auth.check_upload(actor.user_id)?;
    let ct = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mime: mime::Mime = ct
        .parse()
        .map_err(|_| unsupported("a multipart/related body"))?;
    if mime.type_() != mime::MULTIPART || mime.subtype().as_str() != "related" {
        return Err(unsupported("multipart/related; type=\"application/dicom\""));
    }
    if let Some(t) = mime.get_param("type") {
        if t.as_str() != "application/dicom" {
            return Err(unsupported(
                "parts of type application/dicom (bulk data and JSON metadata are not accepted)",
            ));
        }
    }
    let b = mime
        .get_param(mime::BOUNDARY)
        .ok_or_else(|| AppError::BadRequest("The multipart body has no boundary.".into()))?
        .as_str()
        .to_owned();
    tokio::fs::create_dir_all(&img.tmp_dir)
        .await
        .map_err(|_| AppError::Internal)?;
    let work = tempfile::Builder::new()
        .prefix("stow-")
        .tempdir_in(&img.tmp_dir)
        .map_err(|_| AppError::Internal)?;
    let stream = request.into_body().into_data_stream();
    let mut parts = multer::Multipart::new(stream, b);
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let bad =
        |e: multer::Error| AppError::BadRequest(format!("The multipart body is malformed: {e}."));
    while let Some(mut field) = parts.next_field().await.map_err(bad)? {
        if let Some(t) = field.content_type() {
            if t.essence_str() != "application/dicom" {
                return Err(unsupported("parts of type application/dicom"));
            }
        }
        if files.len() as u64 >= img.ingest.limits.max_files {
            return Err(AppError::TooLarge(format!(
                "{} files per request",
                img.ingest.limits.max_files
            )));
        }
        let path = work.path().join(format!("{:06}.dcm", files.len()));
        let mut f = tokio::fs::File::create(&path)
            .await
            .map_err(|_| AppError::Internal)?;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            total += chunk.len() as u64;
            if total > img.max_upload_bytes {
                return Err(AppError::TooLarge(format!(
                    "{} MB per request",
                    img.max_upload_bytes / (1024 * 1024)
                )));
            }
            f.write_all(&chunk).await.map_err(|_| AppError::Internal)?;
        }
        f.flush().await.map_err(|_| AppError::Internal)?;
        files.push(path);
    }
    if files.is_empty() {
        return Err(AppError::BadRequest(
            "The request holds no DICOM parts.".into(),
        ));
    }
    // Group by study; a part that is not DICOM is refused with a reason.
    let mut by_study: HashMap<String, Vec<(PathBuf, interop::spool::StudyFacts)>> = HashMap::new();
    let mut failed = Vec::new();
    for p in files {
        let q = p.clone();
        let facts = tokio::task::spawn_blocking(move || interop::spool::StudyFacts::read(&q))
            .await
            .map_err(|_| AppError::Internal)?;
        match facts {
            Ok(f) if !f.study_uid.is_empty() => by_study
                .entry(f.study_uid.clone())
                .or_default()
                .push((p, f)),
            _ => failed.push(json!({"00081197": attr("US", json!(0xC000))})),
        }
    }
    let mut stored = Vec::new();
    let mut retrieve = Vec::new();
    for (study_uid, group) in by_study {
        let key = interop::spool::study_key(&study_uid);
        let paths: Vec<PathBuf> = group.iter().map(|(p, _)| p.clone()).collect();
        let received =
            crate::dicom::receive_study(&state.db, &img, &actor, STOW_ORIGIN, &key, &paths).await;
        let (case_id, outcome) = match received {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "a STOW-RS study was refused");
                for (_, f) in &group {
                    failed.push(sop_ref(f, 0xA700));
                }
                continue;
            }
        };
        for (i, (_, f)) in group.iter().enumerate() {
            // Refusals name the file as receive_study named it (an archive
            // member as "<name>/<member>").
            let name = crate::dicom::source_name(STOW_ORIGIN, i);
            if outcome.rejected.iter().any(|r| r.file.starts_with(&name)) {
                failed.push(sop_ref(f, 0xA900));
            } else {
                stored.push(sop_ref(f, 0));
            }
        }
        for s in &outcome.studies {
            if let Some(st) = study::Entity::find_by_id(s.id).one(&state.db).await? {
                retrieve.push((case_id, st.study_uid));
            }
        }
    }
    let mut body = serde_json::Map::new();
    if let Some((_, uid)) = retrieve.first() {
        body.insert(
            "00081190".into(),
            attr("UR", json!(format!("/dicomweb/studies/{uid}"))),
        );
    }
    if !stored.is_empty() {
        body.insert("00081199".into(), json!({"vr": "SQ", "Value": stored}));
    }
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({"vr": "SQ", "Value": failed}));
    }
    let status = match (stored.is_empty(), failed.is_empty()) {
        (false, true) => StatusCode::OK,
        (false, false) => StatusCode::ACCEPTED,
        (true, _) => StatusCode::CONFLICT,
    };
    drop(work);
    Ok((
        status,
        [(header::CONTENT_TYPE, DICOM_JSON)],
        Json(Value::Object(body)),
    )
        .into_response())
}

fn sop_ref(f: &interop::spool::StudyFacts, failure: u16) -> Value {
    let mut v = json!({
        "00081150": attr("UI", json!(f.sop_class_uid)),
        "00081155": attr("UI", json!(f.sop_instance_uid)),
    });
    if failure != 0 {
        v["00081197"] = attr("US", json!(failure));
    }
    v
}

fn unsupported(what: &str) -> AppError {
    AppError::UnsupportedMediaType(format!("STOW-RS takes {what}."))
}
