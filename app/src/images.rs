//! Images of a case: studies, series and instances as the API and the case
//! page show them, and (with `ssr`) the data layer that records an upload.
//! Decoding and de-identification live in `crates/imaging`, which only the
//! server links; this module sees plain values.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One series of a study, with what the metadata panel shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SeriesDto {
    pub id: Uuid,
    pub series_uid: String,
    pub number: Option<i32>,
    pub modality: String,
    pub body_part: Option<String>,
    pub description: Option<String>,
    /// `dicom`, `nifti` or `raster`.
    pub kind: String,
    pub rows: i32,
    pub columns: i32,
    pub transfer_syntax: Option<String>,
    pub instances: u64,
    /// Frames over all instances: slices of a volume, frames of a cine.
    pub frames: u64,
    /// Row and column spacing in mm, from the first instance.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    /// What de-identification changed in the first instance's header.
    pub deid: Vec<DeidItem>,
    /// Some instance carries burned-in annotation.
    pub burned_in: bool,
}

/// One change de-identification made, for the metadata panel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct DeidItem {
    pub tag: String,
    pub keyword: String,
    pub action: String,
}

/// A study of a case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StudyDto {
    pub id: Uuid,
    pub study_uid: String,
    pub modality: String,
    pub description: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub series: Vec<SeriesDto>,
}

/// One stored instance (a DICOM file, a NIfTI volume or a raster image).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct InstanceDto {
    pub id: Uuid,
    pub series_id: Uuid,
    pub sop_uid: String,
    pub kind: String,
    pub instance_number: Option<i32>,
    pub frames: i32,
    pub rows: i32,
    pub columns: i32,
    pub bytes: i64,
    /// The image carries burned-in annotation (flagged on ingest).
    pub burned_in: bool,
}

/// A refused file of an upload, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct RejectedDto {
    pub file: String,
    pub reason: String,
}

/// A study as an upload answer summarises it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UploadedStudy {
    pub id: Uuid,
    pub study_uid: String,
    pub modality: String,
    pub series: u64,
    pub instances: u64,
}

/// The answer to `POST /api/v1/cases/{id}/images`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UploadOutcome {
    pub accepted: u64,
    pub rejected: Vec<RejectedDto>,
    pub studies: Vec<UploadedStudy>,
    /// The batch the upload became; its page follows the analysis.
    pub batch_id: Option<Uuid>,
    /// One analysis job per study, queued with the upload.
    pub jobs: Vec<Uuid>,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::audit::ssr::{append, Entry};
    use crate::cases::ssr::{find_visible, visible_case_ids};
    use crate::domain::CaseStatus;
    use crate::ssr::{now, write_txn, Actor};
    use entity::{instance, series, study};
    use sea_orm::{
        ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
        QueryFilter, QueryOrder,
    };
    use std::collections::{BTreeMap, HashMap};

    /// One accepted, de-identified and already stored file of an upload.
    #[derive(Clone, Debug)]
    pub struct NewInstance {
        pub source_name: String,
        pub kind: String,
        pub study_uid: String,
        pub study_description: Option<String>,
        pub series_uid: String,
        pub series_number: Option<i32>,
        pub series_description: Option<String>,
        pub modality: String,
        pub body_part: Option<String>,
        pub transfer_syntax: Option<String>,
        pub sop_uid: String,
        pub instance_number: Option<i32>,
        pub slice_location: Option<f64>,
        pub frames: i32,
        pub rows: i32,
        pub columns: i32,
        pub blob_sha256: String,
        pub bytes: i64,
        pub info: String,
        pub header: String,
        pub deid: String,
        pub burned_in: bool,
    }

    /// Records an upload's accepted files, study by study, in one
    /// transaction with its audit row: a study is indexed whole or not at all.
    /// A study already filed under another case of the organisation is
    /// refused (its de-identified UID is stable, so this is a re-send), and a
    /// re-sent instance of the same case is kept once.
    pub async fn record_upload(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
        files: Vec<NewInstance>,
        mut rejected: Vec<RejectedDto>,
        enqueue: &crate::pipeline::ssr::Enqueue<'_>,
    ) -> Result<UploadOutcome, AppError> {
        let txn = write_txn(db).await?;
        let case = find_visible(&txn, actor, case_id).await?;
        if CaseStatus::parse(&case.status).ok() == Some(CaseStatus::Closed) {
            return Err(AppError::Conflict(
                "The case is closed; reopen it to add images.".into(),
            ));
        }
        let mut by_study: BTreeMap<String, Vec<NewInstance>> = BTreeMap::new();
        for f in files {
            by_study.entry(f.study_uid.clone()).or_default().push(f);
        }
        let at = now();
        let mut outcome = UploadOutcome::default();
        for (study_uid, files) in by_study {
            let existing = study::Entity::find()
                .filter(study::Column::OrgId.eq(actor.org_id))
                .filter(study::Column::StudyUid.eq(study_uid.as_str()))
                .one(&txn)
                .await?;
            let study = match existing {
                Some(s) if s.case_id != case.id => {
                    rejected.extend(files.iter().map(|f| RejectedDto {
                        file: f.source_name.clone(),
                        reason: "this study was already uploaded to another case".into(),
                    }));
                    continue;
                }
                Some(s) => s,
                None => {
                    let first = &files[0];
                    study::ActiveModel {
                        id: Set(Uuid::new_v4()),
                        org_id: Set(actor.org_id),
                        case_id: Set(case.id),
                        study_uid: Set(study_uid.clone()),
                        modality: Set(first.modality.clone()),
                        description: Set(first.study_description.clone()),
                        uploaded_by: Set(actor.user_id),
                        created_at: Set(at),
                    }
                    .insert(&txn)
                    .await?
                }
            };
            let mut series_ids: HashMap<String, Uuid> = series::Entity::find()
                .filter(series::Column::StudyId.eq(study.id))
                .all(&txn)
                .await?
                .into_iter()
                .map(|s| (s.series_uid, s.id))
                .collect();
            let mut stored = 0u64;
            for f in &files {
                let series_id = match series_ids.get(&f.series_uid) {
                    Some(id) => *id,
                    None => {
                        let s = series::ActiveModel {
                            id: Set(Uuid::new_v4()),
                            org_id: Set(actor.org_id),
                            case_id: Set(case.id),
                            study_id: Set(study.id),
                            series_uid: Set(f.series_uid.clone()),
                            number: Set(f.series_number),
                            modality: Set(f.modality.clone()),
                            body_part: Set(f.body_part.clone()),
                            description: Set(f.series_description.clone()),
                            kind: Set(f.kind.clone()),
                            rows: Set(f.rows),
                            columns: Set(f.columns),
                            transfer_syntax: Set(f.transfer_syntax.clone()),
                            created_at: Set(at),
                        }
                        .insert(&txn)
                        .await?;
                        series_ids.insert(f.series_uid.clone(), s.id);
                        s.id
                    }
                };
                let dup = instance::Entity::find()
                    .filter(instance::Column::SeriesId.eq(series_id))
                    .filter(instance::Column::SopUid.eq(f.sop_uid.as_str()))
                    .one(&txn)
                    .await?
                    .is_some();
                if !dup {
                    instance::ActiveModel {
                        id: Set(Uuid::new_v4()),
                        org_id: Set(actor.org_id),
                        case_id: Set(case.id),
                        study_id: Set(study.id),
                        series_id: Set(series_id),
                        sop_uid: Set(f.sop_uid.clone()),
                        kind: Set(f.kind.clone()),
                        instance_number: Set(f.instance_number),
                        slice_location: Set(f.slice_location),
                        frames: Set(f.frames),
                        rows: Set(f.rows),
                        columns: Set(f.columns),
                        blob_sha256: Set(f.blob_sha256.clone()),
                        bytes: Set(f.bytes),
                        info: Set(f.info.clone()),
                        header: Set(f.header.clone()),
                        deid: Set(f.deid.clone()),
                        burned_in: Set(f.burned_in),
                        source_name: Set(f.source_name.clone()),
                        created_at: Set(at),
                    }
                    .insert(&txn)
                    .await?;
                }
                stored += 1;
            }
            outcome.accepted += stored;
            outcome.studies.push(UploadedStudy {
                id: study.id,
                study_uid: study.study_uid.clone(),
                modality: study.modality.clone(),
                series: files
                    .iter()
                    .map(|f| f.series_uid.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len() as u64,
                instances: stored,
            });
        }
        outcome.rejected = rejected;
        let study_ids: Vec<Uuid> = outcome.studies.iter().map(|s| s.id).collect();
        let (batch_id, jobs) = crate::pipeline::ssr::enqueue_batch(
            &txn,
            actor,
            case.id,
            &study_ids,
            &outcome.rejected,
            enqueue,
        )
        .await?;
        outcome.batch_id = Some(batch_id);
        outcome.jobs = jobs;
        append(
            &txn,
            Entry::by(actor, "images.upload", "case", case.id).details(serde_json::json!({
                "accepted": outcome.accepted,
                "rejected": outcome.rejected.len(),
                "studies": outcome.studies.iter().map(|s| s.id).collect::<Vec<_>>(),
            })),
        )
        .await?;
        txn.commit().await?;
        Ok(outcome)
    }

    /// The studies of a visible case, each with its series.
    pub async fn studies(
        db: &DatabaseConnection,
        actor: &Actor,
        case_id: Uuid,
    ) -> Result<Vec<StudyDto>, AppError> {
        let case = find_visible(db, actor, case_id).await?;
        let studies = study::Entity::find()
            .filter(study::Column::CaseId.eq(case.id))
            .order_by_asc(study::Column::CreatedAt)
            .all(db)
            .await?;
        let series = series::Entity::find()
            .filter(series::Column::CaseId.eq(case.id))
            .order_by_asc(series::Column::Number)
            .order_by_asc(series::Column::CreatedAt)
            .all(db)
            .await?;
        let instances = instance::Entity::find()
            .filter(instance::Column::CaseId.eq(case.id))
            .all(db)
            .await?;
        let mut counts: HashMap<Uuid, (u64, u64)> = HashMap::new();
        let mut first: HashMap<Uuid, &instance::Model> = HashMap::new();
        let mut burned: HashMap<Uuid, bool> = HashMap::new();
        for i in &instances {
            let c = counts.entry(i.series_id).or_default();
            c.0 += 1;
            c.1 += u64::try_from(i.frames).unwrap_or(0);
            first.entry(i.series_id).or_insert(i);
            *burned.entry(i.series_id).or_default() |= i.burned_in;
        }
        Ok(studies
            .into_iter()
            .map(|s| StudyDto {
                series: series
                    .iter()
                    .filter(|x| x.study_id == s.id)
                    .map(|x| {
                        let (n, frames) = counts.get(&x.id).copied().unwrap_or_default();
                        let info = first
                            .get(&x.id)
                            .and_then(|i| serde_json::from_str::<StoredInfo>(&i.info).ok())
                            .unwrap_or_default();
                        let deid = first
                            .get(&x.id)
                            .and_then(|i| serde_json::from_str::<Vec<DeidItem>>(&i.deid).ok())
                            .unwrap_or_default();
                        SeriesDto {
                            id: x.id,
                            series_uid: x.series_uid.clone(),
                            number: x.number,
                            modality: x.modality.clone(),
                            body_part: x.body_part.clone(),
                            description: x.description.clone(),
                            kind: x.kind.clone(),
                            rows: x.rows,
                            columns: x.columns,
                            transfer_syntax: x.transfer_syntax.clone(),
                            instances: n,
                            frames,
                            pixel_spacing: info.pixel_spacing,
                            slice_thickness: info.slice_thickness,
                            deid,
                            burned_in: burned.get(&x.id).copied().unwrap_or(false),
                        }
                    })
                    .collect(),
                id: s.id,
                study_uid: s.study_uid,
                modality: s.modality,
                description: s.description,
                created_at: s.created_at,
            })
            .collect())
    }

    /// The parts of the stored `imaging::InstanceInfo` the panel shows.
    #[derive(Default, Deserialize)]
    struct StoredInfo {
        pixel_spacing: Option<[f64; 2]>,
        slice_thickness: Option<f64>,
    }

    fn instance_dto(i: instance::Model) -> InstanceDto {
        InstanceDto {
            id: i.id,
            series_id: i.series_id,
            sop_uid: i.sop_uid,
            kind: i.kind,
            instance_number: i.instance_number,
            frames: i.frames,
            rows: i.rows,
            columns: i.columns,
            bytes: i.bytes,
            burned_in: i.burned_in,
        }
    }

    /// The instances of a study of a visible case, in viewing order: by
    /// series, then along the slice normal, then by instance number.
    pub async fn instances(
        db: &DatabaseConnection,
        actor: &Actor,
        study_id: Uuid,
    ) -> Result<Vec<InstanceDto>, AppError> {
        let study = study::Entity::find_by_id(study_id)
            .filter(study::Column::CaseId.in_subquery(visible_case_ids(actor)))
            .one(db)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok(instance::Entity::find()
            .filter(instance::Column::StudyId.eq(study.id))
            .order_by_asc(instance::Column::SeriesId)
            .order_by_asc(instance::Column::SliceLocation)
            .order_by_asc(instance::Column::InstanceNumber)
            .order_by_asc(instance::Column::SopUid)
            .all(db)
            .await?
            .into_iter()
            .map(instance_dto)
            .collect())
    }

    /// An instance of a visible case, or `NotFound`.
    pub async fn find_instance(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<instance::Model, AppError> {
        instance::Entity::find_by_id(id)
            .filter(instance::Column::CaseId.in_subquery(visible_case_ids(actor)))
            .one(db)
            .await?
            .ok_or(AppError::NotFound)
    }

    /// The stored, de-identified header in the DICOM JSON model.
    pub async fn metadata(
        db: &DatabaseConnection,
        actor: &Actor,
        id: Uuid,
    ) -> Result<serde_json::Value, AppError> {
        let i = find_instance(db, actor, id).await?;
        serde_json::from_str(&i.header).map_err(|_| {
            tracing::error!(instance = %i.id, "unparseable header stored for instance");
            AppError::Internal
        })
    }
}

#[server(prefix = "/sfn", endpoint = "case_studies", input = server_fn::codec::GetUrl)]
pub async fn case_studies(id: String) -> Result<Vec<StudyDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
            ssr::studies(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

#[server(prefix = "/sfn", endpoint = "study_instances", input = server_fn::codec::GetUrl)]
pub async fn study_instances(id: String) -> Result<Vec<InstanceDto>, AppError> {
    use crate::ssr::{fail, require_user, state};
    fail(
        async {
            let id = Uuid::parse_str(&id).map_err(|_| AppError::NotFound)?;
            ssr::instances(&state()?.db, &require_user()?, id).await
        }
        .await,
    )
}

/// Window presets the viewer offers: (value for the render API, label,
/// centre, width). `auto` is the file's own window.
const PRESETS: &[(&str, &str, f64, f64)] = &[
    ("auto", "From file", 40.0, 400.0),
    ("brain", "Brain 40/80", 40.0, 80.0),
    ("subdural", "Subdural 80/200", 80.0, 200.0),
    ("bone", "Bone 600/2800", 600.0, 2800.0),
    ("lung", "Lung −600/1500", -600.0, 1500.0),
    ("abdomen", "Abdomen 40/400", 40.0, 400.0),
    ("minmax", "Full range", 40.0, 400.0),
];

/// The images of a case: upload, studies with their metadata, viewer.
#[component]
pub fn ImagesPanel(case_id: Uuid, #[prop(into)] can_upload: Signal<bool>) -> impl IntoView {
    let uploads = RwSignal::new(0u32);
    let studies = Resource::new(
        move || uploads.get(),
        move |_| case_studies(case_id.to_string()),
    );
    let selected = RwSignal::new(None::<(Uuid, Uuid)>);
    view! {
        <section class="card">
            <h2>"Images"</h2>
            // Hidden, not removed, on a closed case: an attribute changes no
            // structure, so the page hydrates the same either way.
            <div class="uploader" hidden=move || !can_upload.get()>
                <Uploader case_id on_done=move || uploads.update(|n| *n += 1)/>
            </div>
            <Transition fallback=|| view! { <p>"Loading images…"</p> }>
                {move || studies.get().map(|r| match r {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(list) if list.is_empty() => view! {
                        <p class="muted">"No images yet."</p>
                    }.into_any(),
                    Ok(list) => {
                        if selected.get_untracked().is_none() {
                            if let Some((st, se)) = list.first().and_then(|s| s.series.first().map(|x| (s.id, x.id))) {
                                selected.set(Some((st, se)));
                            }
                        }
                        view! { <StudyList studies=list selected/> }.into_any()
                    }
                })}
            </Transition>
            {move || selected.get().map(|(study, series)| view! { <Viewer study series/> })}
        </section>
    }
}

fn spacing_text(s: &SeriesDto) -> String {
    match (s.pixel_spacing, s.slice_thickness) {
        (Some([r, c]), Some(t)) => format!("{r:.3} × {c:.3} mm, slice {t:.2} mm"),
        (Some([r, c]), None) => format!("{r:.3} × {c:.3} mm"),
        _ => "not recorded".into(),
    }
}

#[component]
fn StudyList(studies: Vec<StudyDto>, selected: RwSignal<Option<(Uuid, Uuid)>>) -> impl IntoView {
    view! {
        <div class="studies">
            {studies.into_iter().map(|st| {
                let study_id = st.id;
                view! {
                    <div class="study">
                        <h3>{st.modality.clone()}" study "<span class="muted mono">{st.study_uid.clone()}</span></h3>
                        {st.description.clone().map(|d| view! { <p>{d}</p> })}
                        <table class="series">
                            <thead><tr><th>"#"</th><th>"Series"</th><th>"Modality"</th><th>"Body part"</th><th>"Size"</th><th>"Images"</th><th>"Spacing"</th><th>"Transfer syntax"</th><th></th></tr></thead>
                            <tbody>
                                {st.series.into_iter().map(|se| {
                                    let series_id = se.id;
                                    let deid = se.deid.clone();
                                    view! {
                                        <tr class:active=move || selected.get() == Some((study_id, series_id))>
                                            <td>{se.number.map(|n| n.to_string())}</td>
                                            <td>{se.description.clone().unwrap_or_else(|| se.kind.to_uppercase())}
                                                {se.burned_in.then(|| view! { " " <span class="badge badge-warn" title="The image has burned-in annotation; patient details may be visible in the pixels.">"burned-in text"</span> })}</td>
                                            <td>{se.modality.clone()}</td>
                                            <td>{se.body_part.clone().filter(|b| !b.is_empty())}</td>
                                            <td>{format!("{} × {}", se.columns, se.rows)}</td>
                                            <td>{se.instances}" ("{se.frames}" frames)"</td>
                                            <td>{spacing_text(&se)}</td>
                                            <td class="mono">{se.transfer_syntax.clone().filter(|t| !t.is_empty())}</td>
                                            <td><button type="button" on:click=move |_| selected.set(Some((study_id, series_id)))>"View"</button></td>
                                        </tr>
                                        <tr class="deid-row">
                                            <td colspan="9">
                                                <details>
                                                    <summary>{format!("De-identification: {} changes", deid.len())}</summary>
                                                    <ul class="deid">
                                                        {deid.into_iter().map(|d| view! {
                                                            <li><span class="mono">{d.tag}</span>" "{d.keyword}": "{d.action}</li>
                                                        }).collect_view()}
                                                    </ul>
                                                </details>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
            }).collect_view()}
        </div>
    }
}

/// Slice viewer: images are rendered by the server (windowed PNG), so it
/// works without WebGL; scroll or the slider moves through slices, presets
/// or dragging set window/level, zoom and pan are CSS transforms.
#[component]
fn Viewer(study: Uuid, series: Uuid) -> impl IntoView {
    let instances = Resource::new(move || study, |s| study_instances(s.to_string()));
    let index = RwSignal::new(0usize);
    let preset = RwSignal::new("auto".to_owned());
    let custom = RwSignal::new(None::<(f64, f64)>);
    let zoom = RwSignal::new(1.0f64);
    let pan = RwSignal::new((0.0f64, 0.0f64));
    let pan_mode = RwSignal::new(false);
    let drag = RwSignal::new(None::<(i32, i32)>);
    view! {
        <Transition fallback=|| view! { <p>"Loading series…"</p> }>
            {move || instances.get().map(|r| match r {
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                Ok(list) => {
                    let frames: Vec<(Uuid, i32)> = list
                        .iter()
                        .filter(|i| i.series_id == series)
                        .flat_map(|i| (0..i.frames.max(1)).map(move |f| (i.id, f)))
                        .collect();
                    let count = frames.len();
                    if count == 0 {
                        return view! { <p class="muted">"This series has no images."</p> }.into_any();
                    }
                    let frames = StoredValue::new(frames);
                    let src = move || {
                        let i = index.get().min(count - 1);
                        let (id, f) = frames.with_value(|v| v[i]);
                        let w = match custom.get() {
                            Some((c, w)) => format!("{c:.0},{w:.0}"),
                            None => preset.get(),
                        };
                        format!("/api/v1/instances/{id}/render?frame={f}&window={w}&size=1024")
                    };
                    let step = move |d: i64| {
                        index.update(|i| {
                            let n = (*i as i64 + d).clamp(0, count as i64 - 1);
                            *i = n as usize;
                        })
                    };
                    view! {
                        <div class="viewer">
                            <div class="viewer-tools row">
                                <label>"Window "
                                    <select aria-label="Window preset" on:change=move |ev| { preset.set(event_target_value(&ev)); custom.set(None); }>
                                        {PRESETS.iter().map(|(v, l, _, _)| view! { <option value=*v selected=move || preset.get() == *v>{*l}</option> }).collect_view()}
                                    </select>
                                </label>
                                <span class="muted">{move || custom.get().map(|(c, w)| format!("C {c:.0} / W {w:.0}")).unwrap_or_default()}</span>
                                <button type="button" on:click=move |_| zoom.update(|z| *z = (*z * 1.25).min(8.0))>"Zoom +"</button>
                                <button type="button" on:click=move |_| zoom.update(|z| *z = (*z / 1.25).max(0.25))>"Zoom −"</button>
                                <button type="button" on:click=move |_| { zoom.set(1.0); pan.set((0.0, 0.0)); custom.set(None); }>"Reset"</button>
                                <label><input type="checkbox" on:change=move |ev| pan_mode.set(event_target_checked(&ev))/>" Drag pans (otherwise window/level)"</label>
                            </div>
                            <div class="viewport"
                                on:wheel=move |ev| { ev.prevent_default(); step(if ev.delta_y() > 0.0 { 1 } else { -1 }); }
                                on:mousedown=move |ev| { ev.prevent_default(); drag.set(Some((ev.client_x(), ev.client_y()))); }
                                on:mouseup=move |_| drag.set(None)
                                on:mouseleave=move |_| drag.set(None)
                                on:mousemove=move |ev| {
                                    let Some((x0, y0)) = drag.get_untracked() else { return };
                                    let (dx, dy) = (f64::from(ev.client_x() - x0), f64::from(ev.client_y() - y0));
                                    if pan_mode.get_untracked() {
                                        pan.update(|(x, y)| { *x += dx; *y += dy; });
                                    } else {
                                        let (c0, w0) = custom.get_untracked().unwrap_or_else(|| {
                                            let p = preset.get_untracked();
                                            PRESETS.iter().find(|x| x.0 == p).map_or((40.0, 400.0), |x| (x.2, x.3))
                                        });
                                        custom.set(Some((c0 + dy * 2.0, (w0 + dx * 4.0).max(1.0))));
                                    }
                                    drag.set(Some((ev.client_x(), ev.client_y())));
                                }>
                                <img class="slice" alt="Image slice" draggable="false" src=src
                                    style=move || { let (x, y) = pan.get(); format!("transform: translate({x}px, {y}px) scale({})", zoom.get()) }/>
                                <div class="overlay" aria-hidden="true"></div>
                            </div>
                            <div class="row">
                                <button type="button" on:click=move |_| step(-1)>"Previous"</button>
                                <input type="range" min="0" max=(count - 1).to_string() prop:value=move || index.get().to_string()
                                    on:input=move |ev| index.set(event_target_value(&ev).parse().unwrap_or(0)) aria-label="Slice"/>
                                <button type="button" on:click=move |_| step(1)>"Next"</button>
                                <span>{move || format!("{} / {}", index.get().min(count - 1) + 1, count)}</span>
                            </div>
                        </div>
                    }.into_any()
                }
            })}
        </Transition>
    }
}

/// Drag-and-drop or file-picker upload with a progress bar. The browser
/// sends the files to the REST endpoint with the session's CSRF token.
#[component]
fn Uploader(case_id: Uuid, on_done: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let progress = RwSignal::new(None::<f64>);
    let result = RwSignal::new(None::<Result<UploadOutcome, String>>);
    let over = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    let start = {
        let on_done = on_done.clone();
        move |files: web_sys::FileList| {
            let on_done = on_done.clone();
            progress.set(Some(0.0));
            result.set(None);
            let outcome = upload_files(
                case_id,
                &files,
                move |p| progress.set(Some(p)),
                move |r| {
                    progress.set(None);
                    result.set(Some(r));
                    on_done();
                },
            );
            if outcome.is_err() {
                progress.set(None);
                result.set(Some(Err("The browser could not start the upload.".into())));
            }
        }
    };
    #[cfg(feature = "hydrate")]
    let start_drop = start.clone();
    #[cfg(not(feature = "hydrate"))]
    let _ = (case_id, on_done);
    view! {
        <div class="dropzone" class:over=move || over.get()
            on:dragover=move |ev| { ev.prevent_default(); over.set(true); }
            on:dragleave=move |_| over.set(false)
            on:drop=move |ev| {
                ev.prevent_default();
                over.set(false);
                #[cfg(feature = "hydrate")]
                if let Some(files) = ev.data_transfer().and_then(|d| d.files()) {
                    start_drop(files);
                }
            }>
            <p>"Drop DICOM, NIfTI, PNG/JPEG/TIFF/BMP files or a ZIP here, or "
                <label class="button">"choose files"
                    <input type="file" multiple class="visually-hidden"
                        on:change=move |ev| {
                            #[cfg(feature = "hydrate")]
                            {
                                use wasm_bindgen::JsCast;
                                if let Some(files) = ev.target()
                                    .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
                                    .and_then(|i| i.files())
                                {
                                    start(files);
                                }
                            }
                            #[cfg(not(feature = "hydrate"))]
                            let _ = ev;
                        }/>
                </label></p>
            <p class="muted small">"Patient identity is removed on upload (DICOM PS3.15 basic profile). Files that cannot be de-identified are refused, not stored."</p>
            {move || progress.get().map(|p| view! {
                <progress max="1" value=p.to_string()>{format!("{:.0}%", p * 100.0)}</progress>
                <span>{if p >= 1.0 { "Processing…".to_owned() } else { format!("Uploading {:.0}%", p * 100.0) }}</span>
            })}
            {move || result.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                Ok(o) => view! {
                    <div role="status">
                        <p>{format!("{} file(s) accepted in {} stud{}.", o.accepted, o.studies.len(), if o.studies.len() == 1 { "y" } else { "ies" })}</p>
                        {(!o.rejected.is_empty()).then(|| view! {
                            <p class="error">{format!("{} file(s) refused:", o.rejected.len())}</p>
                            <ul class="rejected">
                                {o.rejected.into_iter().map(|r| view! { <li><strong>{r.file}</strong>": "{r.reason}</li> }).collect_view()}
                            </ul>
                        })}
                    </div>
                }.into_any(),
            })}
        </div>
    }
}

#[cfg(feature = "hydrate")]
fn upload_files(
    case_id: Uuid,
    files: &web_sys::FileList,
    on_progress: impl Fn(f64) + 'static,
    on_done: impl FnOnce(Result<UploadOutcome, String>) + 'static,
) -> Result<(), wasm_bindgen::JsValue> {
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    let form = web_sys::FormData::new()?;
    for i in 0..files.length() {
        if let Some(f) = files.item(i) {
            form.append_with_blob_and_filename("file", &f, &f.name())?;
        }
    }
    let xhr = web_sys::XmlHttpRequest::new()?;
    xhr.open("POST", &format!("/api/v1/cases/{case_id}/images"))?;
    xhr.set_request_header("X-CSRF-Token", &crate::ui::csrf_token())?;
    xhr.set_request_header("Accept", "application/json")?;
    let progress =
        Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
            if e.length_computable() && e.total() > 0.0 {
                on_progress(e.loaded() / e.total());
            }
        });
    xhr.upload()?
        .set_onprogress(Some(progress.as_ref().unchecked_ref()));
    // The XHR keeps the handler alive only as long as it exists; the
    // closure is leaked once per upload, which is a few bytes.
    progress.forget();
    let done_xhr = xhr.clone();
    let done = Closure::once_into_js(move || {
        let status = done_xhr.status().unwrap_or(0);
        let text = done_xhr.response_text().ok().flatten().unwrap_or_default();
        let r = match status {
            201 | 422 => serde_json::from_str::<UploadOutcome>(&text)
                .map_err(|_| "The server's answer could not be read.".to_owned()),
            0 => Err("The upload was interrupted (network).".to_owned()),
            _ => Err(serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("The upload failed (HTTP {status})."))),
        };
        on_done(r);
    });
    xhr.set_onloadend(Some(done.unchecked_ref()));
    xhr.send_with_opt_form_data(Some(&form))?;
    Ok(())
}
