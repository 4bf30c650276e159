//! The client against the stand-in: exact requests, answers, error classes.

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use reporting::{
    report_prompt, ChatPrompt, ErrorClass, LlmClient, LlmError, MaxTokensField, PngImage,
};

use crate::fixtures::{chest_case, chest_findings, config, passages};
use crate::stand_in::{Reply, StandIn};

fn prompt() -> ChatPrompt {
    report_prompt(&chest_case(), &chest_findings(), &passages())
}

#[tokio::test]
async fn non_streaming_request_is_exactly_the_chat_completions_wire_format() {
    let server = StandIn::start(vec![Reply::Text("Hello there.".into())]).await;
    let client = LlmClient::new(config(&format!("{}/", server.base_url))).expect("client");
    let c = client.chat(&prompt()).await.expect("completion");
    assert_eq!(c.text, "Hello there.");
    assert_eq!(c.model, "standin-model-2025");
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "one request, no retries");
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer sk-test-123")
    );
    assert!(r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json")));
    let b = &r.body;
    assert_eq!(b["model"], "medvision-test-model");
    assert_eq!(b["max_tokens"], 777);
    assert!(b.get("max_completion_tokens").is_none());
    assert!(b.get("stream").is_none() || b["stream"] == false);
    let msgs = b["messages"].as_array().expect("messages");
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["role"], "system");
    assert!(msgs[0]["content"]
        .as_str()
        .expect("system text")
        .contains("You do not diagnose"));
    assert_eq!(msgs[1]["role"], "user");
    let user = msgs[1]["content"].as_str().expect("user text");
    // Case, calibrated findings with thresholds and model versions, numbered passages with ids.
    assert!(user.contains("67 years, female"), "{user}");
    assert!(user.contains("Dyspnoea for two weeks."));
    assert!(user.contains("- Effusion (pleural effusion): p = 0.82, threshold 0.50, urgency urgent, model chexnet-demo 0.3.1"), "{user}");
    assert!(user.contains("- Pneumothorax (pneumothorax): p = 0.12, threshold 0.50"));
    let above = user.find("Above threshold").expect("above");
    let below = user.find("Below threshold").expect("below");
    assert!(
        user.find("Effusion (").expect("eff") > above
            && user.find("Effusion (").expect("eff") < below
    );
    assert!(user.find("Pneumothorax (").expect("ptx") > below);
    assert!(user.contains(
        "[1] id [GL:pleural-effusion-2023] (guideline, 2023) Pleural effusion: imaging work-up"
    ));
    assert!(user.contains("[2] id [PMID:12345678] (literature, 2019)"));
    assert!(user.contains("[3] id [GL:fleischner-2017-solid]"));
    assert!(user.contains("demonstration model, not for clinical use"));
}

#[tokio::test]
async fn no_key_sends_no_authorization_and_max_completion_tokens_is_selectable() {
    let server = StandIn::start(vec![Reply::Text("ok".into())]).await;
    let mut cfg = config(&server.base_url);
    cfg.api_key = None;
    cfg.max_tokens_field = MaxTokensField::MaxCompletionTokens;
    cfg.temperature = None;
    let client = LlmClient::new(cfg).expect("client");
    client.chat(&prompt()).await.expect("completion");
    let r = &server.requests()[0];
    assert!(r.headers.get("authorization").is_none());
    assert_eq!(r.body["max_completion_tokens"], 777);
    assert!(r.body.get("max_tokens").is_none());
    assert!(r.body.get("temperature").is_none());
}

#[tokio::test]
async fn streaming_sends_stream_true_and_assembles_deltas_in_order() {
    let deltas: Vec<String> = ["The ", "pleural ", "effusion ", "is ", "suggested."]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    let server = StandIn::start(vec![Reply::Sse(deltas.clone()), Reply::Sse(deltas.clone())]).await;
    let client = LlmClient::new(config(&server.base_url)).expect("client");

    let seen = Mutex::new(Vec::<String>::new());
    let c = client
        .chat_streaming(&prompt(), &|t| {
            seen.lock().expect("lock").push(t.to_string())
        })
        .await
        .expect("stream");
    assert_eq!(c.text, "The pleural effusion is suggested.");
    assert_eq!(c.model, "standin-model-2025");
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert_eq!(*seen.lock().expect("lock"), deltas);

    // The raw stream gives the same deltas.
    let got: Vec<String> = client
        .chat_stream(&prompt())
        .await
        .expect("stream")
        .map(|d| d.expect("delta"))
        .collect()
        .await;
    assert_eq!(got, deltas);

    for r in server.requests() {
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(r.body["stream"], true);
        assert_eq!(r.body["model"], "medvision-test-model");
        assert_eq!(r.body["max_tokens"], 777);
    }
}

async fn error_of(reply: Reply, timeout_secs: f64) -> LlmError {
    let server = StandIn::start(vec![reply]).await;
    let mut cfg = config(&server.base_url);
    cfg.timeout_secs = timeout_secs;
    let client = LlmClient::new(cfg).expect("client");
    let e = client.chat(&prompt()).await.expect_err("must fail");
    assert_eq!(server.requests().len(), 1, "the client never retries");
    e
}

#[tokio::test]
async fn rate_limit_is_transient() {
    let e = error_of(
        Reply::Error(429, "rate_limit_error", "Rate limit reached for requests"),
        5.0,
    )
    .await;
    assert_eq!(
        e,
        LlmError::RateLimited("Rate limit reached for requests".into())
    );
    assert_eq!(e.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn server_error_is_transient() {
    let e = error_of(
        Reply::Error(500, "server_error", "The server had an error"),
        5.0,
    )
    .await;
    assert!(matches!(e, LlmError::Server { status: 500, .. }), "{e:?}");
    assert!(e.is_transient());
    let e = error_of(Reply::Error(503, "server_error", "overloaded"), 5.0).await;
    assert!(matches!(e, LlmError::Server { status: 503, .. }), "{e:?}");
}

#[tokio::test]
async fn client_errors_and_bad_bodies_are_permanent() {
    let e = error_of(
        Reply::Error(400, "invalid_request_error", "max_tokens is too large"),
        5.0,
    )
    .await;
    assert_eq!(
        e,
        LlmError::Rejected {
            status: 400,
            message: "max_tokens is too large".into()
        }
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    let e = error_of(
        Reply::Error(401, "invalid_request_error", "Incorrect API key"),
        5.0,
    )
    .await;
    assert!(matches!(e, LlmError::Rejected { status: 401, .. }));
    let e = error_of(Reply::Raw("{\"not\": \"a completion\"}"), 5.0).await;
    assert!(matches!(e, LlmError::BadResponse(_)), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Permanent);
}

#[tokio::test]
async fn slow_endpoint_times_out_as_transient() {
    // The stand-in answers after 3 s; only the client's 0.3 s timeout turns
    // that into an error, so `Timeout` proves it fired.
    let e = error_of(
        Reply::Delay(Duration::from_secs(3), Box::new(Reply::Text("late".into()))),
        0.3,
    )
    .await;
    assert_eq!(e, LlmError::Timeout);
    assert!(e.is_transient());
}

#[tokio::test]
async fn stream_cut_by_timeout_is_transient() {
    let server = StandIn::start(vec![Reply::Delay(
        Duration::from_secs(3),
        Box::new(Reply::Sse(vec!["late".into()])),
    )])
    .await;
    let mut cfg = config(&server.base_url);
    cfg.timeout_secs = 0.3;
    let client = LlmClient::new(cfg).expect("client");
    let e = client
        .chat_streaming(&prompt(), &|_| {})
        .await
        .expect_err("must fail");
    assert!(e.is_transient(), "{e:?}");
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = LlmClient::new(config(&format!("http://{addr}/v1"))).expect("client");
    let e = client.chat(&prompt()).await.expect_err("must fail");
    assert!(matches!(e, LlmError::Connect(_)), "{e:?}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn bad_configuration_is_refused_up_front() {
    let mut cfg = config("ftp://x");
    assert!(matches!(
        LlmClient::new(cfg.clone()),
        Err(LlmError::Config(_))
    ));
    cfg.base_url = "http://127.0.0.1:1/v1".into();
    cfg.model = " ".into();
    assert!(matches!(
        LlmClient::new(cfg.clone()),
        Err(LlmError::Config(_))
    ));
    cfg.model = "m".into();
    cfg.timeout_secs = 0.0;
    assert!(matches!(LlmClient::new(cfg), Err(LlmError::Config(_))));
}

fn png(tag: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend([tag; 16]);
    v
}

#[tokio::test]
async fn vision_call_sends_key_image_and_overlay_as_png_data_urls() {
    let server = StandIn::start(vec![Reply::Text("ok".into()), Reply::Text("ok".into())]).await;
    let mut p = prompt();
    p.images = vec![
        PngImage {
            caption: "key image".into(),
            png: png(1),
        },
        PngImage {
            caption: "Grad-CAM overlay for Effusion".into(),
            png: png(2),
        },
    ];
    let mut cfg = config(&server.base_url);
    cfg.supports_images = true;
    LlmClient::new(cfg.clone())
        .expect("client")
        .chat(&p)
        .await
        .expect("completion");
    cfg.supports_images = false;
    LlmClient::new(cfg)
        .expect("client")
        .chat(&p)
        .await
        .expect("completion");

    let reqs = server.requests();
    let parts = reqs[0].body["messages"][1]["content"]
        .as_array()
        .expect("content parts");
    let kinds: Vec<&str> = parts
        .iter()
        .map(|p| p["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["text", "text", "image_url", "text", "image_url"]);
    assert!(parts[0]["text"]
        .as_str()
        .expect("text")
        .contains("Model findings"));
    assert_eq!(parts[1]["text"], "Image: key image");
    assert_eq!(parts[3]["text"], "Image: Grad-CAM overlay for Effusion");
    for (i, tag) in [(2, 1u8), (4, 2u8)] {
        let url = parts[i]["image_url"]["url"].as_str().expect("url");
        let b64 = url
            .strip_prefix("data:image/png;base64,")
            .expect("png data url");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        assert_eq!(bytes, png(tag));
    }
    // A model without vision gets the text only.
    assert!(reqs[1].body["messages"][1]["content"].is_string());
}
