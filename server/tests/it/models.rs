//! `medvision models …`: list, import, verify, as an operator runs them.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use candle_core::{Device, Tensor};
use inference::arch::densenet::{DenseNet, DenseNetConfig};

fn models(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medvision"))
        .arg("models")
        .args(args)
        .env("MEDVISION_DATA_DIR", dir)
        .env_remove("MEDVISION_MODELS_DIR")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A DenseNet-121 state dict with torchvision's key names and random values.
fn densenet121_weights(path: &Path, labels: usize) {
    let cfg = DenseNetConfig::densenet121(1, labels);
    let names =
        inference::weights::expected_tensors(|vb| DenseNet::new(&cfg, vb).map(|_| ())).unwrap();
    let tensors: HashMap<String, Tensor> = names
        .into_iter()
        .map(|(n, shape)| {
            let t = if n.ends_with("running_var") {
                Tensor::ones(shape.as_slice(), candle_core::DType::F32, &Device::Cpu).unwrap()
            } else {
                (Tensor::randn(0f32, 1.0, shape.as_slice(), &Device::Cpu).unwrap() * 0.05).unwrap()
            };
            (n, t)
        })
        .collect();
    inference::weights::save_safetensors(&tensors, path).unwrap();
}

#[test]
fn import_list_and_verify_follow_the_contract() {
    let data = tempfile::tempdir().unwrap();
    let o = models(data.path(), &["list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(),
        serde_json::json!([])
    );

    let w = data.path().join("xrv.safetensors");
    densenet121_weights(&w, 3);
    let import = |name: &str, labels: &str, from: &Path| {
        models(
            data.path(),
            &[
                "import",
                "--arch",
                "densenet121",
                "--labels",
                labels,
                "--from",
                from.to_str().unwrap(),
                "--name",
                name,
                "--modality",
                "dx",
                "--body-part",
                "chest",
                "--intended-use",
                "research use only",
            ],
        )
    };
    let o = import("cxr", "Atelectasis,Effusion,Pneumothorax", &w);
    assert!(o.status.success(), "{}", text(&o));

    let o = models(data.path(), &["list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p = &list[0];
    assert_eq!(p["name"], "cxr");
    assert_eq!(p["version"], "1.0.0");
    assert_eq!(p["arch"], "densenet121");
    assert_eq!(p["task"], "classification");
    assert_eq!(p["modality"], "DX");
    assert_eq!(p["body_part"], "CHEST");
    assert_eq!(
        p["labels"],
        serde_json::json!(["Atelectasis", "Effusion", "Pneumothorax"])
    );
    assert_eq!(p["intended_use"], "research use only");
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64);

    let o = models(data.path(), &["verify"]);
    assert!(o.status.success(), "{}", text(&o));

    // Weights for three labels declared as two: the mis-shaped tensor is named.
    let o = import("cxr2", "Atelectasis,Effusion", &w);
    assert!(!o.status.success());
    assert!(text(&o).contains("classifier.weight"), "{}", text(&o));
    assert!(
        !data.path().join("models/cxr2").exists(),
        "nothing half-written"
    );

    // A file that is not there, an architecture that does not exist.
    let o = import("cxr3", "a,b,c", &data.path().join("missing.pth"));
    assert!(!o.status.success());
    assert!(text(&o).contains("missing.pth"), "{}", text(&o));
    let o = models(
        data.path(),
        &[
            "import",
            "--arch",
            "resnet50",
            "--labels",
            "a",
            "--from",
            w.to_str().unwrap(),
            "--name",
            "x",
            "--modality",
            "DX",
            "--body-part",
            "CHEST",
            "--intended-use",
            "x",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown architecture"), "{}", text(&o));

    // A name that would leave the models folder.
    let o = import("../escape", "a,b,c", &w);
    assert!(!o.status.success());
    assert!(text(&o).contains("--name may use"), "{}", text(&o));
    assert!(!data.path().join("escape").exists());

    // A changed byte in the stored weights: verify fails and says which pack.
    let stored = data.path().join("models/cxr/model.safetensors");
    let mut bytes = std::fs::read(&stored).unwrap();
    let n = bytes.len() - 1;
    bytes[n] ^= 1;
    std::fs::write(&stored, bytes).unwrap();
    let o = models(data.path(), &["verify"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("FAIL cxr"), "{}", text(&o));
}
