//! Pipeline benchmark (see bench/pipeline.sh).
//!
//! * `queue`: no-op jobs through the real queue and workers; jobs/s.
//! * `e2e`: phantom head-CT slices imported as studies and analysed by the
//!   demo ICH pack through the whole pipeline; studies/s, and the pipeline's
//!   wall time against pure inference of the same images in the same run
//!   (decode + batched classify, no queue, no database).
//!
//! Environment: `DATABASE_URL` (default: a SQLite file in a temp dir),
//! `MEDVISION_MODELS_DIR` (the demo packs), `JOBS`, `WORKERS` (concurrency),
//! `STUDIES`, `SLICES`.

use medvision::pipeline::{events::Hub, Services, Workers};
use medvision::settings::Settings;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

async fn count_left(db: &sea_orm::DatabaseConnection) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    db.query_one(Statement::from_string(
        db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running')".to_owned(),
    ))
    .await
    .ok()
    .flatten()
    .and_then(|r| r.try_get::<i64>("", "n").ok())
    .unwrap_or(-1)
}

async fn wait_done(db: &sea_orm::DatabaseConnection) {
    loop {
        if count_left(db).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "queue".into());
    let tmp = tempfile::tempdir()?;
    let mut settings = Settings {
        data_dir: tmp.path().join("data"),
        bootstrap_demo: false,
        ..Default::default()
    };
    if let Ok(u) = std::env::var("DATABASE_URL") {
        settings.database_url = Some(u.into());
    }
    if let Ok(m) = std::env::var("MEDVISION_MODELS_DIR") {
        settings.models_dir = Some(m.into());
    }
    settings.worker_concurrency = env("WORKERS", 4);
    settings.job_poll_ms = 5;
    let db = medvision::db::connect(&settings).await?;
    medvision::db::migrate(&db).await?;
    let conn = db.conn.clone();
    use app::admin::ssr as admin;
    admin::add_org(&conn, "Bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let u = admin::add_user(
        &conn,
        "bench@bench.example",
        None,
        "correct horse battery staple",
        "doctor",
        "Bench",
        false,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let actor = app::auth::ssr::actor_for_user(&conn, u.id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .ok_or_else(|| anyhow::anyhow!("no actor"))?;
    let case = app::cases::ssr::create(
        &conn,
        &actor,
        &app::cases::NewCaseInput {
            patient_ref: "BENCH".into(),
            age: Some(50),
            sex: "F".into(),
            modality: "CT".into(),
            body_part: "head".into(),
            urgency: "routine".into(),
            history: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hub = Arc::new(Hub::default());
    let backend = if settings.is_postgres() {
        "postgresql"
    } else {
        "sqlite"
    };

    match mode.as_str() {
        "queue" => {
            let jobs: usize = env("JOBS", 2000);
            for _ in 0..jobs {
                app::pipeline::ssr::insert_job(&conn, actor.org_id, case.id, None, None, "noop", 3)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let blobs = medvision::blobs::Blobs::open(&settings.data_dir, None)?;
            let svc = Arc::new(Services::new(conn.clone(), blobs, &settings, hub)?);
            let t0 = Instant::now();
            let w = Workers::start(svc);
            wait_done(&conn).await;
            let s = t0.elapsed().as_secs_f64();
            w.shutdown().await;
            println!(
                "{{\"bench\":\"queue\",\"backend\":\"{backend}\",\"jobs\":{jobs},\"concurrency\":{},\"seconds\":{s:.3},\"jobs_per_s\":{:.0}}}",
                settings.worker_concurrency,
                jobs as f64 / s
            );
        }
        "e2e" => {
            let studies: u32 = env("STUDIES", 20);
            let slices: u32 = env("SLICES", 10);
            let size: usize = env("SIZE", 128);
            let dir = tmp.path().join("in");
            std::fs::create_dir_all(&dir)?;
            let mut paths = Vec::new();
            {
                use rand::SeedableRng;
                let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                for st in 0..studies {
                    for s in 0..slices {
                        let x = inference::phantom::head_ct(&mut rng, size, 0.5);
                        let mut meta = imaging::write::SynthMeta::phantom("HEAD", 11, st);
                        meta.sop_uid = format!("{}.{}", meta.sop_uid, s + 1);
                        meta.instance_number = s + 1;
                        meta.image_position_mm[2] = f64::from(s) * 5.0;
                        let p = dir.join(format!("s{st}-{s}.dcm"));
                        imaging::write::write_ct_dicom(&p, &x.hu, size, size, &meta)?;
                        paths.push(p);
                    }
                }
            }
            let img = medvision::images::Imaging::new(&settings, hub.clone())?;
            let sources = paths
                .iter()
                .map(|p| imaging::Source {
                    name: p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: p.clone(),
                })
                .collect();
            let svc = Arc::new(Services::new(
                conn.clone(),
                img.blobs.clone(),
                &settings,
                hub.clone(),
            )?);
            let pack = svc
                .choose("CT", "HEAD", inference::pack::Task::Classification)
                .ok_or_else(|| anyhow::anyhow!("no CT/HEAD pack in the models folder: run `medvision models train-demo` and set MEDVISION_MODELS_DIR"))?;
            // Load the model before timing: both sides start warm.
            let model = svc
                .model(&pack.manifest.name)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;

            // Pure inference: decode every slice and classify in batches.
            let t0 = Instant::now();
            let decoded: Vec<(Vec<f32>, usize, usize)> = paths
                .iter()
                .map(|p| -> anyhow::Result<_> {
                    let f = imaging::dicom::open(p)?.decode_frame(0)?;
                    Ok((
                        imaging::pixel::modality_values(&f),
                        f.columns as usize,
                        f.rows as usize,
                    ))
                })
                .collect::<anyhow::Result<_>>()?;
            let batch = settings.inference_batch_max;
            for chunk in decoded.chunks(batch) {
                let planes: Vec<_> = chunk
                    .iter()
                    .map(|(v, w, h)| inference::preprocess::Plane {
                        values: v,
                        width: *w,
                        height: *h,
                    })
                    .collect();
                model.classify(&planes)?;
            }
            let pure = t0.elapsed().as_secs_f64();

            // The pipeline: ingest, store, queue, analyse, explain.
            let t0 = Instant::now();
            let out = medvision::images::ingest_and_record(
                &conn,
                &img,
                &actor,
                case.id,
                sources,
                tmp.path().join("out"),
                None,
                "import",
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let ingest = t0.elapsed().as_secs_f64();
            let w = Workers::start(svc);
            wait_done(&conn).await;
            let total = t0.elapsed().as_secs_f64();
            w.shutdown().await;
            let stage_ms = |stage: &str| {
                let conn = conn.clone();
                let stage = stage.to_owned();
                async move {
                    use sea_orm::{ConnectionTrait, Statement};
                    conn.query_one(Statement::from_string(
                        conn.get_database_backend(),
                        format!("SELECT CAST(COALESCE(SUM(ms), 0) AS BIGINT) AS n FROM job_stages WHERE stage = '{stage}'"),
                    ))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.try_get::<i64>("", "n").ok())
                    .unwrap_or(0)
                }
            };
            let explain_ms = stage_ms("explaining").await;
            println!(
                "{{\"bench\":\"e2e\",\"backend\":\"{backend}\",\"studies\":{},\"slices\":{},\"size\":{size},\"model\":\"{}\",\"pure_inference_s\":{pure:.3},\"pipeline_s\":{total:.3},\"ingest_s\":{ingest:.3},\"explaining_stage_s_summed\":{:.3},\"studies_per_s\":{:.2},\"ratio\":{:.2}}}",
                out.studies.len(),
                paths.len(),
                pack.manifest.name,
                explain_ms as f64 / 1000.0,
                f64::from(studies) / total,
                total / pure
            );
        }
        other => anyhow::bail!("unknown mode {other}: queue or e2e"),
    }
    Ok(())
}
