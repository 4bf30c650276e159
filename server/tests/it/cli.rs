use crate::helpers::*;
use crate::on_both;
use std::process::{Command, Output};

fn medvision(settings: &medvision::settings::Settings, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_medvision"));
    cmd.args(args)
        .env("MEDVISION_DATA_DIR", &settings.data_dir)
        .env_remove("DATABASE_URL");
    if settings.is_postgres() {
        cmd.env("DATABASE_URL", settings.database_url());
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn operator_commands_follow_the_contract(b: Backend) {
    let app = spawn_app(b).await;
    let s = app.settings.clone();
    let o = medvision(&s, &["org", "add", "St Mary's"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = medvision(&s, &["org", "add", "St Mary's"]);
    assert!(!o.status.success(), "duplicate organisation");

    let add = [
        "user",
        "add",
        "--email",
        "Chief@StMarys.example",
        "--password",
        PASSWORD,
        "--role",
        "admin",
        "--org",
        "St Mary's",
    ];
    let o = medvision(&s, &add);
    assert!(o.status.success(), "{}", text(&o));
    let o = medvision(&s, &add);
    assert!(!o.status.success());
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    let o = medvision(
        &s,
        &[
            "user",
            "add",
            "--email",
            "x@y.example",
            "--password",
            PASSWORD,
            "--role",
            "doctor",
            "--org",
            "Nowhere",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("no organisation"), "{}", text(&o));
    let o = medvision(
        &s,
        &[
            "user",
            "add",
            "--email",
            "x@y.example",
            "--password",
            "short",
            "--role",
            "doctor",
            "--org",
            "St Mary's",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("at least 12"), "{}", text(&o));
    let o = medvision(
        &s,
        &[
            "user",
            "add",
            "--email",
            "x@y.example",
            "--password",
            PASSWORD,
            "--role",
            "janitor",
            "--org",
            "St Mary's",
        ],
    );
    assert!(!o.status.success());

    // The created user signs in through the running server.
    let api = app.login("chief@stmarys.example").await;
    assert_eq!(
        api.get("/api/v1/me").await.status(),
        reqwest::StatusCode::OK
    );

    let o = medvision(&s, &["user", "list"]);
    assert!(
        text(&o).contains("chief@stmarys.example\tadmin\tactive\tSt Mary's"),
        "{}",
        text(&o)
    );
    let o = medvision(&s, &["org", "list"]);
    assert!(text(&o).contains("St Mary's\t1 users"), "{}", text(&o));

    let o = medvision(
        &s,
        &[
            "user",
            "add",
            "--email",
            "doc@stmarys.example",
            "--password",
            PASSWORD,
            "--role",
            "doctor",
            "--org",
            "St Mary's",
        ],
    );
    assert!(o.status.success());
    let o = medvision(
        &s,
        &["user", "set-role", "doc@stmarys.example", "radiologist"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = medvision(&s, &["token", "create", "--email", "doc@stmarys.example"]);
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/me", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let me: serde_json::Value = r.json().await.unwrap();
    assert_eq!(me["user"]["role"], "radiologist");

    let o = medvision(&s, &["user", "disable", "doc@stmarys.example"]);
    assert!(o.status.success());
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/me", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        reqwest::StatusCode::UNAUTHORIZED,
        "a disabled user's token stops working"
    );

    let o = medvision(&s, &["audit", "verify"]);
    assert!(o.status.success(), "{}", text(&o));
}

on_both!(operator_commands_follow_the_contract);

#[test]
fn serve_bootstraps_a_demo_admin_with_a_one_time_password() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_medvision"))
        .arg("serve")
        .env("MEDVISION_DATA_DIR", tmp.path())
        .env("MEDVISION_ADDR", "127.0.0.1:0")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = vec![];
    while let Some(Ok(l)) = lines.next() {
        seen.push(l.clone());
        if l.contains("Password") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = seen.join("\n");
    assert!(
        all.contains("MedVision is running at http://127.0.0.1:"),
        "{all}"
    );
    let pw = seen
        .iter()
        .find(|l| l.contains("Password"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(
        pw.len() >= 16,
        "a random password, not a fixed default: {pw}"
    );
    assert!(all.contains("/login"));
}
