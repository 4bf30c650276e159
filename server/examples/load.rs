//! Load generator of `bench/load.sh` (issue 9): simulated users who browse,
//! chat and upload against one running server, over loopback.
//!
//! Each virtual user `load{N}@load.example` (N = 1..=users, created
//! beforehand with `medvision user add`) signs in with
//! `POST /api/v1/auth/login`, opens a case, then until the deadline repeats,
//! with a random think time, one of: the server-rendered pages `/cases` and
//! `/cases/{id}`; the API reads `GET /api/v1/cases`, `/cases/{id}`,
//! `/cases/{id}/studies`; a chat message; an upload of one DICOM file (the
//! `--dicom` file with fresh study / series / SOP instance UIDs, so every
//! upload is a new instance and can be counted in the database afterwards).
//!
//! Recorded per request kind: count, errors (non-2xx or transport errors,
//! with sample reasons), p50/p95/p99/max latency; every upload answered 201
//! with its `accepted` count, per case. At the end: a table and a JSON
//! summary on stdout (and in `--out`); with `--samples` every request as CSV
//! (`start_ms,kind,status,latency_ms,user`; status 0 = transport error) and
//! with `--errors` every error as JSON lines, for the fault-window analysis
//! in `bench/load.sh`.
//!
//! `--count-only SUMMARY.json` signs in as each user again and counts the
//! instances stored in their case through `GET /api/v1/cases/{id}/studies`,
//! against the accepted uploads of that summary.
//!
//!     cargo run --release -p server --example load -- --url http://127.0.0.1:3000 \
//!         --users 200 --duration-secs 600 --password '…' --dicom CT_small.dcm

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug, Clone)]
#[command(about = "MedVision load generator (bench/load.sh)")]
struct Args {
    /// Base URL of the server (loopback).
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Virtual users; user N signs in as load{N}@load.example.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// How long the users work, ramp-up included.
    #[arg(long, default_value_t = 600)]
    duration_secs: u64,
    /// Password of every load user.
    #[arg(long)]
    password: String,
    /// The DICOM file uploaded (its UIDs are replaced per upload).
    #[arg(long)]
    dicom: Option<PathBuf>,
    /// Users start evenly spread over this many seconds
    /// (default: a tenth of the duration, at most 30).
    #[arg(long)]
    ramp_secs: Option<u64>,
    #[arg(long, default_value_t = 1000)]
    think_min_ms: u64,
    #[arg(long, default_value_t = 3000)]
    think_max_ms: u64,
    /// Per cent of iterations that upload one file.
    #[arg(long, default_value_t = 5)]
    upload_pct: u32,
    /// Per cent of iterations that post a chat message.
    #[arg(long, default_value_t = 15)]
    chat_pct: u32,
    /// The server's upload limit per user per minute: a 429 at or above it
    /// is expected, below it an error.
    #[arg(long, default_value_t = 30)]
    upload_limit: usize,
    /// The server's chat limit per user per minute (fixed at 30 in the
    /// server); users stay below it, so a 429 there is an error.
    #[arg(long, default_value_t = 30)]
    chat_limit: usize,
    /// Per-request timeout.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Write the JSON summary here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write every request as CSV here.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Write every error as JSON lines here.
    #[arg(long)]
    errors: Option<PathBuf>,
    /// Count stored instances per case for the accepted uploads of this
    /// summary (a file written by `--out`), print JSON, and exit.
    #[arg(long)]
    count_only: Option<PathBuf>,
}

const KINDS: &[&str] = &[
    "login",
    "create_case",
    "page_list",
    "page_case",
    "api_list",
    "api_case",
    "api_studies",
    "chat",
    "upload",
];

const SEXES: [&str; 4] = ["F", "M", "O", "U"];
const URGENCIES: [&str; 4] = ["routine", "priority", "urgent", "stat"];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn email(n: usize) -> String {
    format!("load{n}@load.example")
}

struct Sample {
    start_ms: u64,
    kind: &'static str,
    status: u16,
    latency_us: u64,
    user: usize,
}

#[derive(Default)]
struct Recorder {
    samples: Vec<Sample>,
    errors: Vec<Value>,
    /// (kind, status) → a few reasons.
    reasons: BTreeMap<(String, u16), Vec<String>>,
    /// 429s at or above the configured limit: expected, not errors.
    expected_429: BTreeMap<&'static str, u64>,
    /// Case id → (user, accepted files of the uploads answered 201).
    cases: BTreeMap<String, (usize, u64)>,
    uploads_201: u64,
    /// Uploads whose outcome is unknown (transport error or timeout): they
    /// may have been stored without the client knowing.
    uploads_unknown: u64,
}

type Rec = Arc<Mutex<Recorder>>;

fn lock(r: &Rec) -> std::sync::MutexGuard<'_, Recorder> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

struct Outcome {
    status: u16,
    json: Option<Value>,
}

/// One request, timed and recorded: 2xx is success; a 429 is an expected
/// refusal (counted apart) when `expect_429`.
async fn send(
    rec: &Rec,
    user: usize,
    kind: &'static str,
    rb: reqwest::RequestBuilder,
    expect_429: bool,
) -> Outcome {
    let start_ms = now_ms();
    let t0 = Instant::now();
    let res = rb.send().await;
    let (status, body) = match res {
        Ok(r) => {
            let s = r.status().as_u16();
            match r.text().await {
                Ok(b) => (s, b),
                Err(e) => (0, format!("reading the body after {s}: {e}")),
            }
        }
        Err(e) => (0, format!("transport: {e}")),
    };
    let latency_us = t0.elapsed().as_micros() as u64;
    let ok = (200..300).contains(&status);
    let mut r = lock(rec);
    if status == 429 && expect_429 {
        *r.expected_429.entry(kind).or_default() += 1;
    } else {
        r.samples.push(Sample {
            start_ms,
            kind,
            status,
            latency_us,
            user,
        });
        if !ok {
            let reason: String = body.chars().take(300).collect();
            let v = r.reasons.entry((kind.to_owned(), status)).or_default();
            if v.len() < 3 {
                v.push(reason.clone());
            }
            if r.errors.len() < 100_000 {
                r.errors.push(json!({
                    "start_ms": start_ms,
                    "end_ms": start_ms + latency_us / 1000,
                    "kind": kind,
                    "status": status,
                    "user": user,
                    "reason": reason,
                }));
            }
        }
    }
    drop(r);
    let json = if ok && !body.is_empty() {
        serde_json::from_str(&body).ok()
    } else {
        None
    };
    Outcome { status, json }
}

/// The `--dicom` file with new UIDs: one study and series per user, one SOP
/// instance per upload, so every accepted upload is a new stored instance.
struct DicomMaker {
    base: dicom_object::DefaultDicomObject,
}

fn uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

impl DicomMaker {
    fn open(p: &std::path::Path) -> anyhow::Result<Self> {
        let base = dicom_object::open_file(p)?;
        for t in [
            dicom_dictionary_std::tags::SOP_INSTANCE_UID,
            dicom_dictionary_std::tags::STUDY_INSTANCE_UID,
            dicom_dictionary_std::tags::SERIES_INSTANCE_UID,
        ] {
            base.element(t)
                .map_err(|e| anyhow::anyhow!("{}: no {t}: {e}", p.display()))?;
        }
        Ok(Self { base })
    }

    fn make(&self, study: &str, series: &str, n: u32) -> anyhow::Result<Vec<u8>> {
        use dicom_dictionary_std::tags;
        let mut o = self.base.clone();
        let sop = uid();
        for (t, v) in [
            (tags::SOP_INSTANCE_UID, sop.as_str()),
            (tags::STUDY_INSTANCE_UID, study),
            (tags::SERIES_INSTANCE_UID, series),
        ] {
            let vr = o.element(t)?.vr();
            o.put_str(t, vr, v);
        }
        if let Ok(e) = o.element(tags::INSTANCE_NUMBER) {
            let vr = e.vr();
            o.put_str(tags::INSTANCE_NUMBER, vr, n.to_string());
        }
        o.update_meta(|m| m.media_storage_sop_instance_uid = sop.clone());
        let mut out = Vec::with_capacity(64 * 1024);
        o.write_all(&mut out)?;
        Ok(out)
    }
}

fn client(args: &Args) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(args.timeout_secs))
        .connect_timeout(Duration::from_secs(5))
        .build()?)
}

/// Signs in; the CSRF token on success.
async fn login(rec: &Rec, args: &Args, c: &reqwest::Client, n: usize) -> Option<String> {
    let o = send(
        rec,
        n,
        "login",
        c.post(format!("{}/api/v1/auth/login", args.url))
            .json(&json!({"email": email(n), "password": args.password})),
        false,
    )
    .await;
    o.json
        .as_ref()
        .and_then(|j| j.get("csrf_token"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Requests of this user in the last minute, for the rate limits.
fn recent(q: &mut VecDeque<Instant>) -> usize {
    while q
        .front()
        .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
    {
        q.pop_front();
    }
    q.len()
}

async fn user(
    n: usize,
    args: Arc<Args>,
    rec: Rec,
    dicom: Option<Arc<DicomMaker>>,
    start_at: Instant,
    deadline: Instant,
) {
    tokio::time::sleep_until(start_at.into()).await;
    let mut rng = StdRng::seed_from_u64(n as u64 * 7919 + 1);
    let Ok(c) = client(&args) else { return };
    let base = args.url.clone();
    let think = |rng: &mut StdRng| {
        Duration::from_millis(
            rng.gen_range(args.think_min_ms..=args.think_max_ms.max(args.think_min_ms)),
        )
    };
    // Sign in and open a case, retrying (each failure is recorded).
    let mut csrf = None;
    let mut case_id: Option<String> = None;
    while Instant::now() < deadline {
        if csrf.is_none() {
            csrf = login(&rec, &args, &c, n).await;
        }
        if let Some(t) = &csrf {
            let o = send(
                &rec,
                n,
                "create_case",
                c.post(format!("{base}/api/v1/cases"))
                    .header("X-CSRF-Token", t)
                    .json(&json!({
                        "patient_ref": format!("LOAD-{n}"),
                        "age": 20 + (n % 70),
                        "sex": SEXES[n % 4],
                        "modality": "CT",
                        "body_part": "head",
                        "urgency": URGENCIES[n % 4],
                        "history": format!("load test user {n}"),
                    })),
                false,
            )
            .await;
            if o.status == 401 {
                csrf = None;
            }
            case_id = o
                .json
                .as_ref()
                .and_then(|j| j.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            if case_id.is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let Some(case_id) = case_id else { return };
    lock(&rec).cases.entry(case_id.clone()).or_insert((n, 0));
    let study = uid();
    let series = uid();
    let mut uploads: VecDeque<Instant> = VecDeque::new();
    let mut chats: VecDeque<Instant> = VecDeque::new();
    let mut seq = 0u32;
    loop {
        let pause = think(&mut rng);
        if Instant::now() + pause >= deadline {
            break;
        }
        tokio::time::sleep(pause).await;
        let Some(token) = csrf.clone() else {
            csrf = login(&rec, &args, &c, n).await;
            continue;
        };
        seq += 1;
        let r: u32 = rng.gen_range(0..100);
        let up = args.upload_pct;
        let ch = up + args.chat_pct;
        let rest = 100u32.saturating_sub(ch).max(1);
        let pick = if r < up && dicom.is_some() {
            "upload"
        } else if r < ch && recent(&mut chats) < args.chat_limit.saturating_sub(2) {
            "chat"
        } else {
            // Reads: pages and API in equal shares.
            let k = ((r.saturating_sub(ch)) * 5) / rest;
            [
                "page_list",
                "page_case",
                "api_list",
                "api_case",
                "api_studies",
            ][k.min(4) as usize]
        };
        let o = match pick {
            "page_list" => {
                send(
                    &rec,
                    n,
                    pick,
                    c.get(format!("{base}/cases")).header("Accept", "text/html"),
                    false,
                )
                .await
            }
            "page_case" => {
                send(
                    &rec,
                    n,
                    pick,
                    c.get(format!("{base}/cases/{case_id}"))
                        .header("Accept", "text/html"),
                    false,
                )
                .await
            }
            "api_list" => send(&rec, n, pick, c.get(format!("{base}/api/v1/cases")), false).await,
            "api_case" => {
                send(
                    &rec,
                    n,
                    pick,
                    c.get(format!("{base}/api/v1/cases/{case_id}")),
                    false,
                )
                .await
            }
            "api_studies" => {
                send(
                    &rec,
                    n,
                    pick,
                    c.get(format!("{base}/api/v1/cases/{case_id}/studies")),
                    false,
                )
                .await
            }
            "chat" => {
                chats.push_back(Instant::now());
                send(
                    &rec,
                    n,
                    pick,
                    c.post(format!("{base}/api/v1/cases/{case_id}/messages"))
                        .header("X-CSRF-Token", &token)
                        .json(&json!({"body": format!("load message {seq} from user {n}")})),
                    false,
                )
                .await
            }
            _ => {
                let Some(d) = dicom.as_ref() else { continue };
                let bytes = match d.make(&study, &series, seq) {
                    Ok(b) => b,
                    Err(e) => {
                        eprintln!("user {n}: could not write the DICOM file: {e}");
                        continue;
                    }
                };
                let expected = recent(&mut uploads) >= args.upload_limit;
                uploads.push_back(Instant::now());
                let part = match reqwest::multipart::Part::bytes(bytes)
                    .file_name(format!("load-{n}-{seq}.dcm"))
                    .mime_str("application/dicom")
                {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                let form = reqwest::multipart::Form::new().part("file", part);
                let o = send(
                    &rec,
                    n,
                    "upload",
                    c.post(format!("{base}/api/v1/cases/{case_id}/images"))
                        .header("X-CSRF-Token", &token)
                        .multipart(form),
                    expected,
                )
                .await;
                let mut r = lock(&rec);
                if o.status == 201 {
                    let acc = o
                        .json
                        .as_ref()
                        .and_then(|j| j.get("accepted"))
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    r.uploads_201 += 1;
                    r.cases.entry(case_id.clone()).or_insert((n, 0)).1 += acc;
                } else if o.status == 0 {
                    r.uploads_unknown += 1;
                }
                drop(r);
                o
            }
        };
        if o.status == 401 {
            // The session is gone: sign in again on the next turn.
            csrf = None;
        }
    }
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn summarize(args: &Args, r: &Recorder, wall_s: f64) -> Value {
    let mut kinds = serde_json::Map::new();
    let mut table = String::new();
    table.push_str(&format!(
        "{:<12} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}\n",
        "kind", "count", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
    ));
    let mut total = 0u64;
    let mut errors = 0u64;
    let mut page_lat = Vec::new();
    for &k in KINDS {
        let mut lat: Vec<u64> = Vec::new();
        let mut errs = 0u64;
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for s in r.samples.iter().filter(|s| s.kind == k) {
            lat.push(s.latency_us);
            *by_status.entry(s.status.to_string()).or_default() += 1;
            if !(200..300).contains(&s.status) {
                errs += 1;
            }
            if k.starts_with("page_") {
                page_lat.push(s.latency_us);
            }
        }
        lat.sort_unstable();
        total += lat.len() as u64;
        errors += errs;
        let reasons: Vec<Value> = r
            .reasons
            .iter()
            .filter(|((kk, _), _)| kk == k)
            .map(|((_, st), v)| json!({"status": st, "samples": v}))
            .collect();
        let (p50, p95, p99, max) = (
            pct(&lat, 0.5),
            pct(&lat, 0.95),
            pct(&lat, 0.99),
            pct(&lat, 1.0),
        );
        table.push_str(&format!(
            "{k:<12} {:>7} {errs:>6} {p50:>8.1} {p95:>8.1} {p99:>8.1} {max:>8.1}\n",
            lat.len()
        ));
        kinds.insert(
            k.into(),
            json!({
                "count": lat.len(), "errors": errs, "by_status": by_status,
                "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max,
                "expected_429": r.expected_429.get(k).copied().unwrap_or(0),
                "error_samples": reasons,
            }),
        );
    }
    page_lat.sort_unstable();
    let accepted: u64 = r.cases.values().map(|(_, a)| a).sum();
    let cases: Vec<Value> = r
        .cases
        .iter()
        .map(|(id, (u, a))| json!({"case_id": id, "user": u, "email": email(*u), "accepted": a}))
        .collect();
    table.push_str(&format!(
        "total {total} requests in {wall_s:.1} s ({:.1}/s), {errors} errors; pages p99 {:.1} ms; uploads 201: {}, accepted files: {accepted}, outcome unknown: {}\n",
        total as f64 / wall_s.max(0.001),
        pct(&page_lat, 0.99),
        r.uploads_201,
        r.uploads_unknown
    ));
    json!({
        "url": args.url,
        "users": args.users,
        "duration_secs": args.duration_secs,
        "wall_secs": wall_s,
        "requests": total,
        "requests_per_s": total as f64 / wall_s.max(0.001),
        "errors": errors,
        "error_rate": if total > 0 { errors as f64 / total as f64 } else { 0.0 },
        "pages_p99_ms": pct(&page_lat, 0.99),
        "kinds": kinds,
        "uploads_201": r.uploads_201,
        "uploads_outcome_unknown": r.uploads_unknown,
        "accepted_uploads": accepted,
        "cases": cases,
        "table": table,
    })
}

async fn count_only(args: &Args, summary: &std::path::Path) -> anyhow::Result<()> {
    let s: Value = serde_json::from_slice(&std::fs::read(summary)?)?;
    let cases: Vec<(String, usize, u64)> = s
        .get("cases")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| {
                    Some((
                        c.get("case_id")?.as_str()?.to_owned(),
                        c.get("user")?.as_u64()? as usize,
                        c.get("accepted")?.as_u64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let rec: Rec = Arc::default();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let args = Arc::new(args.clone());
    let mut tasks = Vec::new();
    for (case, n, acc) in cases {
        let (sem, rec, args) = (sem.clone(), rec.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            let c = client(&args).ok()?;
            login(&rec, &args, &c, n).await?;
            let o = send(
                &rec,
                n,
                "api_studies",
                c.get(format!("{}/api/v1/cases/{case}/studies", args.url)),
                false,
            )
            .await;
            let stored: u64 = o
                .json?
                .as_array()?
                .iter()
                .flat_map(|st| {
                    st.get("series")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|se| se.get("instances").and_then(Value::as_u64))
                .sum();
            Some((case, acc, stored))
        }));
    }
    let (mut acc_t, mut stored_t, mut lost, mut extra, mut unreadable) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut lost_cases = Vec::new();
    for t in tasks {
        match t.await.ok().flatten() {
            Some((case, acc, stored)) => {
                acc_t += acc;
                stored_t += stored;
                if stored < acc {
                    lost += acc - stored;
                    lost_cases.push(json!({"case_id": case, "accepted": acc, "stored": stored}));
                } else {
                    extra += stored - acc;
                }
            }
            None => unreadable += 1,
        }
    }
    println!(
        "{}",
        json!({
            "accepted": acc_t, "stored": stored_t, "lost": lost,
            "stored_not_acknowledged": extra, "cases_unreadable": unreadable,
            "lost_cases": lost_cases,
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(p) = args.count_only.clone() {
        return count_only(&args, &p).await;
    }
    let dicom = match &args.dicom {
        Some(p) => Some(Arc::new(DicomMaker::open(p)?)),
        None => {
            eprintln!("no --dicom file: users do not upload");
            None
        }
    };
    let ramp = args
        .ramp_secs
        .unwrap_or_else(|| (args.duration_secs / 10).min(30));
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(args.duration_secs);
    let rec: Rec = Arc::default();
    let args = Arc::new(args);
    let mut tasks = Vec::with_capacity(args.users);
    eprintln!(
        "load: {} users over {} s (ramp {} s) against {}",
        args.users, args.duration_secs, ramp, args.url
    );
    for n in 1..=args.users {
        let offset = Duration::from_millis(ramp * 1000 * (n as u64 - 1) / args.users.max(1) as u64);
        tasks.push(tokio::spawn(user(
            n,
            args.clone(),
            rec.clone(),
            dicom.clone(),
            t0 + offset,
            deadline,
        )));
    }
    // Progress every 10 s on stderr.
    let progress = {
        let rec = rec.clone();
        tokio::spawn(async move {
            let mut last = 0usize;
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let r = lock(&rec);
                let n = r.samples.len();
                let e = r
                    .samples
                    .iter()
                    .filter(|s| !(200..300).contains(&s.status))
                    .count();
                eprintln!(
                    "load: t={:>4.0}s requests {n} (+{}), errors {e}, accepted uploads {}",
                    t0.elapsed().as_secs_f64(),
                    n - last,
                    r.cases.values().map(|(_, a)| a).sum::<u64>()
                );
                last = n;
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    progress.abort();
    let wall = t0.elapsed().as_secs_f64();
    let r = lock(&rec);
    let summary = summarize(&args, &r, wall);
    if let Some(p) = &args.samples {
        let mut s = String::from("start_ms,kind,status,latency_ms,user\n");
        for x in &r.samples {
            s.push_str(&format!(
                "{},{},{},{:.3},{}\n",
                x.start_ms,
                x.kind,
                x.status,
                x.latency_us as f64 / 1000.0,
                x.user
            ));
        }
        std::fs::write(p, s)?;
    }
    if let Some(p) = &args.errors {
        let mut s = String::new();
        for e in &r.errors {
            s.push_str(&e.to_string());
            s.push('\n');
        }
        std::fs::write(p, s)?;
    }
    if let Some(p) = &args.out {
        std::fs::write(p, serde_json::to_vec_pretty(&summary)?)?;
    }
    print!(
        "{}",
        summary.get("table").and_then(Value::as_str).unwrap_or("")
    );
    let mut compact = summary.clone();
    if let Some(o) = compact.as_object_mut() {
        o.remove("table");
        o.remove("cases");
    }
    println!("{compact}");
    Ok(())
}
