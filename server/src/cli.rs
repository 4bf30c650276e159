//! The `medvision` command line: `serve` (default), `migrate`, and operator
//! commands for organisations, users, tokens and the audit log.

use crate::settings::Settings;
use anyhow::{bail, Context};
use app::admin::ssr::{self as admin, Change};
use app::domain::Role;
use app::error::AppError;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "medvision",
    version,
    about = "MedVision: AI-assisted reading of medical images (decision support, not diagnosis)"
)]
pub struct Cli {
    /// Configuration file (default: ./medvision.toml when present).
    #[arg(long, global = true, env = "MEDVISION_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server (the default), with embedded analysis workers
    /// unless `embedded_workers` is off.
    Serve,
    /// Run analysis workers only (any number of these processes may share
    /// one PostgreSQL database).
    Worker {
        /// Jobs this process runs at once (default: `worker_concurrency`).
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Receive studies from modalities and PACS: a DICOM C-STORE SCP
    /// (C-ECHO too) for the calling AE titles registered with
    /// `medvision dicom add-node --kind source`.
    Scp {
        /// TCP port (default: `scp_port`, else 11112).
        #[arg(long)]
        port: Option<u16>,
        /// This node's AE title (default: `scp_ae_title`).
        #[arg(long)]
        ae_title: Option<String>,
    },
    /// Remote DICOM nodes and network checks.
    #[command(subcommand)]
    Dicom(DicomCmd),
    /// Apply database migrations and exit.
    Migrate,
    /// Back up the database, stored images, evidence index, model packs and
    /// de-identification key into a new folder, with a checksummed manifest.
    /// Safe while the server runs.
    Backup {
        /// The folder to create (must not exist or be empty).
        dir: PathBuf,
    },
    /// Restore a backup into this configuration's data directory and
    /// database, which must be fresh; checks every checksum first and the
    /// restored data after.
    Restore {
        /// A folder written by `medvision backup`.
        dir: PathBuf,
        /// Only check the backup's checksums; change nothing.
        #[arg(long)]
        verify_only: bool,
    },
    /// Stored images and artefacts: encryption at rest.
    #[command(subcommand)]
    Blobs(BlobsCmd),
    /// Organisations (tenants).
    #[command(subcommand)]
    Org(OrgCmd),
    /// User accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Personal API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Model packs: list, verify, import weights, train the demo packs.
    #[command(subcommand)]
    Models(ModelsCmd),
    /// The evidence index: ingest PubMed and guidelines, search.
    #[command(subcommand)]
    Corpus(crate::corpus::CorpusCmd),
    /// Import a folder, ZIP or files of images into a case, de-identified
    /// exactly as a browser upload is.
    Import {
        /// Files, folders or ZIP archives.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The case's id.
        #[arg(long)]
        case: uuid::Uuid,
        /// The user importing (must be able to see the case); recorded in
        /// the audit log.
        #[arg(long)]
        email: String,
        /// Stay until every study is analysed (running workers in this
        /// process), with a progress bar.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BlobsCmd {
    /// Seal every stored object with the current `encryption_key`:
    /// encrypts objects stored before encryption was on and re-wraps those
    /// sealed with a previous key. Run after setting or rotating the key.
    Rewrap,
    /// Read back and authenticate every stored object; exits non-zero when
    /// any cannot be read.
    Verify,
}

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum ModelsCmd {
    /// The installed packs.
    List {
        /// `[{"name", "version", "arch", "task", "modality", "body_part",
        /// "labels", "intended_use", "sha256"}]`.
        #[arg(long)]
        json: bool,
    },
    /// Recompute every pack's weights sha256; exits non-zero on any mismatch.
    Verify,
    /// Make a pack from public weights (safetensors or a PyTorch state dict).
    Import {
        /// `densenet121`, `efficientnet-b0` … `efficientnet-b7` or `segresnet`.
        #[arg(long)]
        arch: String,
        /// Output labels in the model's order, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        labels: Vec<String>,
        /// The weights file.
        #[arg(long)]
        from: PathBuf,
        /// Key layout of the file: torchvision, torchxrayvision, chexnet, monai, native.
        #[arg(long, default_value = "torchvision")]
        source: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "1.0.0")]
        version: String,
        /// DICOM modality the model reads (DX, CR, CT, MR).
        #[arg(long)]
        modality: String,
        /// DICOM body part (CHEST, HEAD, BRAIN).
        #[arg(long)]
        body_part: String,
        /// Input channels (1 for torchxrayvision, 3 for ImageNet-style).
        #[arg(long, default_value_t = 1)]
        channels: usize,
        /// Input side in pixels (voxels for segmenters).
        #[arg(long, default_value_t = 224)]
        size: usize,
        /// What the model is for, shown with every result.
        #[arg(long)]
        intended_use: String,
        #[arg(long, default_value = "see the weights' source")]
        license: String,
    },
    /// Train the demo packs on synthetic phantoms (reused when up to date).
    TrainDemo {
        /// Where to write the packs (default: the models folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed of the phantoms and the initial weights.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
pub enum OrgCmd {
    /// Create an organisation.
    Add { name: String },
    /// List organisations.
    List,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create an enabled user.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long, value_parser = ["admin", "radiologist", "doctor"])]
        role: String,
        #[arg(long)]
        org: String,
        /// Display name (default: the part of the e-mail before @).
        #[arg(long)]
        name: Option<String>,
    },
    /// List users (optionally of one organisation).
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Change a user's role.
    SetRole {
        email: String,
        #[arg(value_parser = ["admin", "radiologist", "doctor"])]
        role: String,
    },
    /// Disable a user (their sessions and tokens stop working at once).
    Disable { email: String },
    /// Enable (or approve) a user.
    Enable { email: String },
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Print a new API token for a user.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum DicomCmd {
    /// Trust a remote application entity: a `source` may send studies to
    /// the SCP; a `destination` receives MedVision's results.
    AddNode {
        #[arg(long)]
        org: String,
        #[arg(long)]
        ae_title: String,
        /// `source` or `destination`.
        #[arg(long)]
        kind: String,
        /// Destination host (sources: informational).
        #[arg(long, default_value = "")]
        host: String,
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Cases opened from a source belong to this user.
        #[arg(long)]
        owner: String,
        /// Destinations: send the structured report when a report is signed.
        #[arg(long)]
        send_on_sign: bool,
    },
    /// The nodes of every organisation.
    Nodes,
    /// Forget a node.
    RemoveNode {
        #[arg(long)]
        ae_title: String,
        #[arg(long)]
        kind: String,
    },
    /// C-ECHO a remote node.
    Echo {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        ae_title: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Recompute the hash chain; exits non-zero and names the first broken row.
    Verify,
}

/// Turns an application error into a one-line CLI message.
fn cli_err(e: AppError) -> anyhow::Error {
    match e {
        AppError::Invalid { fields, .. } => anyhow::anyhow!(fields
            .iter()
            .map(|f| format!("{} {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ")),
        other => anyhow::anyhow!(other.to_string()),
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config).map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    crate::init_tracing(&settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let db = crate::db::connect(&settings).await?;
            crate::db::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Models(cmd) => crate::models::command(&settings, cmd),
        Command::Backup { dir } => {
            let db = crate::db::connect(&settings).await?;
            crate::db::migrate(&db).await?;
            let m = crate::backup::backup(&settings, &db.conn, &dir).await?;
            println!(
                "backup written to {}: {} database, {} cases, {} stored files, {} files in all",
                dir.display(),
                m.database,
                m.rows.get("cases").copied().unwrap_or(0),
                m.blobs.len(),
                m.files.len()
            );
            Ok(())
        }
        Command::Restore { dir, verify_only } => {
            if verify_only {
                let m = crate::backup::verify(&dir)?;
                println!(
                    "backup {} is intact: {} files match their checksums",
                    dir.display(),
                    m.files.len()
                );
                return Ok(());
            }
            let r = crate::backup::restore(&settings, &dir).await?;
            println!(
                "restored {}: {} cases, {} instances, {} reports, {} stored files; consistency check passed",
                dir.display(),
                r.rows.get("cases").copied().unwrap_or(0),
                r.rows.get("instances").copied().unwrap_or(0),
                r.rows.get("reports").copied().unwrap_or(0),
                r.blobs
            );
            Ok(())
        }
        Command::Blobs(cmd) => {
            let blobs = crate::blobs::Blobs::from_settings(&settings)?;
            match cmd {
                BlobsCmd::Rewrap => {
                    let r = blobs.rewrap().await?;
                    println!(
                        "{} objects: {} encrypted, {} re-wrapped with the current key, {} already current",
                        r.objects,
                        r.sealed,
                        r.rewrapped,
                        r.objects - r.sealed - r.rewrapped
                    );
                }
                BlobsCmd::Verify => {
                    let (n, bad) = blobs.verify().await?;
                    if !bad.is_empty() {
                        bail!(
                            "{} of {n} stored objects could not be read or authenticated",
                            bad.len()
                        );
                    }
                    println!("{n} stored objects read and authenticated");
                }
            }
            Ok(())
        }
        Command::Corpus(cmd) => crate::corpus::command(&settings, cmd).await,
        Command::Import {
            paths,
            case,
            email,
            wait,
        } => {
            let db = crate::db::connect(&settings).await?;
            crate::db::migrate(&db).await?;
            import(&settings, &db.conn, paths, case, &email, wait).await
        }
        Command::Scp { port, ae_title } => {
            let mut settings = settings;
            if let Some(t) = ae_title {
                settings.scp_ae_title = crate::dicom::parse_ae_title(&t)?;
            }
            let port = port.or(settings.scp_port).unwrap_or(11112);
            let db = crate::db::connect(&settings).await?;
            crate::db::migrate(&db).await?;
            scp(&settings, db.conn, port).await
        }
        Command::Dicom(DicomCmd::Echo {
            host,
            port,
            ae_title,
        }) => {
            let node = interop::scu::Node {
                host,
                port,
                ae_title: crate::dicom::parse_ae_title(&ae_title)?,
            };
            interop::scu::echo(
                &node,
                &settings.scu_ae_title,
                std::time::Duration::from_secs(settings.scp_timeout_secs.max(1)),
            )
            .await?;
            println!(
                "C-ECHO {}@{}:{}: success",
                node.ae_title, node.host, node.port
            );
            Ok(())
        }
        Command::Worker { concurrency } => {
            let mut settings = settings;
            if let Some(c) = concurrency {
                settings.worker_concurrency = c.max(1);
            }
            let db = crate::db::connect(&settings).await?;
            crate::db::migrate(&db).await?;
            worker(&settings, db.conn).await
        }
        other => {
            let db = crate::db::connect(&settings).await?;
            crate::db::migrate(&db).await?;
            admin_command(&db.conn, other).await
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bootstrap = settings.bootstrap_demo;
    let embedded = settings.embedded_workers;
    let app = crate::build(settings).await?;
    let first_admin = if bootstrap {
        bootstrap_demo(&app.state.db).await?
    } else {
        None
    };
    if embedded && app.pipeline.evidence.is_some() {
        // The first analysis should not wait for the model and the starter
        // guidelines: open the evidence index now, in the background.
        let svc = app.pipeline.clone();
        tokio::spawn(async move {
            if let Err(why) = svc.knowledge().await {
                tracing::warn!(reason = %why, "evidence retrieval unavailable");
            }
        });
    }
    println!("MedVision is running at {}", app.url);
    if let Some((email, password)) = first_admin {
        println!();
        println!("First start: created the organisation \"Demo Hospital\" and its administrator.");
        println!("  Sign in at  {}/login", app.url);
        println!("  E-mail      {email}");
        println!(
            "  Password    {password}   (one-time: you will choose your own at first sign-in)"
        );
        println!();
    }
    app.run().await.context("server stopped with an error")
}

/// On an empty database: a demo organisation and an admin whose random
/// password must be changed at first sign-in. Never a fixed password.
async fn bootstrap_demo(
    db: &sea_orm::DatabaseConnection,
) -> anyhow::Result<Option<(String, String)>> {
    use sea_orm::{EntityTrait, PaginatorTrait};
    if entity::user::Entity::find().count(db).await? > 0 {
        return Ok(None);
    }
    let org = match admin::find_org(db, "Demo Hospital").await {
        Ok(o) => o.name,
        Err(_) => {
            admin::add_org(db, "Demo Hospital")
                .await
                .map_err(cli_err)?
                .name
        }
    };
    let email = "admin@demo-hospital.example".to_owned();
    let password = app::ssr::random_token(15);
    admin::add_user(
        db,
        &email,
        Some("Demo Administrator"),
        &password,
        "admin",
        &org,
        true,
    )
    .await
    .map_err(cli_err)?;
    Ok(Some((email, password)))
}

async fn import(
    settings: &Settings,
    db: &sea_orm::DatabaseConnection,
    paths: Vec<PathBuf>,
    case: uuid::Uuid,
    email: &str,
    wait: bool,
) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let u = admin::find_user(db, email).await.map_err(cli_err)?;
    let actor = app::auth::ssr::actor_for_user(db, u.id)
        .await
        .map_err(cli_err)?
        .with_context(|| format!("{email} is not enabled"))?;
    app::cases::ssr::find_visible(db, &actor, case)
        .await
        .map_err(|_| anyhow::anyhow!("case {case} not found for {email}"))?;
    let mut sources = Vec::new();
    for p in paths {
        if !p.exists() {
            bail!("{} does not exist", p.display());
        }
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string());
        sources.push(imaging::Source { name, path: p });
    }
    let hub = std::sync::Arc::new(crate::pipeline::events::Hub::default());
    let mut img = crate::images::Imaging::new(settings, hub.clone())?;
    img.max_upload_bytes = u64::MAX;
    std::fs::create_dir_all(&img.tmp_dir)?;
    let work = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(&img.tmp_dir)?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bar:40} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("checking and de-identifying");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let outcome = crate::images::ingest_and_record(
        db,
        &img,
        &actor,
        case,
        sources,
        work.path().join("out"),
        Some(&bar),
        "import",
    )
    .await
    .map_err(cli_err)?;
    bar.finish_and_clear();
    println!(
        "{} file(s) accepted into {} stud{}",
        outcome.accepted,
        outcome.studies.len(),
        if outcome.studies.len() == 1 {
            "y"
        } else {
            "ies"
        }
    );
    for s in &outcome.studies {
        println!(
            "  study {} ({}): {} series, {} instances",
            s.id, s.modality, s.series, s.instances
        );
    }
    for r in &outcome.rejected {
        println!("  refused {}: {}", r.file, r.reason);
    }
    if outcome.accepted == 0 {
        bail!("nothing was imported");
    }
    match outcome.batch_id {
        Some(batch) if wait => {
            let svc = std::sync::Arc::new(crate::pipeline::Services::new(
                db.clone(),
                img.blobs.clone(),
                settings,
                hub,
            )?);
            let workers = crate::pipeline::Workers::start(svc);
            let r = follow_batch(db, &actor, batch).await;
            workers.shutdown().await;
            r
        }
        Some(batch) => {
            println!("batch {batch}: analysis queued");
            Ok(())
        }
        None => Ok(()),
    }
}

/// A progress bar over a batch's jobs until none is queued or running.
async fn follow_batch(
    db: &sea_orm::DatabaseConnection,
    actor: &app::ssr::Actor,
    batch: uuid::Uuid,
) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let first = app::pipeline::ssr::batch(db, actor, batch)
        .await
        .map_err(cli_err)?;
    let bar = ProgressBar::new(first.jobs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("analysing {bar:40} {pos}/{len} studies {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let b = loop {
        let b = app::pipeline::ssr::batch(db, actor, batch)
            .await
            .map_err(cli_err)?;
        let c = &b.counts;
        bar.set_position(u64::from(c.completed + c.failed + c.cancelled));
        bar.set_message(match b.eta_seconds {
            Some(s) => format!("(about {s} s left)"),
            None => String::new(),
        });
        if c.done() {
            break b;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    bar.finish_and_clear();
    for j in &b.jobs {
        let study = j.study_id.map(|s| s.to_string()).unwrap_or_default();
        match (j.state.as_str(), &j.error, &j.note) {
            ("failed", Some(e), _) => println!("  study {study}: failed in {}: {e}", j.stage),
            (_, _, Some(n)) => println!("  study {study}: {} ({n})", j.state),
            _ => println!("  study {study}: {}", j.state),
        }
    }
    if b.counts.failed > 0 {
        bail!("{} of {} studies failed", b.counts.failed, b.jobs.len());
    }
    Ok(())
}

/// `medvision worker`: workers without the web server, until SIGTERM.
async fn worker(settings: &Settings, db: sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    let hub = std::sync::Arc::new(crate::pipeline::events::Hub::default());
    let blobs = crate::blobs::Blobs::from_settings(settings)?;
    let svc = std::sync::Arc::new(crate::pipeline::Services::new(
        db.clone(),
        blobs,
        settings,
        hub,
    )?);
    if let Some(addr) = settings.metrics_addr {
        let scrape = crate::telemetry::Scrape {
            handle: crate::telemetry::install(),
            db,
            pipeline: Some(svc.clone()),
        };
        crate::telemetry::serve(addr, scrape).await?;
    }
    let sweeper = svc.blobs.encrypted().then(|| {
        tokio::spawn(crate::blobs::sweep_cache(
            crate::blobs::cache_dirs(&svc.cache_dir),
            std::time::Duration::from_secs(3600),
            std::time::Duration::from_secs(600),
        ))
    });
    let workers = crate::pipeline::Workers::start(svc);
    println!(
        "worker {} running {} job(s) at a time",
        workers.id, settings.worker_concurrency
    );
    crate::shutdown_signal().await;
    workers.shutdown().await;
    if let Some(s) = sweeper {
        s.abort();
    }
    Ok(())
}

async fn scp(
    settings: &Settings,
    db: sea_orm::DatabaseConnection,
    port: u16,
) -> anyhow::Result<()> {
    let hub = std::sync::Arc::new(crate::pipeline::events::Hub::default());
    let img = std::sync::Arc::new(crate::images::Imaging::new(settings, hub)?);
    let svc = crate::dicom::DicomService::start(settings, db, img, port).await?;
    println!(
        "DICOM C-STORE SCP {} listening on {}:{}",
        settings.scp_ae_title, settings.scp_bind, svc.port
    );
    crate::shutdown_signal().await;
    println!("{}", crate::dicom::stats_line(&svc.scp));
    svc.shutdown().await;
    Ok(())
}

async fn admin_command(db: &sea_orm::DatabaseConnection, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Dicom(DicomCmd::AddNode {
            org,
            ae_title,
            kind,
            host,
            port,
            owner,
            send_on_sign,
        }) => {
            let n = crate::dicom::add_node(
                db,
                crate::dicom::NewNode {
                    org: &org,
                    ae_title: &ae_title,
                    kind: &kind,
                    host: &host,
                    port,
                    owner_email: &owner,
                    send_on_sign,
                },
            )
            .await?;
            println!("added {} node {} ({})", n.kind, n.ae_title, n.id);
        }
        Command::Dicom(DicomCmd::Nodes) => {
            use sea_orm::{EntityTrait, QueryOrder};
            for n in entity::dicom_node::Entity::find()
                .order_by_asc(entity::dicom_node::Column::AeTitle)
                .all(db)
                .await?
            {
                println!(
                    "{}\t{}\t{}\t{}:{}\torg {}{}",
                    n.ae_title,
                    n.kind,
                    n.id,
                    n.host,
                    n.port,
                    n.org_id,
                    if n.send_on_sign { "\tsend on sign" } else { "" }
                );
            }
        }
        Command::Dicom(DicomCmd::RemoveNode { ae_title, kind }) => {
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            let r = entity::dicom_node::Entity::delete_many()
                .filter(entity::dicom_node::Column::AeTitle.eq(ae_title.trim()))
                .filter(entity::dicom_node::Column::Kind.eq(kind.as_str()))
                .exec(db)
                .await?;
            if r.rows_affected == 0 {
                bail!("no {kind} node called {ae_title}");
            }
            println!("removed {kind} node {ae_title}");
        }
        Command::Org(OrgCmd::Add { name }) => {
            let o = admin::add_org(db, &name).await.map_err(cli_err)?;
            println!("created organisation {} ({})", o.name, o.id);
        }
        Command::Org(OrgCmd::List) => {
            for o in admin::list_orgs(db).await.map_err(cli_err)? {
                println!("{}\t{}\t{} users", o.id, o.name, o.users);
            }
        }
        Command::User(UserCmd::Add {
            email,
            password,
            role,
            org,
            name,
        }) => {
            let u = admin::add_user(db, &email, name.as_deref(), &password, &role, &org, false)
                .await
                .map_err(cli_err)?;
            println!(
                "created {} {} in {} ({})",
                u.role,
                u.email,
                org.trim(),
                u.id
            );
        }
        Command::User(UserCmd::List { org }) => {
            for (org, u) in admin::list_all_users(db, org.as_deref())
                .await
                .map_err(cli_err)?
            {
                let state = if u.pending {
                    "pending"
                } else if u.enabled {
                    "active"
                } else {
                    "disabled"
                };
                println!("{}\t{}\t{}\t{}\t{}", u.email, u.role, state, org, u.id);
            }
        }
        Command::User(UserCmd::SetRole { email, role }) => {
            let role =
                Role::parse(&role).map_err(|e| anyhow::anyhow!("{} {}", e.field, e.message))?;
            let u = admin::cli_change_user(db, &email, Change::Role(role))
                .await
                .map_err(cli_err)?;
            println!("{} is now {}", u.email, u.role);
        }
        Command::User(UserCmd::Disable { email }) => {
            let u = admin::cli_change_user(db, &email, Change::Enabled(false))
                .await
                .map_err(cli_err)?;
            println!("{} is disabled", u.email);
        }
        Command::User(UserCmd::Enable { email }) => {
            let u = admin::cli_change_user(db, &email, Change::Enabled(true))
                .await
                .map_err(cli_err)?;
            println!("{} is enabled", u.email);
        }
        Command::Token(TokenCmd::Create { email, name }) => {
            let u = admin::find_user(db, &email).await.map_err(cli_err)?;
            if !u.enabled {
                bail!("{} is not enabled", u.email);
            }
            let actor = app::auth::ssr::actor_for_user(db, u.id)
                .await
                .map_err(cli_err)?
                .context("user not found")?;
            let (_, token) = app::auth::ssr::create_token(db, &actor, &name)
                .await
                .map_err(cli_err)?;
            println!("{token}");
        }
        Command::Audit(AuditCmd::Verify) => {
            let r = app::audit::ssr::verify(db).await.map_err(cli_err)?;
            match r.first_broken {
                None => println!("audit chain intact: {} rows verified", r.rows),
                Some(b) => bail!("audit chain broken at row {}: {}", b.seq, b.reason),
            }
        }
        Command::Serve
        | Command::Scp { .. }
        | Command::Dicom(DicomCmd::Echo { .. })
        | Command::Migrate
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Blobs(_)
        | Command::Import { .. }
        | Command::Models(_)
        | Command::Corpus(_)
        | Command::Worker { .. } => {
            unreachable!("handled in run")
        }
    }
    Ok(())
}
