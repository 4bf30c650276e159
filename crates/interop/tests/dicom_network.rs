//! The SCP and SCU against real peers: Debian's dcmtk (`echoscu`,
//! `storescu`, `storescp`, `dsrdump`, `dcmdump`) and each other, over
//! loopback, plus hostile peers speaking raw PDUs.

use interop::scp::{Gate, Scp, ScpConfig};
use interop::scu::{self, Node};
use interop::spool::Spool;
use interop::sr::{Finding, SeriesRef, SrDocument, Verifier};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Allow;
impl Gate for Allow {
    fn tenant(&self, calling_ae: &str) -> Option<String> {
        (calling_ae == "MODALITY1" || calling_ae == "MEDVISION_SCU").then(|| "org-1".to_owned())
    }
}

/// dcmtk is installed by `scripts/setup.sh --test`; CI sets
/// MEDVISION_REQUIRE_DCMTK so a missing peer fails instead of skipping.
fn dcmtk() -> bool {
    let ok = Command::new("echoscu").arg("--version").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("MEDVISION_REQUIRE_DCMTK").is_none(),
            "dcmtk is required (MEDVISION_REQUIRE_DCMTK) but echoscu is not on PATH"
        );
        eprintln!("*** SKIPPED: dcmtk (echoscu, storescu) is not installed ***");
    }
    ok
}

fn pydicom_dir() -> Option<PathBuf> {
    let base = std::env::var_os("MEDVISION_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/medvision/fixtures")
        });
    let d = base.join("pydicom-3.0.2/pydicom/data/test_files");
    d.is_dir().then_some(d)
}

struct Running {
    port: u16,
    scp: Arc<Scp>,
    spool: Arc<Spool>,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn start(cfg: ScpConfig) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = Arc::new(Spool::open(dir.path().join("spool")).expect("spool"));
    let scp = Arc::new(Scp::new(cfg, Arc::new(Allow), spool.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(scp.clone().serve(listener, rx));
    Running {
        port,
        scp,
        spool,
        _stop: tx,
        _dir: dir,
    }
}

async fn run(cmd: &str, args: Vec<String>) -> std::process::Output {
    let cmd = cmd.to_owned();
    tokio::task::spawn_blocking(move || Command::new(&cmd).args(&args).output().expect("run"))
        .await
        .expect("join")
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Bounds every network wait: a hang fails the test instead of stalling CI.
async fn guard<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("the exchange hung")
}

fn synthetic_ct(dir: &Path, n: u32) -> Vec<PathBuf> {
    let base = imaging::write::SynthMeta::phantom("HEAD", 7, 1);
    let hu: Vec<f32> = (0..64 * 64)
        .map(|i| (i % 64) as f32 * 10.0 - 300.0)
        .collect();
    (1..=n)
        .map(|i| {
            let p = dir.join(format!("ct{i:04}.dcm"));
            imaging::write::write_ct_dicom(&p, &hu, 64, 64, &base.slice(i, f64::from(i)))
                .expect("write CT");
            p
        })
        .collect()
}

fn ul(ae: &str) -> String {
    ae.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoscu_is_answered_and_an_unknown_calling_ae_title_is_rejected() {
    if !dcmtk() {
        return;
    }
    let s = start(ScpConfig::default()).await;
    let port = s.port.to_string();
    let ok = guard(run(
        "echoscu",
        args(&["-aet", "MODALITY1", "-aec", "MEDVISION", "127.0.0.1", &port]),
    ))
    .await;
    assert!(
        ok.status.success(),
        "echoscu: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(s.scp.stats.echoes.load(Ordering::Relaxed), 1);

    let bad = guard(run(
        "echoscu",
        args(&["-aet", "STRANGER", "-aec", "MEDVISION", "127.0.0.1", &port]),
    ))
    .await;
    assert!(
        !bad.status.success(),
        "an unknown calling AE title must be rejected"
    );
    let err = String::from_utf8_lossy(&bad.stderr).to_lowercase();
    assert!(err.contains("calling ae title not recognized"), "{err}");

    let wrong_called = guard(run(
        "echoscu",
        args(&["-aet", "MODALITY1", "-aec", "OTHER", "127.0.0.1", &port]),
    ))
    .await;
    assert!(
        !wrong_called.status.success(),
        "a wrong called AE title must be rejected"
    );
    assert_eq!(s.scp.stats.echoes.load(Ordering::Relaxed), 1);
    assert!(s.scp.stats.rejected.load(Ordering::Relaxed) >= 2);

    // Our own SCU agrees.
    let node = Node {
        host: "127.0.0.1".into(),
        port: s.port,
        ae_title: ul("MEDVISION"),
    };
    guard(scu::echo(&node, "MEDVISION_SCU", Duration::from_secs(10)))
        .await
        .expect("echo");
    assert!(guard(scu::echo(&node, "NOBODY", Duration::from_secs(10)))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storescu_sends_a_200_slice_series_and_pydicom_files_into_one_spool_folder_per_study() {
    if !dcmtk() {
        return;
    }
    let s = start(ScpConfig::default()).await;
    let port = s.port.to_string();
    let work = tempfile::tempdir().expect("tempdir");
    let ct = synthetic_ct(work.path(), 200);
    let mut a = args(&[
        "-R",
        "-aet",
        "MODALITY1",
        "-aec",
        "MEDVISION",
        "127.0.0.1",
        &port,
    ]);
    a.extend(ct.iter().map(|p| p.display().to_string()));
    let out = guard(run("storescu", a)).await;
    assert!(
        out.status.success(),
        "storescu: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.scp.stats.stored.load(Ordering::Relaxed), 200);

    // Files of several transfer syntaxes (compressed ones keep theirs).
    let mut sent_pydicom = 0;
    let mut distinct_pydicom = 0;
    if let Some(d) = pydicom_dir() {
        // (file, storescu's option proposing its transfer syntax as it is)
        let names = [
            ("CT_small.dcm", "-xe"),
            ("MR_small.dcm", "-xe"),
            ("MR_small_RLE.dcm", "-xr"),
            ("MR_small_jp2klossless.dcm", "-xv"),
            ("MR_small_jpeg_ls_lossless.dcm", "-xt"),
            ("JPEG2000.dcm", "-xw"),
            ("SC_rgb_jpeg_dcmtk.dcm", "-xy"),
            ("JPGExtended.dcm", "-xx"),
        ];
        // One association per file, proposing exactly the file's own
        // transfer syntax: each must be accepted as it is, not converted.
        for (n, ts) in names {
            let mut a = args(&[
                "-R",
                ts,
                "-aet",
                "MODALITY1",
                "-aec",
                "MEDVISION",
                "127.0.0.1",
                &port,
            ]);
            a.push(d.join(n).display().to_string());
            let out = guard(run("storescu", a)).await;
            assert!(
                out.status.success(),
                "storescu {n}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        sent_pydicom = names.len();
        distinct_pydicom = names
            .iter()
            .map(|(n, _)| {
                let o = dicom_object::open_file(d.join(n)).expect("pydicom file");
                o.meta().media_storage_sop_instance_uid().to_owned()
            })
            .collect::<std::collections::HashSet<_>>()
            .len();
    } else {
        eprintln!("*** pydicom's files are absent (scripts/fixtures.sh): sent only the synthetic series ***");
    }
    assert_eq!(
        s.scp.stats.stored.load(Ordering::Relaxed),
        200 + sent_pydicom as u64
    );

    // Nothing is handed over while the studies are still "busy".
    assert!(s
        .spool
        .claim_quiet(Duration::from_secs(3600))
        .expect("claim")
        .is_empty());
    let claimed = s.spool.claim_quiet(Duration::ZERO).expect("claim");
    let total: usize = claimed.iter().map(|c| c.files.len()).sum();
    // The MR_small variants are one SOP instance in several transfer
    // syntaxes: a re-sent instance replaces the earlier copy.
    assert_eq!(total, 200 + distinct_pydicom);
    let series = claimed
        .iter()
        .find(|c| c.files.len() == 200)
        .expect("the CT study in one folder");
    assert_eq!(series.origin, "MODALITY1");
    assert_eq!(series.tenant, "org-1");
    // Every stored file is a readable Part 10 file with its own SOP instance.
    let mut uids = std::collections::HashSet::new();
    for f in &series.files {
        let o = dicom_object::open_file(f).expect("part 10");
        uids.insert(o.meta().media_storage_sop_instance_uid().to_owned());
        assert!(
            f.file_name().expect("name").to_string_lossy().len() == 36,
            "hashed names only"
        );
    }
    assert_eq!(uids.len(), 200);
    // Pixel data arrived intact.
    let sent = dicom_object::open_file(&ct[41]).expect("sent");
    let uid = sent.meta().media_storage_sop_instance_uid().to_owned();
    let got = series
        .files
        .iter()
        .map(|f| dicom_object::open_file(f).expect("open"))
        .find(|o| o.meta().media_storage_sop_instance_uid() == uid)
        .expect("instance 42");
    let px = |o: &dicom_object::DefaultDicomObject| {
        o.element(dicom_dictionary_std::tags::PIXEL_DATA)
            .expect("pixels")
            .to_bytes()
            .expect("bytes")
            .to_vec()
    };
    assert_eq!(px(&sent), px(&got));
    for c in claimed {
        c.finish().expect("finish");
    }
    assert!(s.spool.abandoned().expect("abandoned").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_survives_a_crash_and_instances_arriving_during_a_handover_start_a_new_folder() {
    let s = start(ScpConfig::default()).await;
    let work = tempfile::tempdir().expect("tempdir");
    let ct = synthetic_ct(work.path(), 3);
    let node = Node {
        host: "127.0.0.1".into(),
        port: s.port,
        ae_title: ul("MEDVISION"),
    };
    let sent = guard(scu::store(
        &node,
        "MEDVISION_SCU",
        &ct[..2],
        Duration::from_secs(10),
    ))
    .await
    .expect("store");
    assert!(sent.iter().all(|x| x.ok()), "{sent:?}");
    let first = s.spool.claim_quiet(Duration::ZERO).expect("claim");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].files.len(), 2);
    // The third slice arrives while the first two are being handed over.
    let sent = guard(scu::store(
        &node,
        "MEDVISION_SCU",
        &ct[2..],
        Duration::from_secs(10),
    ))
    .await
    .expect("store");
    assert!(sent[0].ok());
    // A process that restarts now finds the interrupted handover.
    let reopened = Spool::open(s.spool.root()).expect("reopen");
    let abandoned = reopened.abandoned().expect("abandoned");
    assert_eq!(abandoned.len(), 1);
    assert_eq!(abandoned[0].study_key, first[0].study_key);
    let second = reopened.claim_quiet(Duration::ZERO).expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].files.len(), 1);
    assert_eq!(
        second[0].study_key, first[0].study_key,
        "same study, same key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_over_the_size_limit_or_not_what_was_announced_are_refused_with_a_status() {
    let s = start(ScpConfig {
        max_instance_bytes: 4096,
        ..ScpConfig::default()
    })
    .await;
    let work = tempfile::tempdir().expect("tempdir");
    let ct = synthetic_ct(work.path(), 1);
    let node = Node {
        host: "127.0.0.1".into(),
        port: s.port,
        ae_title: ul("MEDVISION"),
    };
    let sent = guard(scu::store(
        &node,
        "MEDVISION_SCU",
        &ct,
        Duration::from_secs(10),
    ))
    .await
    .expect("store");
    assert_eq!(sent[0].status, 0xA700, "out of resources");
    assert_eq!(s.scp.stats.failed.load(Ordering::Relaxed), 1);
    assert!(
        s.spool
            .claim_quiet(Duration::ZERO)
            .expect("claim")
            .is_empty(),
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_dropped_and_the_node_keeps_serving_others() {
    if !dcmtk() {
        return;
    }
    let s = start(ScpConfig {
        max_associations: 2,
        timeout: Duration::from_secs(2),
        ..ScpConfig::default()
    })
    .await;
    let addr = format!("127.0.0.1:{}", s.port);
    let port = s.port.to_string();
    let echo = || {
        run(
            "echoscu",
            args(&["-aet", "MODALITY1", "-aec", "MEDVISION", "127.0.0.1", &port]),
        )
    };

    // A PDU declaring 2 GB: refused from its header, connection closed.
    let mut c = TcpStream::connect(&addr).await.expect("connect");
    c.write_all(&[0x01, 0x00, 0x7f, 0xff, 0xff, 0xff, 0x00, 0x01])
        .await
        .expect("write");
    let mut buf = [0u8; 64];
    let n = guard(c.read(&mut buf)).await.unwrap_or(0);
    // Either closed outright or answered with an abort/reject PDU, never a hang.
    assert!(
        n == 0 || buf[0] == 0x07 || buf[0] == 0x03,
        "got {:?}",
        &buf[..n]
    );
    assert!(guard(echo()).await.status.success());

    // A truncated PDU: the header promises more than ever comes.
    let mut c = TcpStream::connect(&addr).await.expect("connect");
    c.write_all(&[0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00])
        .await
        .expect("write");
    drop(c);
    assert!(guard(echo()).await.status.success());

    // A flood: two silent connections hold both slots; the third is told
    // "local limit exceeded" at once, and once the silent ones time out
    // the node serves again.
    let _a = TcpStream::connect(&addr).await.expect("connect");
    let _b = TcpStream::connect(&addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(&addr).await.expect("connect");
    let mut rj = [0u8; 10];
    guard(third.read_exact(&mut rj))
        .await
        .expect("A-ASSOCIATE-RJ");
    assert_eq!(rj[0], 0x03, "A-ASSOCIATE-RJ");
    assert_eq!(rj[7], 2, "transient");
    assert_eq!(rj[8], 3, "service provider (presentation)");
    assert_eq!(rj[9], 2, "local limit exceeded");
    // The silent peers time out after 2 s and free their slots.
    // (The guard fails the test if the node never serves again.)
    guard(async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if echo().await.status.success() {
                break;
            }
        }
    })
    .await;
}

fn sr_doc(series: Vec<SeriesRef>) -> SrDocument {
    SrDocument {
        sop_instance_uid: "2.25.1001".into(),
        series_instance_uid: "2.25.1002".into(),
        study_uid: "2.25.1003".into(),
        study_date: "20261124".into(),
        study_time: "093000".into(),
        study_id: "1".into(),
        accession: String::new(),
        patient_id: "MV-7F3A".into(),
        patient_name: String::new(),
        patient_sex: "F".into(),
        series,
        algorithm: Some((
            "ich-demo (trained on synthetic phantoms, not for clinical use)".into(),
            "1.0.0".into(),
        )),
        findings: vec![
            Finding {
                label: "Intraparenchymal haemorrhage".into(),
                probability: Some(0.93),
                source: "AI suggestion (ich-demo 1.0.0)".into(),
                decision: "accepted".into(),
            },
            Finding {
                label: "Subdural haemorrhage".into(),
                probability: Some(0.08),
                source: "AI suggestion (ich-demo 1.0.0)".into(),
                decision: "rejected: thin artefact along the falx".into(),
            },
        ],
        impression: "Right frontal intraparenchymal haemorrhage.\nNo midline shift.".into(),
        verifier: Some(Verifier {
            name: "Rivera^Ana".into(),
            organisation: "St Elsewhere Radiology".into(),
            datetime: "20261124094500".into(),
        }),
        content_date: "20261124".into(),
        content_time: "094500".into(),
        institution: "St Elsewhere Radiology".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_structured_report_parses_in_dcmtk_and_reaches_storescp() {
    if !dcmtk() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let ct = synthetic_ct(work.path(), 2);
    let refs: Vec<(String, String)> = ct
        .iter()
        .map(|p| {
            let o = dicom_object::open_file(p).expect("ct");
            (
                o.meta().media_storage_sop_class_uid().to_owned(),
                o.meta().media_storage_sop_instance_uid().to_owned(),
            )
        })
        .collect();
    let doc = sr_doc(vec![SeriesRef {
        series_uid: "2.25.1004".into(),
        instances: refs.clone(),
    }]);
    let sr = work.path().join("report.dcm");
    doc.write(&sr).expect("write SR");

    let dump = guard(run("dsrdump", vec!["+Pl".into(), sr.display().to_string()])).await;
    let text = String::from_utf8_lossy(&dump.stdout);
    let err = String::from_utf8_lossy(&dump.stderr);
    assert!(dump.status.success(), "dsrdump: {err}");
    // dcmtk 3.6.7's VR checker cannot check UTF-8 (ISO_IR 192) strings and
    // says so; any other warning or error is a defect of the document.
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("does not support this Specific Character Set"))
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(complaints.is_empty(), "dsrdump complained: {complaints:?}");
    assert!(text.contains("Comprehensive SR Document"), "{text}");
    assert!(text.contains("Intraparenchymal haemorrhage"), "{text}");
    assert!(text.contains("0.9300"), "{text}");
    assert!(text.contains("rejected: thin artefact"), "{text}");
    assert!(text.contains("VERIFIED"), "{text}");
    let dcm = guard(run("dcmdump", vec![sr.display().to_string()])).await;
    let d = String::from_utf8_lossy(&dcm.stdout);
    assert!(dcm.status.success());
    for (_, inst) in &refs {
        assert!(
            d.contains(inst.as_str()),
            "source instance {inst} referenced"
        );
    }
    assert!(d.contains("CurrentRequestedProcedureEvidenceSequence"));

    // pydicom (the registry package the imaging tests use) reads it and
    // finds every required module and the references.
    if let Some(dir) = pydicom_dir() {
        let pkg = dir
            .ancestors()
            .nth(3)
            .expect("pydicom package root")
            .to_path_buf();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sr_pydicom.py");
        let mut a = vec![script.display().to_string(), sr.display().to_string()];
        a.extend(refs.iter().map(|(_, i)| i.clone()));
        let out = guard(async move {
            tokio::task::spawn_blocking(move || {
                Command::new("python3")
                    .env("PYTHONPATH", pkg)
                    .args(&a)
                    .output()
                    .expect("python3")
            })
            .await
            .expect("join")
        })
        .await;
        assert!(
            out.status.success(),
            "pydicom: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // storescp receives it from our SCU.
    let recv = tempfile::tempdir().expect("tempdir");
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let mut peer = Command::new("storescp")
        .args(["-aet", "PACS", "-od"])
        .arg(recv.path())
        .arg(port.to_string())
        .spawn()
        .expect("storescp");
    let node = Node {
        host: "127.0.0.1".into(),
        port,
        ae_title: "PACS".into(),
    };
    let sent = guard(async {
        loop {
            match scu::store(
                &node,
                "MEDVISION",
                std::slice::from_ref(&sr),
                Duration::from_secs(10),
            )
            .await
            {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await;
    let _ = peer.kill();
    let _ = peer.wait();
    assert!(sent[0].ok(), "{sent:?}");
    let files: Vec<_> = std::fs::read_dir(recv.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(files.len(), 1);
    let got = dicom_object::open_file(files[0].path()).expect("received SR");
    assert_eq!(got.meta().media_storage_sop_instance_uid(), "2.25.1001");
}

#[test]
fn a_document_with_an_invalid_uid_is_refused() {
    let mut doc = sr_doc(vec![]);
    doc.study_uid = "1.2.3.<script>".into();
    assert!(doc.to_object().is_err());
}
