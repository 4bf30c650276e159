//! Draft reports through an OpenAI-compatible endpoint that fails, then
//! times out, then recovers: the pipeline's circuit breaker opens, drafts
//! fall back to the built-in writer and say why, and once the breaker
//! half-opens the LLM drafts again. The endpoint is a stand-in speaking the
//! chat-completions wire format; the test asserts what the server sent.

use crate::helpers::{settings_for, start, Api, Backend};
use crate::on_both;
use crate::pipeline::{ct_study, tiny_ct_pack};
use axum::extract::State;
use axum::http::StatusCode as AxStatus;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Fail,
    Hang,
    Answer,
}

#[derive(Default)]
struct Seen {
    bodies: Vec<Value>,
    auth: Vec<Option<String>>,
}

#[derive(Clone)]
struct StandIn {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
}

/// A draft that passes verification for this case: it states the positive
/// finding and does not assert the negative one.
const ANSWER: &str = r#"{"clinical_information": "Head CT for triage.",
"technique": "Non-contrast CT of the head.",
"findings": "There is an intraparenchymal haemorrhage suggested by the model, for review.",
"impression": "Intraparenchymal haemorrhage suggested; requires radiologist confirmation.",
"recommendations": "Urgent review by the on-call radiologist.",
"explanation": "The computer model flagged a possible intraparenchymal haemorrhage, a bleed inside the brain tissue; a radiologist will check the images."}"#;

async fn completions(
    State(s): State<StandIn>,
    req: axum::http::Request<axum::body::Body>,
) -> Response {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(req.into_body(), 1 << 22)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    {
        let mut seen = s.seen.lock().unwrap();
        seen.bodies.push(body);
        seen.auth.push(auth);
    }
    let mode = *s.mode.lock().unwrap();
    match mode {
        Mode::Fail => (
            AxStatus::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "upstream exploded", "type": "server_error", "param": null, "code": null}})),
        )
            .into_response(),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            AxStatus::GATEWAY_TIMEOUT.into_response()
        }
        Mode::Answer => Json(json!({
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "standin-model-7",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}
        }))
        .into_response(),
    }
}

async fn stand_in() -> (String, StandIn) {
    let s = StandIn {
        mode: Arc::new(Mutex::new(Mode::Fail)),
        seen: Arc::new(Mutex::new(Seen::default())),
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/v1"), s)
}

async fn analyse_one(
    api: &crate::helpers::Api,
    case: &str,
    dir: &std::path::Path,
    index: u32,
) -> Value {
    let files = ct_study(&dir.join(format!("s{index}")), index, 1);
    crate::pipeline::upload(api, case, &files).await;
    let jobs = crate::pipeline::settle_n(api, case, index as usize).await;
    assert!(
        jobs.iter().all(|j| j["state"] == "completed"),
        "a failing LLM never fails the job: {jobs:?}"
    );
    let r = api.get(&format!("/api/v1/cases/{case}/report")).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn llm_outage_opens_the_breaker_then_recovers(backend: Backend) {
    let (llm, standin) = stand_in().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings_for(&backend, tmp.path());
    s.job_poll_ms = 50;
    s.worker_concurrency = 1;
    // Retrieval is tested elsewhere; here it would only add seconds.
    s.evidence = false;
    s.llm_base_url = Some(llm);
    s.llm_model = "medvision-drafter".into();
    s.llm_api_key = Some(secrecy::SecretString::from("sk-standin-42".to_owned()));
    s.llm_timeout_secs = 1.0;
    s.breaker_failures = 2;
    s.breaker_open_secs = 6;
    tiny_ct_pack(&s.models_dir());
    let app = start(s).await;
    app.org("Org alpha").await;
    app.user("doctor@alpha.example", "doctor", "Org alpha")
        .await;
    let api = app.login("doctor@alpha.example").await;
    let case = api.create_case("PSEUDO-LLM").await;
    let id = case["id"].as_str().unwrap();
    let dir = tmp.path().join("in");
    let requests = || standin.seen.lock().unwrap().bodies.len();

    // 1. The endpoint answers 500: the built-in writer drafts, and says why.
    let r = analyse_one(&api, id, &dir, 1).await;
    assert_eq!(r["writer"], "builtin", "{r}");
    assert_eq!(r["fallback"]["reason"], "llm_error", "{r}");
    assert_eq!(r["fallback"]["transient"], true);
    assert_eq!(r["label"], "AI draft, requires review");
    assert!(
        !r.to_string().contains("upstream exploded"),
        "endpoint text never reaches a client"
    );
    // One request: no hidden retries, no explanation call after a transient failure.
    assert_eq!(requests(), 1);

    // 2. The endpoint hangs past the timeout: a second failure opens the breaker.
    *standin.mode.lock().unwrap() = Mode::Hang;
    let r = analyse_one(&api, id, &dir, 2).await;
    assert_eq!(r["writer"], "builtin");
    assert_eq!(r["fallback"]["reason"], "llm_error", "{r}");
    assert_eq!(r["fallback"]["error"], "timeout", "{r}");
    assert_eq!(requests(), 2);

    // 3. The endpoint is back, but the breaker is open: not even asked.
    *standin.mode.lock().unwrap() = Mode::Answer;
    let r = analyse_one(&api, id, &dir, 3).await;
    assert_eq!(r["writer"], "builtin");
    assert_eq!(r["fallback"]["reason"], "breaker_open", "{r}");
    assert_eq!(requests(), 2, "an open breaker sends nothing");
    let page = api
        .page(&format!("/cases/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("circuit breaker open"),
        "the case page says why"
    );
    let ready: Value = Api::new(&app.url)
        .get("/readyz")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["checks"]["llm"]["status"], "failing", "{ready}");

    // 4. After the open period one trial goes out, succeeds, and the LLM
    //    drafts again (report and explanation).
    tokio::time::sleep(Duration::from_millis(6200)).await;
    let r = analyse_one(&api, id, &dir, 4).await;
    assert_eq!(r["writer"], "llm", "{r}");
    assert_eq!(r["fallback"], Value::Null);
    assert_eq!(r["model"], "standin-model-7");
    assert_eq!(r["prompt_version"], reporting::REPORT_PROMPT_VERSION);
    assert_eq!(r["explanation"]["writer"], "llm", "{r}");
    assert!(r["sections"]["findings"]
        .as_str()
        .unwrap()
        .contains("intraparenchymal"));
    assert_eq!(
        r["revision"], 4,
        "each study's job redrafted the case's one report"
    );
    assert_eq!(requests(), 4);
    let r5 = analyse_one(&api, id, &dir, 5).await;
    assert_eq!(r5["writer"], "llm", "closed again: {r5}");
    let ready: Value = Api::new(&app.url)
        .get("/readyz")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["llm"]["status"], "ok", "recovered: {ready}");
    assert_eq!(requests(), 6);

    // What the server sent: the configured model and key, the case's
    // findings with probabilities, thresholds and model versions.
    let (bodies, auths) = {
        let seen = standin.seen.lock().unwrap();
        (seen.bodies.clone(), seen.auth.clone())
    };
    for (b, auth) in bodies.iter().zip(&auths) {
        assert_eq!(b["model"], "medvision-drafter");
        assert_eq!(auth.as_deref(), Some("Bearer sk-standin-42"));
        let msgs = b["messages"].as_array().unwrap();
        assert_eq!(msgs[0]["role"], "system");
        let user = msgs[1]["content"].as_str().unwrap();
        assert!(user.contains("intraparenchymal"), "{user}");
        assert!(user.contains("test-ich-tiny 0.1.0"), "{user}");
        assert!(user.contains("threshold 0.50"), "{user}");
        assert!(
            !user.contains("PSEUDO-LLM"),
            "no patient reference in the prompt"
        );
    }
    app.stop().await;
}

on_both!(llm_outage_opens_the_breaker_then_recovers);
