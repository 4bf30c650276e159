//! Operations: Prometheus metrics, readiness, and the security headers
//! every response carries (CSP with a per-response nonce, HSTS behind TLS).

use crate::helpers::{hang_guard, settings_for, start, Api, Backend, TestApp};
use crate::on_both;
use crate::pipeline::app_with;
use reqwest::StatusCode;
use serde_json::Value;

/// The value of the first sample of `name` carrying every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let addr = app.metrics_addr.expect("metrics listener");
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

on_both!(
    metrics_count_requests_by_route_and_read_the_queue,
    readiness_reports_each_dependency
);

async fn metrics_count_requests_by_route_and_read_the_queue(b: Backend) {
    let (app, _tmp) = app_with(b, |s| {
        s.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        s.embedded_workers = false;
    })
    .await;
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("PSEUDO-METRICS").await;
    let id = case["id"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(
            doc.get(&format!("/api/v1/cases/{id}")).await.status(),
            StatusCode::OK
        );
    }
    // A search for a patient's name must not reach the metrics as a label.
    doc.get("/api/v1/cases?q=Jane%20Doe").await;

    // Not on the public address: the page router answers it as unknown.
    let public = doc.get("/metrics").await;
    assert_ne!(public.status(), StatusCode::OK);
    assert!(!public
        .text()
        .await
        .unwrap()
        .contains("medvision_http_requests_total"));

    let org = crate::helpers::case_org(&app.db, id).await;
    for _ in 0..2 {
        app::pipeline::ssr::insert_job(&app.db, org, id.parse().unwrap(), None, None, "noop", 3)
            .await
            .unwrap();
    }

    let text = scrape(&app).await;
    let by_route = sample(
        &text,
        "medvision_http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/api/v1/cases/{id}"),
            ("status", "200"),
        ],
    );
    assert_eq!(by_route, Some(3.0), "{text}");
    // The latency histogram has one observation per request (a count, not
    // a time: speed is measured in bench/).
    assert!(
        sample(
            &text,
            "medvision_http_request_duration_seconds_count",
            &[("route", "/api/v1/cases/{id}")]
        ) == Some(3.0),
        "latency histogram per route: {text}"
    );
    assert!(!text.contains(id), "no ids in labels");
    assert!(!text.contains("Jane"), "no query strings in labels");
    assert!(!text.contains("PSEUDO-METRICS"));
    // Queue depth per stage, read from the shared table when scraped.
    let queued: f64 = text
        .lines()
        .filter(|l| l.starts_with("medvision_queue_jobs{") && l.contains("state=\"queued\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(queued, 2.0, "{text}");
    assert!(sample(
        &text,
        "medvision_queue_jobs",
        &[("stage", "drafting"), ("state", "running")]
    )
    .is_some());
    assert_eq!(
        sample(&text, "medvision_breaker_state", &[("breaker", "llm")]),
        Some(0.0),
        "breaker closed"
    );

    // A worker runs them: the outcome counter and the emptied queue show it.
    let (settings, _) = app.stop().await;
    let mut settings = settings;
    settings.embedded_workers = true;
    let app = start(settings).await;
    let done = hang_guard(async {
        loop {
            let text = scrape(&app).await;
            if sample(
                &text,
                "medvision_jobs_total",
                &[("kind", "noop"), ("outcome", "completed")],
            ) == Some(2.0)
            {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("both jobs complete");
    let queued: f64 = done
        .lines()
        .filter(|l| l.starts_with("medvision_queue_jobs{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(queued, 0.0, "{done}");
}

async fn readiness_reports_each_dependency(b: Backend) {
    let (app, _tmp) = app_with(b, |s| s.evidence = false).await;
    let api = Api::new(&app.url);
    let r = api.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ready", "{v}");
    for check in ["database", "blobs", "vectors", "models"] {
        assert_eq!(v["checks"][check]["status"], "ok", "{check}: {v}");
    }
    assert!(v["checks"]["models"]["detail"]
        .as_str()
        .unwrap()
        .contains("1 model pack"));

    // The image store stops accepting writes (a file where the probe's
    // folder goes: refused even to root): degraded, still serving.
    let blocker = app.settings.data_dir.join("blobs").join("health");
    let _ = std::fs::remove_dir_all(&blocker);
    std::fs::write(&blocker, b"not a folder").unwrap();
    let r = api.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "degraded", "{v}");
    assert_eq!(v["checks"]["blobs"]["status"], "failing");
    assert_eq!(v["checks"]["database"]["status"], "ok");
    let body = v.to_string();
    assert!(
        !body.contains(app.settings.data_dir.to_str().unwrap()),
        "no paths in the answer"
    );
    // It recovers by itself.
    std::fs::remove_file(&blocker).unwrap();
    let v: Value = api.get("/readyz").await.json().await.unwrap();
    assert_eq!(v["status"], "ready", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_without_models_is_degraded_and_without_a_database_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&Backend::Sqlite, tmp.path());
    s.evidence = false;
    let app = start(s).await;
    let api = Api::new(&app.url);
    let v: Value = api.get("/readyz").await.json().await.unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["checks"]["models"]["status"], "failing");
    assert_eq!(v["checks"]["models"]["detail"], "no model packs installed");
    // The database goes away under the running server.
    use sea_orm::ConnectionTrait;
    app.db.close_by_ref().await.ok();
    let r = api.get("/readyz").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "unavailable");
    assert_eq!(v["checks"]["database"]["status"], "failing");
    let _ = app.db.execute_unprepared("SELECT 1").await;
}

/// Every `<script>` on a page carries the response's nonce, the policy
/// allows exactly that nonce and no inline script, and the nonce changes
/// per response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_nonce_csp_without_unsafe_inline_scripts() {
    let tmp = tempfile::tempdir().unwrap();
    let app = start(settings_for(&Backend::Sqlite, tmp.path())).await;
    app.org("Org alpha").await;
    app.user("doctor@alpha.example", "doctor", "Org alpha")
        .await;
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("PSEUDO-CSP").await;
    // The sign-in page, and a case page whose resources are serialised
    // into the HTML for hydration (inline scripts of Leptos' own).
    let anon = Api::new(&app.url);
    let pages = [
        (&anon, "/login".to_owned()),
        (&doc, format!("/cases/{}", case["id"].as_str().unwrap())),
    ];
    let mut nonces = Vec::new();
    for (api, page) in &pages {
        let r = api.page(page).await;
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(r.headers().get("strict-transport-security").is_none());
        let html = r.text().await.unwrap();
        let script_src = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .expect("script-src");
        for weak in [
            "'unsafe-inline'",
            "'unsafe-eval'",
            "'unsafe-hashes'",
            "*",
            "data:",
        ] {
            assert!(
                !script_src.split_whitespace().any(|t| t == weak),
                "{weak} in {csp}"
            );
        }
        assert!(csp.contains("frame-ancestors 'none'"));
        let nonce = script_src
            .split_whitespace()
            .find_map(|t| t.strip_prefix("'nonce-")?.strip_suffix('\''))
            .expect("a nonce")
            .to_owned();
        assert!(nonce.len() >= 16, "a nonce of at least 96 bits");
        let scripts = html.matches("<script").count();
        assert!(scripts >= 1, "the hydration loader is a script");
        assert_eq!(
            html.matches(&format!("nonce=\"{nonce}\"")).count(),
            html.matches(" nonce=\"").count(),
            "no other nonce on the page"
        );
        for tag in html.split("<script").skip(1) {
            let head = &tag[..tag.find('>').unwrap()];
            assert!(
                head.contains(&format!("nonce=\"{nonce}\"")),
                "script without the nonce: <script{head}>"
            );
        }
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a fresh nonce per response");
    let again = anon.page("/login").await;
    assert!(!again.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains(&nonces[0]));

    // JSON and files: no inline scripts at all.
    let r = anon.get("/api/v1/openapi.json").await;
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("nonce-") && !csp.contains("unsafe-inline'; script"));
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval'"),
        "{csp}"
    );
    for h in [
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "cross-origin-opener-policy",
        "permissions-policy",
    ] {
        assert!(r.headers().contains_key(h), "missing {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_only_when_served_over_https() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&Backend::Sqlite, tmp.path());
    s.public_url = Some("https://medvision.hospital.example".into());
    let app = start(s).await;
    let r = Api::new(&format!("http://{}", app.addr))
        .get("/healthz")
        .await;
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

/// Reads from a raw connection until the server answers or closes it.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    return got;
                }
            }
        }
    }
}

/// A client that sends its headers one byte at a time, or a body that
/// stops halfway, is cut off; the server keeps serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_stalled_bodies_time_out() {
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&Backend::Sqlite, tmp.path());
    s.header_timeout_secs = 1;
    s.body_idle_timeout_secs = 1;
    let app = start(s).await;
    let addr = app.url.trim_start_matches("http://").to_owned();

    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        .await
        .unwrap();
    let answer = hang_guard(read_until_closed(&mut slow))
        .await
        .expect("the server drops a client that never finishes its headers");
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "no answer to an unfinished request"
    );

    let mut stalled = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let answer = hang_guard(read_until_closed(&mut stalled))
        .await
        .expect("a stalled body is cut off");
    let head = String::from_utf8_lossy(&answer).to_string();
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 4"),
        "a client error or a closed connection: {head}"
    );

    // Everyone else is still served.
    let r = Api::new(&app.url).get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// Uploads per user per minute are limited before a byte of the body is
/// read; another user is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_rate_limited_per_user() {
    let (app, _tmp) = app_with(Backend::Sqlite, |s| {
        s.upload_per_user_per_minute = 2;
        s.embedded_workers = false;
    })
    .await;
    let doc = app.login("doctor@alpha.example").await;
    let case = doc.create_case("PSEUDO-RATE").await;
    let id = case["id"].as_str().unwrap();
    let send = |api: &Api, case: String| {
        let api = api.clone();
        async move {
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(b"not an image".to_vec()).file_name("x.txt"),
            );
            api.http
                .post(api.url(&format!("/api/v1/cases/{case}/images")))
                .header("x-csrf-token", &api.csrf)
                .multipart(form)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        let r = send(&doc, id.to_owned()).await;
        assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    }
    let r = send(&doc, id.to_owned()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(crate::helpers::error_code(r).await, "rate_limited");
    assert_eq!(crate::helpers::count(&app.db, "instances").await, 0);

    let admin = app.login("admin@alpha.example").await;
    let r = send(&admin, id.to_owned()).await;
    assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS, "per user");
}
