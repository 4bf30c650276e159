//! Case chat: two websocket clients of one case see each other's messages
//! in order; another organisation can neither subscribe nor post; text is
//! stored as typed and rendered inert; a reconnect with the last seen id
//! receives exactly what it missed; mentions notify; edits within five
//! minutes reach the sockets. Real server, real websockets.

use crate::helpers::{count, spawn_app, Api, Backend, TestApp};
use crate::on_both;
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn token(api: &Api) -> String {
    let r = api
        .post_json("/api/v1/auth/tokens", &json!({"name": "chat test"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_owned()
}

fn request(
    app: &TestApp,
    case: &str,
    after: Option<i64>,
    token: &str,
    origin: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = format!(
        "{}/api/v1/cases/{case}/chat{}",
        app.url.replacen("http://", "ws://", 1),
        after.map(|a| format!("?after={a}")).unwrap_or_default()
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    req
}

async fn connect(app: &TestApp, case: &str, after: Option<i64>, token: &str) -> Socket {
    let (ws, resp) = tokio_tungstenite::connect_async(request(app, case, after, token, None))
        .await
        .expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// The next message frame, as JSON (pings are skipped).
async fn next(ws: &mut Socket) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("no message within 15 s")
            .expect("socket ended")
            .expect("socket error");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// True when no message arrives for a moment (nothing extra was sent).
async fn quiet(ws: &mut Socket) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(700), ws.next()).await {
            Err(_) => return true,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(_) => return false,
        }
    }
}

async fn post(api: &Api, case: &str, body: &str) -> reqwest::Response {
    api.post_json(
        &format!("/api/v1/cases/{case}/messages"),
        &json!({ "body": body }),
    )
    .await
}

async fn chat_between_members(b: Backend) {
    let app = spawn_app(b).await;
    app.two_orgs().await;
    let doctor = app.login("doctor@alpha.example").await;
    let rad = app.login("radiologist@alpha.example").await;
    let outsider = app.login("radiologist@beta.example").await;
    let case = doctor.create_case("PSEUDO-CHAT").await;
    let id = case["id"].as_str().unwrap();
    let (t_doc, t_rad, t_out) = (
        token(&doctor).await,
        token(&rad).await,
        token(&outsider).await,
    );

    // Another organisation cannot subscribe (404 before any upgrade) or post;
    // a page of another site cannot open the socket.
    match tokio_tungstenite::connect_async(request(&app, id, None, &t_out, None)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("outsider subscribed: {:?}", other.map(|(_, r)| r.status())),
    }
    match tokio_tungstenite::connect_async(request(
        &app,
        id,
        None,
        &t_doc,
        Some("http://evil.example"),
    ))
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!(
            "cross-site socket opened: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    assert_eq!(
        post(&outsider, id, "hello?").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        outsider
            .get(&format!("/api/v1/cases/{id}/messages"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let mut a = connect(&app, id, None, &t_doc).await;
    let mut c = connect(&app, id, None, &t_rad).await;
    let xss = "<img src=x onerror=alert(1)> is it a bleed?";
    let bodies = ["Patient is on apixaban.", xss, "Will review at 14:00."];
    for (n, body) in bodies.iter().enumerate() {
        let who = if n == 1 { &rad } else { &doctor };
        let r = post(who, id, body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["body"], *body, "stored as typed");
    }
    let mut ids = Vec::new();
    for ws in [&mut a, &mut c] {
        let got: Vec<Value> = [next(ws).await, next(ws).await, next(ws).await].into();
        assert_eq!(
            got.iter()
                .map(|m| m["body"].as_str().unwrap())
                .collect::<Vec<_>>(),
            bodies,
            "both clients, in order"
        );
        ids = got.iter().map(|m| m["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(got[1]["author_id"], rad_id(&rad).await);
    }
    let page = doctor
        .page(&format!("/cases/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<img src=x"), "rendered inert");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"));

    // A dropped client reconnects with the last id it saw and receives
    // exactly the messages it missed.
    c.close(None).await.unwrap();
    let last = *ids.last().unwrap();
    for body in ["missed one", "missed two"] {
        assert_eq!(post(&doctor, id, body).await.status(), StatusCode::CREATED);
    }
    let mut c = connect(&app, id, Some(last), &t_rad).await;
    assert_eq!(next(&mut c).await["body"], "missed one");
    assert_eq!(next(&mut c).await["body"], "missed two");
    assert!(quiet(&mut c).await, "nothing repeated");
    for _ in 0..2 {
        next(&mut a).await;
    }

    // A mention notifies a colleague on the case, not someone who cannot see it.
    let r = post(
        &doctor,
        id,
        "@radiologist could you look at the left convexity? cc @doctor2",
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["mentions"].as_array().unwrap().len(), 1, "{m}");
    let n: Value = rad.get("/api/v1/notifications").await.json().await.unwrap();
    assert_eq!(n["unread"], 1, "{n}");
    assert_eq!(n["items"][0]["case_id"], case["id"]);
    assert_eq!(n["items"][0]["kind"], "mention");
    let d2 = app.login("doctor2@alpha.example").await;
    let n2: Value = d2.get("/api/v1/notifications").await.json().await.unwrap();
    assert_eq!(n2["unread"], 0, "doctor2 is not on the case");
    let r = rad
        .post_json("/api/v1/notifications/read", &json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let n: Value = rad.get("/api/v1/notifications").await.json().await.unwrap();
    assert_eq!(n["unread"], 0);
    let mention = next(&mut c).await;
    assert_eq!(mention["id"], m["id"]);
    next(&mut a).await;

    // Only the author edits; the sockets see the edit (same id, marked).
    let mid = m["id"].as_i64().unwrap();
    let epath = format!("/api/v1/cases/{id}/messages/{mid}");
    let r = rad.patch_json(&epath, &json!({"body": "hijack"})).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = doctor
        .patch_json(
            &epath,
            &json!({"body": "@radiologist could you look at the right convexity?"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let edited = next(&mut c).await;
    assert_eq!(edited["id"], mid);
    assert!(edited["edited_at"].is_string());
    assert!(edited["body"].as_str().unwrap().contains("right convexity"));

    // Bad input changes nothing.
    let before = count(&app.db, "messages").await;
    assert_eq!(
        post(&doctor, id, "   ").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post(&doctor, id, &"x".repeat(4001)).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(count(&app.db, "messages").await, before);

    // A flood is refused.
    let mut limited = false;
    for n in 0..40 {
        match post(&rad, id, &format!("flood {n}")).await.status() {
            StatusCode::CREATED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                limited = true;
                break;
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert!(limited, "30 messages a minute per user");
    a.close(None).await.ok();
    c.close(None).await.ok();
    app.stop().await;
}

async fn rad_id(api: &Api) -> Value {
    let me: Value = api.get("/api/v1/me").await.json().await.unwrap();
    me["user"]["id"].clone()
}

on_both!(chat_between_members);
