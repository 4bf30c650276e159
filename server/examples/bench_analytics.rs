//! Dashboard query benchmark (see bench/analytics.sh): seeds `FINDINGS`
//! findings (default 100,000) over `CASES` cases with a third of them
//! confirmed by a radiologist, then times the organisation dashboard
//! (`app::analytics::ssr::dashboard`) `RUNS` times; prints p50 and p99.
//!
//! Environment: `DATABASE_URL` (default: a SQLite file in a temp dir).

use chrono::Utc;
use sea_orm::{ActiveValue::Set, EntityTrait, TransactionTrait};
use std::time::Instant;
use uuid::Uuid;

fn env<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let mut settings = medvision::settings::Settings {
        data_dir: tmp.path().join("data"),
        bootstrap_demo: false,
        ..Default::default()
    };
    if let Ok(u) = std::env::var("DATABASE_URL").map(|u| u.trim().to_owned()) {
        if !u.is_empty() {
            settings.database_url = Some(u.into());
        }
    }
    let (n_findings, n_cases, runs): (usize, usize, usize) = (
        env("FINDINGS", 100_000),
        env("CASES", 2_000),
        env("RUNS", 20),
    );
    let db = medvision::db::connect(&settings).await?;
    medvision::db::migrate(&db).await?;
    let conn = db.conn.clone();
    use app::admin::ssr as admin;
    let e = |e: app::error::AppError| anyhow::anyhow!("{e}");
    admin::add_org(&conn, "Bench").await.map_err(e)?;
    let a = admin::add_user(
        &conn,
        "admin@bench.example",
        None,
        "correct horse battery staple",
        "admin",
        "Bench",
        false,
    )
    .await
    .map_err(e)?;
    let r = admin::add_user(
        &conn,
        "rad@bench.example",
        None,
        "correct horse battery staple",
        "radiologist",
        "Bench",
        false,
    )
    .await
    .map_err(e)?;
    let actor = app::auth::ssr::actor_for_user(&conn, a.id)
        .await
        .map_err(e)?
        .ok_or_else(|| anyhow::anyhow!("no actor"))?;
    let org = actor.org_id;

    let t0 = Instant::now();
    let sexes = ["F", "M", "O", "U"];
    let urg = ["routine", "priority", "urgent", "stat"];
    let mut cases = Vec::with_capacity(n_cases);
    let txn = conn.begin().await?;
    for k in 0..n_cases {
        let id = Uuid::new_v4();
        let now = Utc::now() - chrono::Duration::hours((k % 2000) as i64);
        entity::case::Entity::insert(entity::case::ActiveModel {
            id: Set(id),
            org_id: Set(org),
            owner_id: Set(a.id),
            patient_ref: Set(format!("BENCH-{k}")),
            age: Set(Some((k % 95) as i32)),
            sex: Set(sexes[k % 4].into()),
            modality: Set("CT".into()),
            body_part: Set("head".into()),
            urgency: Set(urg[k % 4].into()),
            urgency_rank: Set((k % 4) as i16),
            ai_urgency: Set(None),
            history: Set(String::new()),
            status: Set("open".into()),
            created_at: Set(now),
            updated_at: Set(now),
            closed_at: Set(None),
        })
        .exec(&txn)
        .await?;
        cases.push(id);
    }
    // One analysis (job, study) per six findings: a job has one finding per label.
    let mut jobs = Vec::new();
    for k in 0..n_findings.div_ceil(6) {
        let case_id = cases[k % n_cases];
        let job = app::pipeline::ssr::insert_job(&txn, org, case_id, None, None, "analyse", 3)
            .await
            .map_err(e)?;
        jobs.push((case_id, job, Uuid::new_v4()));
    }
    txn.commit().await?;
    let labels = [
        "any",
        "epidural",
        "intraparenchymal",
        "intraventricular",
        "subarachnoid",
        "subdural",
    ];
    let mut rng_state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        (rng_state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut done = 0;
    while done < n_findings {
        let txn = conn.begin().await?;
        let chunk = (n_findings - done).min(1000);
        let mut fs = Vec::with_capacity(chunk);
        let mut rs = Vec::new();
        for i in 0..chunk {
            let (case_id, job, study) = jobs[(done + i) / 6];
            let p = rnd();
            let truth = rnd() < p;
            let id = Uuid::new_v4();
            fs.push(entity::finding::ActiveModel {
                id: Set(id),
                org_id: Set(org),
                case_id: Set(case_id),
                study_id: Set(study),
                job_id: Set(job),
                kind: Set("classification".into()),
                label: Set(labels[(done + i) % labels.len()].into()),
                probability: Set(p),
                raw_probability: Set(Some(p)),
                threshold: Set(0.5),
                positive: Set(p >= 0.5),
                urgency: Set("routine".into()),
                model: Set("demo-ich".into()),
                model_version: Set("1.0.0".into()),
                intended_use: Set("bench".into()),
                volume_ml: Set(None),
                created_at: Set(Utc::now()),
            });
            if (done + i) % 3 == 0 {
                rs.push(entity::finding_review::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    org_id: Set(org),
                    case_id: Set(case_id),
                    finding_id: Set(Some(id)),
                    study_id: Set(Some(study)),
                    decision: Set("accepted".into()),
                    label: Set(labels[(done + i) % labels.len()].into()),
                    present: Set(truth),
                    location: Set(None),
                    reason: Set(None),
                    reviewer_id: Set(r.id),
                    created_at: Set(Utc::now()),
                });
            }
        }
        entity::finding::Entity::insert_many(fs).exec(&txn).await?;
        if !rs.is_empty() {
            entity::finding_review::Entity::insert_many(rs)
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        done += chunk;
    }
    eprintln!(
        "seeded {n_findings} findings over {n_cases} cases in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let mut ms = Vec::with_capacity(runs);
    let mut perf_rows = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let d = app::analytics::ssr::dashboard(&conn, &actor, true, "week")
            .await
            .map_err(e)?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        perf_rows = d.performance.len();
        assert_eq!(d.totals.findings as usize, n_findings);
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{{\"backend\": \"{}\", \"findings\": {n_findings}, \"runs\": {runs}, \"p50_ms\": {:.1}, \"p99_ms\": {:.1}, \"performance_rows\": {perf_rows}}}",
        if settings.is_postgres() { "postgres" } else { "sqlite" },
        q(0.5),
        q(0.99)
    );
    Ok(())
}
