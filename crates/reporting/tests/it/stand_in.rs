//! A local OpenAI-compatible server speaking the chat-completions wire format:
//! JSON answers, SSE streams (`data: {...}` chunks, `data: [DONE]`), OpenAI
//! error objects, and delays. It records every request it receives.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt as _;
use serde_json::{json, Value};

/// What the server answers to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with a chat.completion object whose message content is this text.
    Text(String),
    /// As `Text`, cut off by the token limit (`finish_reason: "length"`).
    Truncated(String),
    /// 200 `text/event-stream` with one chunk per delta, then `[DONE]`.
    Sse(Vec<String>),
    /// An OpenAI error object with this status.
    Error(u16, &'static str, &'static str),
    /// 200 with this raw body.
    Raw(&'static str),
    /// Waits, then answers.
    Delay(Duration, Box<Reply>),
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone, Default)]
struct State {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

pub struct StandIn {
    pub base_url: String,
    state: State,
}

impl StandIn {
    /// Starts on 127.0.0.1:0; answers `replies` in order (then 500s).
    pub async fn start(replies: Vec<Reply>) -> Self {
        let state = State {
            replies: Arc::new(Mutex::new(replies.into())),
            requests: Arc::default(),
        };
        let s = state.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(s, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            state,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }
}

fn completion(text: &str, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "standin-model-2025",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let c = json!({
        "id": "chatcmpl-standin",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "standin-model-2025",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    format!("data: {c}\n\n")
}

type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;

fn answer(reply: Reply) -> Answer {
    Box::pin(async move {
        match reply {
            Reply::Text(t) => (
                StatusCode::OK,
                [("content-type", "application/json")],
                completion(&t, "stop").to_string(),
            )
                .into_response(),
            Reply::Truncated(t) => (
                StatusCode::OK,
                [("content-type", "application/json")],
                completion(&t, "length").to_string(),
            )
                .into_response(),
            Reply::Sse(deltas) => {
                let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
                events.extend(deltas.iter().map(|d| chunk(json!({"content": d}), None)));
                events.push(chunk(json!({}), Some("stop")));
                events.push("data: [DONE]\n\n".to_string());
                let stream = futures::stream::iter(events).then(|e| async move {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    Ok::<_, Infallible>(Bytes::from(e))
                });
                Response::builder()
                    .status(200)
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-cache")
                    .body(Body::from_stream(stream))
                    .expect("response")
            }
            Reply::Error(status, kind, message) => {
                let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
                (
                    StatusCode::from_u16(status).expect("status"),
                    [("content-type", "application/json")],
                    body.to_string(),
                )
                    .into_response()
            }
            Reply::Raw(b) => {
                (StatusCode::OK, [("content-type", "application/json")], b).into_response()
            }
            Reply::Delay(d, then) => {
                tokio::time::sleep(d).await;
                answer(*then).await
            }
        }
    })
}

async fn handle(s: State, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    s.requests.lock().expect("lock").push(Recorded {
        method,
        path: uri.path().to_string(),
        headers,
        body: json,
    });
    let reply = s
        .replies
        .lock()
        .expect("lock")
        .pop_front()
        .unwrap_or(Reply::Error(500, "server_error", "no scripted reply"));
    answer(reply).await
}
