//! The analysis pipeline end to end: real uploads, a real (small) model
//! pack, real worker processes killed with SIGKILL, on SQLite and
//! PostgreSQL.

use crate::helpers::{count, hang_guard, settings_for, start, Backend, TestApp};
use crate::on_both;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use inference::arch::densenet::DenseNetConfig;
use inference::pack::{ArchSpec, InputSpec, Manifest, Preprocessing, Task};
use inference::triage::{Threshold, Urgency};
use inference::weights::WeightSource;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A tiny DenseNet for CT/HEAD whose head is biased so that `intraparenchymal` is
/// always positive (STAT) and `calcification` never: the pipeline's
/// plumbing is under test here, not the model's skill.
pub fn tiny_ct_pack(models: &Path) {
    write_tiny_ct_pack(models, false)
}

/// The same pack with a zero classifier weight: every image scores exactly
/// sigmoid(±12) (0.9999939 and 0.0000061), for tests of operating points.
pub fn tiny_ct_pack_constant(models: &Path) {
    write_tiny_ct_pack(models, true)
}

fn write_tiny_ct_pack(models: &Path, constant: bool) {
    let cfg = DenseNetConfig {
        in_channels: 3,
        num_classes: 2,
        growth_rate: 4,
        block_config: vec![1, 1, 1, 1],
        num_init_features: 8,
        bn_size: 2,
    };
    let arch = ArchSpec::Densenet121(cfg);
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    arch.network(vb).unwrap();
    varmap
        .set_one(
            "classifier.bias",
            Tensor::new(&[12f32, -12.0], &Device::Cpu).unwrap(),
        )
        .unwrap();
    if constant {
        let zeros = varmap.data().lock().unwrap()["classifier.weight"]
            .as_tensor()
            .zeros_like()
            .unwrap();
        varmap.set_one("classifier.weight", zeros).unwrap();
    }
    let manifest = Manifest {
        name: "test-ich-tiny".into(),
        version: "0.1.0".into(),
        task: Task::Classification,
        modality: "CT".into(),
        body_part: "HEAD".into(),
        labels: vec!["intraparenchymal".into(), "calcification".into()],
        intended_use: "test model, not for clinical use".into(),
        license: "AGPL-3.0-or-later".into(),
        source: "server/tests/it/pipeline.rs".into(),
        weights: "model.safetensors".into(),
        weights_sha256: String::new(),
        weights_source: WeightSource::Native,
        arch,
        input: InputSpec {
            size: vec![32, 32],
            channels: 3,
            raw_range: [-1100.0, 3100.0],
            min_std: 1.0,
            preprocessing: Preprocessing::CtWindows {
                windows: vec![[40.0, 80.0], [80.0, 200.0], [600.0, 2800.0]],
                mean: 0.3,
                std: 0.35,
            },
        },
        calibration: Vec::new(),
        thresholds: vec![
            Threshold {
                label: "intraparenchymal".into(),
                positive_at: 0.5,
                urgency_if_positive: Urgency::Stat,
            },
            Threshold {
                label: "calcification".into(),
                positive_at: 0.5,
                urgency_if_positive: Urgency::Routine,
            },
        ],
        metrics: Default::default(),
    };
    inference::demo::write_pack(&models.join("test-ich-tiny"), &varmap, manifest).unwrap();
}

/// A tiny SegResNet for MR/BRAIN whose last bias marks every voxel as
/// `whole_tumor` and none as the other regions.
pub fn tiny_mri_pack(models: &Path) {
    use inference::arch::segresnet::{SegResNetConfig, UpsampleMode};
    let cfg = SegResNetConfig {
        in_channels: 4,
        out_channels: 3,
        init_filters: 4,
        blocks_down: vec![1, 1],
        blocks_up: vec![1],
        num_groups: 2,
        upsample_mode: UpsampleMode::Nontrainable,
    };
    let arch = ArchSpec::Segresnet(cfg);
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    arch.network(vb).unwrap();
    varmap
        .set_one(
            "conv_final.2.conv.bias",
            Tensor::new(&[-30f32, 30.0, -30.0], &Device::Cpu).unwrap(),
        )
        .unwrap();
    let manifest = Manifest {
        name: "test-brats-tiny".into(),
        version: "0.2.0".into(),
        task: Task::Segmentation,
        modality: "MR".into(),
        body_part: "BRAIN".into(),
        labels: vec![
            "tumor_core".into(),
            "whole_tumor".into(),
            "enhancing_tumor".into(),
        ],
        intended_use: "test model, not for clinical use".into(),
        license: "AGPL-3.0-or-later".into(),
        source: "server/tests/it/pipeline.rs".into(),
        weights: "model.safetensors".into(),
        weights_sha256: String::new(),
        weights_source: WeightSource::Native,
        arch,
        input: InputSpec {
            size: vec![16, 16, 16],
            channels: 4,
            raw_range: [0.0, 1e6],
            min_std: 0.0,
            preprocessing: Preprocessing::MriZscore {
                sequences: ["t1", "t1ce", "t2", "flair"].map(String::from).to_vec(),
            },
        },
        calibration: Vec::new(),
        thresholds: vec![Threshold {
            label: "whole_tumor".into(),
            positive_at: 0.5,
            urgency_if_positive: Urgency::Urgent,
        }],
        metrics: Default::default(),
    };
    inference::demo::write_pack(&models.join("test-brats-tiny"), &varmap, manifest).unwrap();
}

/// `n` head-CT slices of one phantom study as DICOM files.
pub fn ct_study(dir: &Path, index: u32, slices: u32) -> Vec<PathBuf> {
    use rand::SeedableRng;
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(index));
    let mut out = Vec::new();
    for s in 0..slices {
        let x = inference::phantom::head_ct(&mut rng, 48, 0.5);
        let mut meta = imaging::write::SynthMeta::phantom("HEAD", 7, index);
        meta.sop_uid = format!("{}.{}", meta.sop_uid, s + 1);
        meta.instance_number = s + 1;
        meta.image_position_mm[2] = f64::from(s) * 5.0;
        let p = dir.join(format!("study{index}-slice{s}.dcm"));
        imaging::write::write_ct_dicom(&p, &x.hu, 48, 48, &meta).unwrap();
        out.push(p);
    }
    out
}

fn zip_of(path: &Path, files: &[(String, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    for (name, bytes) in files {
        z.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

pub async fn upload(api: &crate::helpers::Api, case: &str, files: &[PathBuf]) -> Value {
    let mut form = reqwest::multipart::Form::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(f).unwrap()).file_name(name),
        );
    }
    let r = api
        .http
        .post(api.url(&format!("/api/v1/cases/{case}/images")))
        .header("x-csrf-token", &api.csrf)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

/// Polls the case's jobs until none is queued or running, and returns them.
pub async fn settle(api: &crate::helpers::Api, case: &str) -> Vec<Value> {
    settle_n(api, case, 1).await
}

/// The same, once the case has at least `n` jobs.
pub async fn settle_n(api: &crate::helpers::Api, case: &str, n: usize) -> Vec<Value> {
    let mut last = Vec::new();
    let done = hang_guard(async {
        loop {
            let jobs: Vec<Value> = api
                .get(&format!("/api/v1/cases/{case}/jobs"))
                .await
                .json()
                .await
                .unwrap();
            if jobs.len() >= n
                && jobs
                    .iter()
                    .all(|j| !["queued", "running"].contains(&j["state"].as_str().unwrap()))
            {
                return jobs;
            }
            last = jobs;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    done.unwrap_or_else(|| panic!("jobs did not finish: {last:?}"))
}

pub async fn app_with(
    backend: Backend,
    tweak: impl FnOnce(&mut medvision::settings::Settings),
) -> (TestApp, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&backend, tmp.path());
    s.job_poll_ms = 50;
    tiny_ct_pack(&s.models_dir());
    tweak(&mut s);
    let app = start(s).await;
    app.org("Org alpha").await;
    app.user("doctor@alpha.example", "doctor", "Org alpha")
        .await;
    app.user("admin@alpha.example", "admin", "Org alpha").await;
    app.org("Org beta").await;
    app.user("doctor@beta.example", "doctor", "Org beta").await;
    (app, tmp)
}

async fn audit_count(db: &sea_orm::DatabaseConnection, action: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM audit_log WHERE action = '{action}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn upload_is_analysed_end_to_end(backend: Backend) {
    let (app, tmp) = app_with(backend, |_| {}).await;
    let api = app.login("doctor@alpha.example").await;
    let routine = api.create_case("PSEUDO-ROUTINE").await;
    let case = api.create_case("PSEUDO-ICH").await;
    let id = case["id"].as_str().unwrap();
    // Set the second case to routine too: only the AI can raise it.
    for c in [&routine, &case] {
        let r = api
            .patch_json(
                &format!("/api/v1/cases/{}", c["id"].as_str().unwrap()),
                &json!({"urgency": "routine"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    // Live events: subscribe before the upload.
    let events = api
        .http
        .get(api.url(&format!("/api/v1/cases/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert!(events.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    let files = ct_study(&tmp.path().join("in"), 1, 3);
    let out = upload(&api, id, &files).await;
    assert_eq!(out["jobs"].as_array().unwrap().len(), 1);
    let job_id = out["jobs"][0].as_str().unwrap().to_owned();

    // The stream reports the job's stages as they happen, ending completed.
    let mut stream = events.bytes_stream();
    let mut text = String::new();
    use futures_util::StreamExt;
    let completed = hang_guard(async {
        while !text.contains("\"state\":\"completed\"") {
            let Some(chunk) = stream.next().await else {
                return false;
            };
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
        true
    })
    .await;
    assert_eq!(completed, Some(true), "no completion event: {text}");
    assert!(text.contains("event: job"), "{text}");
    assert!(text.contains(&job_id), "{text}");

    let jobs = settle(&api, id).await;
    assert_eq!(jobs.len(), 1);
    let j = &jobs[0];
    for k in ["id", "study_id", "state", "stage", "attempts", "error"] {
        assert!(j.get(k).is_some(), "job lacks {k}: {j}");
    }
    assert_eq!(j["state"], "completed", "{j}");
    assert_eq!(j["stage"], "completed");
    assert_eq!(j["attempts"], 1);
    assert_eq!(j["error"], Value::Null);

    let findings: Vec<Value> = api
        .get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(findings.len(), 2, "{findings:?}");
    for f in &findings {
        for k in [
            "study_id",
            "label",
            "probability",
            "threshold",
            "positive",
            "urgency",
            "model",
            "model_version",
            "heatmap_url",
        ] {
            assert!(f.get(k).is_some(), "finding lacks {k}: {f}");
        }
        assert_eq!(f["model"], "test-ich-tiny");
        assert_eq!(f["model_version"], "0.1.0");
        assert_eq!(f["study_id"], j["study_id"]);
    }
    let bleed = findings
        .iter()
        .find(|f| f["label"] == "intraparenchymal")
        .unwrap();
    assert_eq!(bleed["positive"], true);
    assert_eq!(bleed["urgency"], "stat");
    assert!(bleed["probability"].as_f64().unwrap() > 0.99);
    let calc = findings
        .iter()
        .find(|f| f["label"] == "calcification")
        .unwrap();
    assert_eq!(calc["positive"], false);
    assert!(calc["probability"].as_f64().unwrap() < 0.01);
    assert_eq!(
        calc["heatmap_url"],
        Value::Null,
        "heatmaps only for positives"
    );

    // The heatmap is a PNG of the network's input size.
    let url = bleed["heatmap_url"].as_str().unwrap();
    let r = api.get(url).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    let dec = png::Decoder::new(std::io::Cursor::new(png.to_vec()));
    let info = dec.read_info().unwrap();
    assert_eq!((info.info().width, info.info().height), (32, 32));
    // Another organisation sees neither the case's jobs nor its heatmap.
    let other = app.login("doctor@beta.example").await;
    assert_eq!(other.get(url).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        other
            .get(&format!("/api/v1/cases/{id}/jobs"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other
            .get(&format!("/api/v1/cases/{id}/events"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // The STAT suggestion lifts the case to the top of the worklist while
    // the human urgency stays what the doctor set.
    let list: Value = api.get("/api/v1/cases").await.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items[0]["id"], case["id"], "{list}");
    assert_eq!(items[0]["ai_urgency"], "stat");
    assert_eq!(items[0]["urgency"], "routine");
    assert_eq!(items[1]["id"], routine["id"]);

    // The drafting stage wrote the case's report: the built-in writer (no
    // LLM is configured), labelled, stating the positive finding, citing
    // only passages retrieval returned, with the literature beside it.
    let r = api.get(&format!("/api/v1/cases/{id}/report")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    for k in ["status", "sections", "citations", "writer", "verification"] {
        assert!(report.get(k).is_some(), "report lacks {k}: {report}");
    }
    assert_eq!(report["status"], "draft");
    assert_eq!(report["label"], "AI draft, requires review");
    assert_eq!(report["writer"], "builtin");
    assert_eq!(report["fallback"]["reason"], "not_configured");
    assert_eq!(
        report["demo"], true,
        "the test pack is not for clinical use"
    );
    assert_eq!(report["finding_models"][0]["model"], "test-ich-tiny");
    let findings_text = report["sections"]["findings"]
        .as_str()
        .unwrap()
        .to_lowercase()
        + &report["sections"]["impression"]
            .as_str()
            .unwrap()
            .to_lowercase();
    assert!(
        findings_text.contains("intraparenchymal haemorrhage"),
        "the label is reported in the words radiologists use: {report}"
    );
    let sources = report["sources"].as_array().unwrap();
    if crate::helpers::embedder_available("upload_is_analysed_end_to_end") {
        assert!(!sources.is_empty(), "{report}");
        assert!(
            sources
                .iter()
                .any(|s| s["id"] == "GL:ich-ct-triage" || s["id"] == "GL:acr-head-trauma"),
            "a head-CT haemorrhage retrieves the head guidelines: {sources:?}"
        );
        for s in sources {
            assert!(!s["why_matched"].as_str().unwrap().is_empty(), "{s}");
            assert!(!s["passage"].as_str().unwrap().is_empty(), "{s}");
        }
        let cited = report["citations"].as_array().unwrap();
        assert!(
            !cited.is_empty(),
            "the built-in writer cites the guidelines: {report}"
        );
        for c in cited {
            assert!(
                sources.iter().any(|s| s["id"] == c["id"]),
                "cited {c} was not retrieved"
            );
        }
    } else {
        assert!(sources.is_empty());
        assert!(report["sources_note"]
            .as_str()
            .unwrap()
            .contains("embedding model"));
    }
    assert_eq!(
        other
            .get(&format!("/api/v1/cases/{id}/report"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // A case with no analysis has no report yet.
    let r = api
        .get(&format!(
            "/api/v1/cases/{}/report",
            routine["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The case page shows the draft with its label and the literature.
    let page = api
        .page(&format!("/cases/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("AI draft, requires review"),
        "case page lacks the draft label"
    );
    assert!(page.contains("Literature and guidelines"));

    // Each stage recorded once, one inference audit row, one heatmap, one draft.
    assert_eq!(count(&app.db, "job_stages").await, 5);
    assert_eq!(audit_count(&app.db, "inference.run").await, 1);
    assert_eq!(audit_count(&app.db, "report.drafted").await, 1);
    assert_eq!(count(&app.db, "artefacts").await, 1);
    assert_eq!(count(&app.db, "reports").await, 1);
    // Shutdown ends the open event stream instead of waiting for it.
    app.stop().await;
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "the event stream did not end at shutdown");
}

async fn study_without_a_model_completes_with_a_note(backend: Backend) {
    let (app, tmp) = app_with(backend, |_| {}).await;
    let api = app.login("doctor@alpha.example").await;
    let case = api.create_case("PSEUDO-CXR").await;
    let id = case["id"].as_str().unwrap();
    let p = tmp.path().join("cxr.dcm");
    let meta = imaging::write::SynthMeta::phantom("CHEST", 3, 1);
    imaging::write::write_dx_dicom(&p, &vec![0.5f32; 64 * 64], 64, 64, &meta).unwrap();
    upload(&api, id, &[p]).await;
    let jobs = settle(&api, id).await;
    assert_eq!(jobs[0]["state"], "completed", "{jobs:?}");
    assert_eq!(jobs[0]["note"], "no model for DX/CHEST installed");
    let findings: Vec<Value> = api
        .get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap();
    assert!(findings.is_empty());
    app.stop().await;
}

async fn batch_with_a_corrupt_file_completes_the_rest(backend: Backend) {
    let (app, tmp) = app_with(backend, |_| {}).await;
    let api = app.login("doctor@alpha.example").await;
    let case = api.create_case("PSEUDO-BATCH").await;
    let id = case["id"].as_str().unwrap();
    let mut entries = Vec::new();
    for s in 0..3 {
        for f in ct_study(&tmp.path().join(format!("s{s}")), 10 + s, 2) {
            let name = format!(
                "batch/study{s}/{}",
                f.file_name().unwrap().to_string_lossy()
            );
            entries.push((name, std::fs::read(&f).unwrap()));
        }
    }
    // A DICOM file cut off in the middle of its header.
    let mut broken = entries[0].1.clone();
    broken.truncate(300);
    entries.push(("batch/broken/cut.dcm".into(), broken));
    let zip = tmp.path().join("batch.zip");
    zip_of(&zip, &entries);
    let out = upload(&api, id, &[zip]).await;
    assert_eq!(out["jobs"].as_array().unwrap().len(), 3, "{out}");
    let batch_id = out["batch_id"].as_str().unwrap();
    settle(&api, id).await;
    let b: Value = api
        .get(&format!("/api/v1/batches/{batch_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["counts"]["completed"], 3, "{b}");
    assert_eq!(b["counts"]["rejected"], 1, "{b}");
    assert_eq!(b["counts"]["failed"], 0, "{b}");
    let rejected = &b["rejected"][0];
    assert!(
        rejected["file"].as_str().unwrap().contains("cut.dcm"),
        "{b}"
    );
    assert!(!rejected["reason"].as_str().unwrap().is_empty());
    assert!(b["per_minute"].as_f64().unwrap() > 0.0);
    // The batch page shows both.
    let page = api.page(&format!("/batches/{batch_id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("cut.dcm"), "the refused file is listed");
    assert!(html.contains("completed"), "the studies' states are listed");
    app.stop().await;
}

async fn cancelling_a_batch_keeps_finished_results(backend: Backend) {
    let (app, tmp) = app_with(backend, |s| {
        s.worker_concurrency = 1;
        s.job_stage_delay_ms = 150;
    })
    .await;
    let api = app.login("doctor@alpha.example").await;
    let case = api.create_case("PSEUDO-CANCEL").await;
    let id = case["id"].as_str().unwrap();
    let mut files = Vec::new();
    for s in 0..5 {
        files.extend(ct_study(&tmp.path().join(format!("c{s}")), 20 + s, 1));
    }
    let out = upload(&api, id, &files).await;
    let batch_id = out["batch_id"].as_str().unwrap().to_owned();
    // Wait for the first study to finish, then cancel.
    let first_done = hang_guard(async {
        loop {
            let b: Value = api
                .get(&format!("/api/v1/batches/{batch_id}"))
                .await
                .json()
                .await
                .unwrap();
            if b["counts"]["completed"].as_u64().unwrap() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(first_done.is_some(), "no study of the batch finished");
    let r = api
        .post_json(&format!("/api/v1/batches/{batch_id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["cancelled"], true);
    let done = b["counts"]["completed"].as_u64().unwrap();
    assert!((1..5).contains(&done), "{b}");
    assert_eq!(b["counts"]["queued"], 0);
    assert_eq!(b["counts"]["running"], 0);
    // Give a worker in the middle of a job the time to try to commit: it
    // must find its lease gone and discard the work.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after: Value = api
        .get(&format!("/api/v1/batches/{batch_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["counts"]["completed"].as_u64().unwrap(),
        done,
        "{after}"
    );
    assert_eq!(after["counts"]["cancelled"].as_u64().unwrap(), 5 - done);
    let findings: Vec<Value> = api
        .get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(findings.len() as u64, 2 * done, "completed results stay");
    assert_eq!(audit_count(&app.db, "inference.run").await as u64, done);

    // Retry brings the cancelled ones back.
    let r = api
        .post_json(&format!("/api/v1/batches/{batch_id}/retry"), &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    settle(&api, id).await;
    let b: Value = api
        .get(&format!("/api/v1/batches/{batch_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(b["counts"]["completed"], 5, "{b}");
    assert_eq!(audit_count(&app.db, "inference.run").await, 5);
    app.stop().await;
}

async fn transient_failures_retry_then_dead_letter(backend: Backend) {
    let (app, tmp) = app_with(backend, |s| s.embedded_workers = false).await;
    let api = app.login("doctor@alpha.example").await;
    let case = api.create_case("PSEUDO-RETRY").await;
    let id = case["id"].as_str().unwrap();
    let files = ct_study(&tmp.path().join("r"), 30, 1);
    upload(&api, id, &files).await;
    // The image store loses the image, as when an object store is down:
    // every attempt fails to read it.
    let blobs = app.settings.data_dir.join("blobs");
    let moved = tmp.path().join("moved-blobs");
    std::fs::rename(&blobs, &moved).unwrap();
    let fast = [
        ("MEDVISION_JOB_RETRY_INITIAL_MS", "20".to_owned()),
        ("MEDVISION_JOB_RETRY_CAP_MS", "100".to_owned()),
    ];
    let mut w = worker(&app.settings, &fast);
    let jobs = settle(&api, id).await;
    assert_eq!(jobs[0]["state"], "failed", "{jobs:?}");
    assert_eq!(jobs[0]["attempts"], 3);
    assert_eq!(jobs[0]["stage"], "decoding");
    assert_eq!(jobs[0]["error"], "the image store was unavailable");

    let admin = app.login("admin@alpha.example").await;
    let dead: Vec<Value> = admin
        .get("/api/v1/admin/jobs/failed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"], jobs[0]["id"]);
    assert_eq!(
        api.get("/api/v1/admin/jobs/failed").await.status(),
        StatusCode::FORBIDDEN
    );
    // The store is back; the admin re-runs the dead letter.
    let _ = std::fs::remove_dir(&blobs);
    std::fs::rename(&moved, &blobs).unwrap();
    let r = admin
        .post_json(
            &format!(
                "/api/v1/admin/jobs/{}/retry",
                jobs[0]["id"].as_str().unwrap()
            ),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let jobs = settle(&api, id).await;
    assert_eq!(jobs[0]["state"], "completed", "{jobs:?}");
    assert_eq!(audit_count(&app.db, "job.retry").await, 1);
    assert_eq!(audit_count(&app.db, "inference.run").await, 1);
    w.kill().unwrap();
    w.wait().unwrap();
    app.stop().await;
}

async fn mr_case(api: &crate::helpers::Api, patient: &str) -> Value {
    let r = api
        .post_json(
            "/api/v1/cases",
            &json!({ "patient_ref": patient, "age": 40, "sex": "M", "modality": "MR", "body_part": "brain", "urgency": "routine", "history": "seizure" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn mri_sequences_are_segmented(backend: Backend) {
    use rand::SeedableRng;
    let (app, tmp) = app_with(backend, |s| tiny_mri_pack(&s.models_dir())).await;
    let api = app.login("doctor@alpha.example").await;
    let case = mr_case(&api, "PSEUDO-MRI").await;
    let id = case["id"].as_str().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let m = inference::phantom::brain_mri(&mut rng, 16);
    let mut files = Vec::new();
    // BraTS file naming, in an order that is not the model's.
    for (k, seq) in ["t1", "t1ce", "t2", "flair"].iter().enumerate().rev() {
        let p = tmp.path().join(format!("BraTS-TEST-00001_{seq}.nii.gz"));
        imaging::write::write_nifti(&p, &m.channels[k], [16, 16, 16], [1.0, 1.0, 1.0]).unwrap();
        files.push(p);
    }
    upload(&api, id, &files).await;
    let jobs = settle(&api, id).await;
    assert_eq!(jobs.len(), 1, "one study of four sequences: {jobs:?}");
    assert_eq!(jobs[0]["state"], "completed", "{jobs:?}");
    let findings: Vec<Value> = api
        .get(&format!("/api/v1/cases/{id}/findings"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(findings.len(), 3, "{findings:?}");
    let wt = findings
        .iter()
        .find(|f| f["label"] == "whole_tumor")
        .unwrap();
    assert_eq!(wt["kind"], "segmentation");
    assert_eq!(wt["positive"], true);
    assert_eq!(wt["urgency"], "urgent");
    // Every voxel of 16³ at 1 mm: 4.096 mL.
    assert!(
        (wt["volume_ml"].as_f64().unwrap() - 4.096).abs() < 1e-6,
        "{wt}"
    );
    let mask = api.get(wt["heatmap_url"].as_str().unwrap()).await;
    assert_eq!(mask.status(), StatusCode::OK);
    let core = findings
        .iter()
        .find(|f| f["label"] == "tumor_core")
        .unwrap();
    assert_eq!(core["positive"], false);
    assert_eq!(core["volume_ml"].as_f64().unwrap(), 0.0);
    app.stop().await;
}

async fn mri_with_a_missing_sequence_fails_with_the_reason(backend: Backend) {
    use rand::SeedableRng;
    let (app, tmp) = app_with(backend, |s| tiny_mri_pack(&s.models_dir())).await;
    let api = app.login("doctor@alpha.example").await;
    let case = mr_case(&api, "PSEUDO-MRI3").await;
    let id = case["id"].as_str().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let m = inference::phantom::brain_mri(&mut rng, 16);
    let mut files = Vec::new();
    for (k, seq) in ["t1", "t2", "flair"].iter().enumerate() {
        let p = tmp.path().join(format!("BraTS-TEST-00002_{seq}.nii.gz"));
        imaging::write::write_nifti(&p, &m.channels[k], [16, 16, 16], [1.0, 1.0, 1.0]).unwrap();
        files.push(p);
    }
    upload(&api, id, &files).await;
    let jobs = settle(&api, id).await;
    assert_eq!(jobs[0]["state"], "failed", "{jobs:?}");
    assert_eq!(jobs[0]["stage"], "decoding");
    assert_eq!(jobs[0]["attempts"], 1, "a permanent failure is not retried");
    let err = jobs[0]["error"].as_str().unwrap();
    assert!(err.contains("t1ce"), "names the missing sequence: {err}");
    app.stop().await;
}

on_both!(
    mri_sequences_are_segmented,
    mri_with_a_missing_sequence_fails_with_the_reason,
    upload_is_analysed_end_to_end,
    study_without_a_model_completes_with_a_note,
    batch_with_a_corrupt_file_completes_the_rest,
    cancelling_a_batch_keeps_finished_results,
    transient_failures_retry_then_dead_letter,
);

// ---- real worker processes ------------------------------------------------

fn worker(settings: &medvision::settings::Settings, env: &[(&str, String)]) -> Child {
    use secrecy::ExposeSecret;
    let mut c = Command::new(env!("CARGO_BIN_EXE_medvision"));
    c.arg("worker")
        .env("MEDVISION_DATA_DIR", &settings.data_dir)
        .env("MEDVISION_JOB_POLL_MS", "50")
        .env("MEDVISION_LOG_FORMAT", "json")
        .env_remove("MEDVISION_MODELS_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match &settings.database_url {
        Some(u) => {
            c.env("DATABASE_URL", u.expose_secret());
        }
        None => {
            c.env_remove("DATABASE_URL");
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

async fn job_row(db: &sea_orm::DatabaseConnection, id: uuid::Uuid) -> entity::job::Model {
    use sea_orm::EntityTrait;
    entity::job::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
}

async fn rows_for_job(db: &sea_orm::DatabaseConnection, table: &str, job: uuid::Uuid) -> u64 {
    use entity::{artefact, audit_log, finding, job_stage};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    match table {
        "job_stages" => {
            job_stage::Entity::find()
                .filter(job_stage::Column::JobId.eq(job))
                .count(db)
                .await
        }
        "findings" => {
            finding::Entity::find()
                .filter(finding::Column::JobId.eq(job))
                .count(db)
                .await
        }
        "artefacts" => {
            artefact::Entity::find()
                .filter(artefact::Column::JobId.eq(job))
                .count(db)
                .await
        }
        _ => {
            audit_log::Entity::find()
                .filter(audit_log::Column::Action.eq("inference.run"))
                .filter(audit_log::Column::Details.contains(job.to_string()))
                .count(db)
                .await
        }
    }
    .unwrap()
}

/// SIGKILL a worker process in the middle of each stage in turn; a fresh
/// worker finishes the job, and no stage's effect happens twice.
async fn killed_worker_resumes_exactly_once(backend: Backend) {
    let (app, tmp) = app_with(backend, |s| s.embedded_workers = false).await;
    let api = app.login("doctor@alpha.example").await;
    let case = api.create_case("PSEUDO-KILL").await;
    let id = case["id"].as_str().unwrap();
    for (n, stage) in [
        "decoding",
        "analysing",
        "explaining",
        "retrieving",
        "drafting",
    ]
    .iter()
    .enumerate()
    {
        let files = ct_study(&tmp.path().join(format!("k{n}")), 40 + n as u32, 2);
        let out = upload(&api, id, &files).await;
        let job: uuid::Uuid = out["jobs"][0].as_str().unwrap().parse().unwrap();
        let slow = [
            ("MEDVISION_JOB_STAGE_DELAY_MS", "1500".to_owned()),
            ("MEDVISION_JOB_LEASE_SECS", "2".to_owned()),
        ];
        let mut w = worker(&app.settings, &slow);
        let reached = hang_guard(async {
            loop {
                let j = job_row(&app.db, job).await;
                if j.stage == *stage && j.state == "running" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            reached.is_some(),
            "never reached {stage}: {:?}",
            job_row(&app.db, job).await
        );
        // Inside the stage's hold, before its commit.
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.kill().unwrap();
        w.wait().unwrap();
        let mut fresh = worker(
            &app.settings,
            &[("MEDVISION_JOB_LEASE_SECS", "2".to_owned())],
        );
        let j = hang_guard(async {
            loop {
                let j = job_row(&app.db, job).await;
                if j.state != "running" && j.state != "queued" {
                    break j;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let j = match j {
            Some(j) => j,
            None => panic!(
                "not finished after the kill in {stage}: {:?}",
                job_row(&app.db, job).await
            ),
        };
        fresh.kill().unwrap();
        fresh.wait().unwrap();
        assert_eq!(j.state, "completed", "killed in {stage}: {j:?}");
        assert_eq!(
            j.attempts, 2,
            "killed in {stage}: one attempt died, one finished"
        );
        assert_eq!(
            rows_for_job(&app.db, "job_stages", job).await,
            5,
            "killed in {stage}"
        );
        assert_eq!(
            rows_for_job(&app.db, "findings", job).await,
            2,
            "killed in {stage}"
        );
        assert_eq!(
            rows_for_job(&app.db, "artefacts", job).await,
            1,
            "killed in {stage}"
        );
        assert_eq!(
            rows_for_job(&app.db, "audit_log", job).await,
            1,
            "killed in {stage}"
        );
    }
    // No upload lost: every study has a completed job. Each job drafted
    // the case's one report exactly once.
    assert_eq!(count(&app.db, "studies").await, 5);
    assert_eq!(audit_count(&app.db, "inference.run").await, 5);
    assert_eq!(audit_count(&app.db, "report.drafted").await, 5);
    assert_eq!(count(&app.db, "reports").await, 1);
    app.stop().await;
}

/// Several worker processes share the queue: each of many jobs runs once.
async fn many_workers_run_each_job_once(backend: Backend) {
    let pg = matches!(backend, Backend::Postgres(_));
    let (app, _tmp) = app_with(backend, |s| s.embedded_workers = false).await;
    let api = app.login("doctor@alpha.example").await;
    let case = api.create_case("PSEUDO-LOAD").await;
    let case_id: uuid::Uuid = case["id"].as_str().unwrap().parse().unwrap();
    let org: uuid::Uuid = {
        use sea_orm::EntityTrait;
        entity::case::Entity::find_by_id(case_id)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap()
            .org_id
    };
    let rounds: &[(usize, usize)] = if pg {
        &[(2, 500), (4, 500)]
    } else {
        &[(2, 200)]
    };
    let mut total = 0i64;
    for &(processes, jobs) in rounds {
        for _ in 0..jobs {
            app::pipeline::ssr::insert_job(&app.db, org, case_id, None, None, "noop", 3)
                .await
                .unwrap();
        }
        total += jobs as i64;
        let mut ws: Vec<Child> = (0..processes)
            .map(|_| {
                worker(
                    &app.settings,
                    &[("MEDVISION_WORKER_CONCURRENCY", "4".to_owned())],
                )
            })
            .collect();
        let left_sql = "SELECT COUNT(*) AS n FROM jobs WHERE state <> 'completed'";
        let all_done = hang_guard(async {
            while app_count(&app.db, left_sql).await > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        assert!(
            all_done.is_some(),
            "{} jobs left with {processes} workers",
            app_count(&app.db, left_sql).await
        );
        for w in ws.iter_mut() {
            w.kill().unwrap();
            w.wait().unwrap();
        }
        assert_eq!(count(&app.db, "job_stages").await, total);
        assert_eq!(
            audit_count(&app.db, "job.noop").await,
            total,
            "{processes} workers"
        );
        let distinct = app_count(
            &app.db,
            "SELECT COUNT(DISTINCT target_id) AS n FROM audit_log WHERE action = 'job.noop'",
        )
        .await;
        assert_eq!(distinct, total);
        let twice = app_count(
            &app.db,
            "SELECT COUNT(*) AS n FROM jobs WHERE attempts <> 1",
        )
        .await;
        assert_eq!(twice, 0, "no job was claimed twice");
    }
    app.stop().await;
}

async fn app_count(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    db.query_one(Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get::<i64>("", "n")
    .unwrap()
}

on_both!(
    killed_worker_resumes_exactly_once,
    many_workers_run_each_job_once
);

/// Images queued together by concurrent callers run as full batches: eight
/// images with room for three per batch make batches of 3, 3 and 2, and
/// every caller gets its own scores back.
#[tokio::test]
async fn micro_batcher_fills_batches_across_requests() {
    use medvision::pipeline::batcher::{Batcher, Image};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    tiny_ct_pack(tmp.path());
    let reg = inference::registry::Registry::scan(tmp.path(), Device::Cpu).unwrap();
    let model = reg.load("test-ich-tiny").unwrap();
    let b = Batcher::spawn(model, 3, Duration::from_secs(2)).unwrap();
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let pending: Vec<_> = (0..8)
        .map(|_| {
            let x = inference::phantom::head_ct(&mut rng, 48, 0.5);
            b.classify(Arc::new(Image {
                values: x.hu,
                width: 48,
                height: 48,
            }))
        })
        .collect();
    let mut results = Vec::new();
    for p in pending {
        results.push(p.await.unwrap());
    }
    assert_eq!(results.len(), 8);
    for r in &results {
        assert_eq!(r.len(), 2, "two labels per image");
    }
    assert_eq!(b.stats(), (3, 8, 3));
}
