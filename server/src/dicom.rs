//! DICOM networking in the server: the C-STORE SCP (in `serve` when
//! `scp_port` is set, or alone as `medvision scp`), the handover of quiet
//! studies to the same ingest path as uploads, and the operator commands
//! for the remote nodes an organisation trusts.
//!
//! The SCP acknowledges an instance once it is in the spool on disk; the
//! handover (de-identification, blob store, index, analysis jobs) runs
//! when the study has been quiet for `scp_quiet_secs`, so a modality
//! streaming a 500-slice series never waits on the database.

use crate::images::Imaging;
use crate::settings::Settings;
use anyhow::{bail, Context};
use app::error::AppError;
use app::ssr::Actor;
use entity::{dicom_node, received_study};
use interop::scp::{Gate, Scp, ScpConfig};
use interop::spool::{Claimed, Spool, StudyFacts};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const SOURCE: &str = "source";
pub const DESTINATION: &str = "destination";

/// Calling AE title → organisation, from `dicom_nodes`, refreshed every few
/// seconds (the SCP asks during negotiation and cannot wait on the
/// database).
#[derive(Default)]
pub struct DbGate {
    sources: RwLock<HashMap<String, Uuid>>,
}

impl DbGate {
    pub async fn refresh(&self, db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
        let rows = dicom_node::Entity::find()
            .filter(dicom_node::Column::Kind.eq(SOURCE))
            .all(db)
            .await?;
        let map = rows.into_iter().map(|n| (n.ae_title, n.org_id)).collect();
        if let Ok(mut g) = self.sources.write() {
            *g = map;
        }
        Ok(())
    }
}

impl Gate for DbGate {
    fn tenant(&self, calling_ae: &str) -> Option<String> {
        self.sources
            .read()
            .ok()?
            .get(calling_ae)
            .map(|org| org.to_string())
    }
}

/// A running SCP and its handover loop.
pub struct DicomService {
    pub port: u16,
    pub scp: Arc<Scp>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl DicomService {
    /// Binds `scp_bind:port` (0 picks a free port) and starts receiving.
    pub async fn start(
        settings: &Settings,
        db: DatabaseConnection,
        img: Arc<Imaging>,
        port: u16,
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind((settings.scp_bind.as_str(), port))
            .await
            .with_context(|| format!("binding the DICOM port {}:{port}", settings.scp_bind))?;
        let port = listener.local_addr()?.port();
        let spool = Arc::new(Spool::open(settings.data_dir.join("spool").join("dicom"))?);
        let gate = Arc::new(DbGate::default());
        gate.refresh(&db).await?;
        let cfg = ScpConfig {
            ae_title: settings.scp_ae_title.clone(),
            max_associations: settings.scp_max_associations,
            max_instance_bytes: usize::try_from(settings.max_upload_bytes).unwrap_or(usize::MAX),
            timeout: Duration::from_secs(settings.scp_timeout_secs.max(1)),
            ..ScpConfig::default()
        };
        let scp = Arc::new(Scp::new(cfg, gate.clone(), spool.clone()));
        let (stop, rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(scp.clone().serve(listener, rx.clone()))];
        tasks.push(tokio::spawn({
            let (db, mut rx) = (db.clone(), rx.clone());
            async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = rx.changed() => return,
                    }
                    if let Err(e) = gate.refresh(&db).await {
                        tracing::warn!(error = %e, "could not refresh the DICOM nodes");
                    }
                }
            }
        }));
        let quiet = Duration::from_secs(settings.scp_quiet_secs);
        tasks.push(tokio::spawn(handover_loop(db, img, spool, quiet, rx)));
        tracing::info!(port, ae_title = %settings.scp_ae_title, "DICOM C-STORE SCP listening");
        Ok(Self {
            port,
            scp,
            stop,
            tasks,
        })
    }

    /// Stops accepting; a handover in progress finishes first.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn handover_loop(
    db: DatabaseConnection,
    img: Arc<Imaging>,
    spool: Arc<Spool>,
    quiet: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // Failures per study folder: a study that keeps failing (its owner was
    // removed, the database is down) is retried, but not in a tight loop.
    let mut failures: HashMap<std::path::PathBuf, (u32, tokio::time::Instant)> = HashMap::new();
    let mut first = true;
    loop {
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => return,
            }
        }
        first = false;
        let s = spool.clone();
        let found = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Claimed>> {
            let mut all = s.abandoned()?;
            all.extend(s.claim_quiet(quiet)?);
            Ok(all)
        })
        .await;
        let claimed = match found {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the DICOM spool is unreadable");
                continue;
            }
            Err(_) => continue,
        };
        for c in claimed {
            let now = tokio::time::Instant::now();
            let n = match failures.get(&c.dir) {
                Some((_, next)) if now < *next => continue,
                Some((n, _)) => *n,
                None => 0,
            };
            let dir = c.dir.clone();
            match handover(&db, &img, c).await {
                Ok(()) => {
                    failures.remove(&dir);
                }
                Err(e) => {
                    tracing::error!(error = %e, "a received study could not be handed over; it stays in the spool");
                    // Back off: 1 s, 2 s, 4 s … at most about 4 minutes.
                    let wait = Duration::from_millis(500 << (n + 1).min(9));
                    failures.insert(dir, (n + 1, now + wait));
                }
            }
        }
    }
}

/// A pseudonymous patient reference for the case list: the same patient
/// sent twice gets the same reference within an organisation, and nothing
/// about the Patient ID can be read back from it.
fn patient_ref(img: &Imaging, org: Uuid, patient_id: &str) -> String {
    let org_key = imaging::deid::keyed_hash(&img.ingest.deid.key, b"org", org.as_bytes());
    let h = imaging::deid::keyed_hash(&org_key, b"patient-ref", patient_id.as_bytes());
    format!("DICOM-{}", hex::encode_upper(&h[..5]))
}

async fn new_case(
    db: &DatabaseConnection,
    img: &Imaging,
    actor: &Actor,
    facts: &StudyFacts,
    origin: &str,
) -> Result<Uuid, AppError> {
    use app::domain::{BodyPart, Modality};
    let modality = Modality::parse(&facts.modality).unwrap_or(Modality::Other);
    let body_part = BodyPart::parse(&facts.body_part.to_lowercase())
        .map(|b| b.as_str().to_owned())
        .unwrap_or_else(|_| "unspecified".into());
    let sex = match facts.sex.as_str() {
        "M" | "F" | "O" => facts.sex.clone(),
        _ => "U".into(),
    };
    let mut history = format!("Received over DICOM from {origin}.");
    if !facts.study_description.is_empty() {
        history.push_str(&format!(" Study: {}.", facts.study_description));
    }
    let input = app::cases::NewCaseInput {
        patient_ref: patient_ref(img, actor.org_id, &facts.patient_id),
        age: facts.age_years.map(i64::from),
        sex,
        modality: modality.as_str().to_owned(),
        body_part,
        urgency: "routine".into(),
        history: Some(history.chars().take(4000).collect()),
    };
    Ok(app::cases::ssr::create(db, actor, &input).await?.id)
}

/// One quiet study: into its case (opened on first receipt), through the
/// upload path, then out of the spool.
async fn handover(db: &DatabaseConnection, img: &Imaging, c: Claimed) -> anyhow::Result<()> {
    if c.files.is_empty() {
        c.finish()?;
        return Ok(());
    }
    let org: Uuid = c
        .tenant
        .parse()
        .context("spool tenant is not an organisation")?;
    let node = dicom_node::Entity::find()
        .filter(dicom_node::Column::OrgId.eq(org))
        .filter(dicom_node::Column::Kind.eq(SOURCE))
        .filter(dicom_node::Column::AeTitle.eq(c.origin.as_str()))
        .one(db)
        .await?;
    let owner = match node {
        Some(n) => n.owner_id,
        // The node was removed after sending: the organisation's first
        // administrator takes the study rather than it being lost.
        None => first_admin(db, org).await?,
    };
    let actor = app::auth::ssr::actor_for_user(db, owner)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("the receiving node's owner is disabled")?;
    let (case_id, outcome) =
        receive_study(db, img, &actor, &c.origin, &c.study_key, &c.files).await?;
    tracing::info!(
        %case_id,
        accepted = outcome.accepted,
        refused = outcome.rejected.len(),
        origin = %c.origin,
        "received DICOM study handed over"
    );
    c.finish()?;
    Ok(())
}

/// The name the `i`-th file of a received study has in its upload outcome
/// (refusals are reported under it).
pub fn source_name(origin: &str, i: usize) -> String {
    format!("{origin}-{:05}.dcm", i + 1)
}

/// Files of one study received from outside (C-STORE or STOW-RS) into the
/// case that study went to before, or a new one owned by `actor`: the
/// same ingest as an upload (limits, de-identification, blob store, index,
/// analysis jobs). `origin` names the sender in the case history.
pub async fn receive_study(
    db: &DatabaseConnection,
    img: &Imaging,
    actor: &Actor,
    origin: &str,
    study_key: &str,
    files: &[std::path::PathBuf],
) -> anyhow::Result<(Uuid, app::images::UploadOutcome)> {
    let org = actor.org_id;
    let first = files.first().context("no files")?.clone();
    let facts = tokio::task::spawn_blocking(move || StudyFacts::read(&first)).await??;
    let known = received_study::Entity::find_by_id((org, study_key.to_owned()))
        .one(db)
        .await?;
    let sources: Vec<imaging::Source> = files
        .iter()
        .enumerate()
        .map(|(i, p)| imaging::Source {
            name: source_name(origin, i),
            path: p.clone(),
        })
        .collect();
    tokio::fs::create_dir_all(&img.tmp_dir).await?;
    let work = tempfile::Builder::new()
        .prefix("dicom-")
        .tempdir_in(&img.tmp_dir)?;
    let opened = |e: AppError| anyhow::anyhow!("{e}");
    let mut case_id = match &known {
        Some(k) => k.case_id,
        None => new_case(db, img, actor, &facts, origin)
            .await
            .map_err(opened)?,
    };
    let mut outcome = crate::images::ingest_and_record(
        db,
        img,
        actor,
        case_id,
        sources.clone(),
        work.path().join("out"),
        None,
        "dicom",
    )
    .await;
    if known.is_some() && matches!(outcome, Err(AppError::Conflict(_) | AppError::NotFound)) {
        // The earlier case was closed (or is not the sender's to add to):
        // a study sent again after that opens a new one.
        case_id = new_case(db, img, actor, &facts, origin)
            .await
            .map_err(opened)?;
        outcome = crate::images::ingest_and_record(
            db,
            img,
            actor,
            case_id,
            sources,
            work.path().join("out2"),
            None,
            "dicom",
        )
        .await;
    }
    let outcome = outcome.map_err(opened)?;
    let now = app::ssr::now();
    let accepted = i32::try_from(outcome.accepted).unwrap_or(i32::MAX);
    let origin16: String = origin.chars().take(16).collect();
    match known {
        Some(k) => {
            let mut m: received_study::ActiveModel = k.clone().into();
            m.case_id = Set(case_id);
            m.origin = Set(origin16);
            m.instances = Set(k.instances.saturating_add(accepted));
            m.handovers = Set(k.handovers.saturating_add(1));
            m.last_at = Set(now);
            m.update(db).await?;
        }
        None => {
            received_study::ActiveModel {
                org_id: Set(org),
                study_key: Set(study_key.to_owned()),
                case_id: Set(case_id),
                origin: Set(origin16),
                instances: Set(accepted),
                handovers: Set(1),
                first_at: Set(now),
                last_at: Set(now),
            }
            .insert(db)
            .await?;
        }
    }
    Ok((case_id, outcome))
}

async fn first_admin(db: &DatabaseConnection, org: Uuid) -> anyhow::Result<Uuid> {
    let u = entity::user::Entity::find()
        .filter(entity::user::Column::OrgId.eq(org))
        .filter(entity::user::Column::Role.eq("admin"))
        .filter(entity::user::Column::Enabled.eq(true))
        .order_by_asc(entity::user::Column::CreatedAt)
        .one(db)
        .await?
        .context("the organisation has no administrator to receive the study")?;
    Ok(u.id)
}

/// A DICOM AE title: 1–16 characters of printable ASCII without `\`,
/// not all spaces (PS3.5 §6.2, AE).
pub fn parse_ae_title(raw: &str) -> anyhow::Result<String> {
    let t = raw.trim();
    if t.is_empty() || t.len() > 16 || !t.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\') {
        bail!("an AE title is 1 to 16 printable ASCII characters without a backslash");
    }
    Ok(t.to_owned())
}

pub struct NewNode<'a> {
    pub org: &'a str,
    pub ae_title: &'a str,
    pub kind: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub owner_email: &'a str,
    pub send_on_sign: bool,
}

/// `medvision dicom node add`.
pub async fn add_node(
    db: &DatabaseConnection,
    n: NewNode<'_>,
) -> anyhow::Result<dicom_node::Model> {
    let ae = parse_ae_title(n.ae_title)?;
    if n.kind != SOURCE && n.kind != DESTINATION {
        bail!("kind must be {SOURCE} or {DESTINATION}");
    }
    if n.kind == DESTINATION && (n.host.trim().is_empty() || n.port == 0) {
        bail!("a destination needs --host and --port");
    }
    let org = app::admin::ssr::find_org(db, n.org)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let owner = app::admin::ssr::find_user(db, n.owner_email)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if owner.org_id != org.id {
        bail!("{} is not a member of {}", n.owner_email, org.name);
    }
    let taken = dicom_node::Entity::find()
        .filter(dicom_node::Column::AeTitle.eq(ae.as_str()))
        .filter(dicom_node::Column::Kind.eq(n.kind))
        .one(db)
        .await?;
    if taken.is_some() {
        bail!("a {} node called {ae} already exists", n.kind);
    }
    Ok(dicom_node::ActiveModel {
        id: Set(Uuid::new_v4()),
        org_id: Set(org.id),
        ae_title: Set(ae),
        kind: Set(n.kind.to_owned()),
        host: Set(n.host.trim().to_owned()),
        port: Set(i32::from(n.port)),
        owner_id: Set(owner.id),
        send_on_sign: Set(n.send_on_sign && n.kind == DESTINATION),
        created_at: Set(app::ssr::now()),
    }
    .insert(db)
    .await?)
}

/// Counters of a running SCP as one line, for `medvision scp`'s log.
pub fn stats_line(scp: &Scp) -> String {
    let s = &scp.stats;
    format!(
        "associations {} (refused {}), instances stored {} (refused {}), echoes {}",
        s.associations.load(Ordering::Relaxed),
        s.rejected.load(Ordering::Relaxed),
        s.stored.load(Ordering::Relaxed),
        s.failed.load(Ordering::Relaxed),
        s.echoes.load(Ordering::Relaxed),
    )
}
