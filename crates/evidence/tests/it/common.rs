use std::path::PathBuf;
use std::sync::OnceLock;

use evidence::embed::{check_model_dir, default_model_dir, Embedder};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn corpus_guidelines() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/guidelines")
}

/// The real embedding model, loaded once per test binary. Without it the
/// calling test prints why it did not run and returns; with
/// `MEDVISION_REQUIRE_MODEL=1` (set once scripts/fetch-embedder.sh has run)
/// a missing model fails instead, so a skip can never pass for a pass.
pub fn embedder(test: &str) -> Option<&'static Embedder> {
    static MODEL: OnceLock<Result<Embedder, String>> = OnceLock::new();
    let m = MODEL.get_or_init(|| {
        let dir = default_model_dir();
        check_model_dir(&dir)
            .and_then(|_| Embedder::load(&dir))
            .map_err(|e| e.to_string())
    });
    match m {
        Ok(e) => Some(e),
        Err(why) => {
            if std::env::var("MEDVISION_REQUIRE_MODEL").is_ok_and(|v| v == "1") {
                panic!("{test}: MEDVISION_REQUIRE_MODEL=1 but the model is unavailable: {why}");
            }
            skip_notice(format!(
                "\n*** SKIPPED {test}: embedding model unavailable ({why}). \
                 Run scripts/fetch-embedder.sh to run it. ***\n"
            ));
            None
        }
    }
}

/// A second, independent model instance (for `Evidence`, which owns one).
pub fn load_embedder(test: &str) -> Option<Embedder> {
    embedder(test)?;
    Some(Embedder::load(&default_model_dir()).expect("model loaded once already"))
}

/// Writes past the test harness's output capture (which only takes the
/// `print!` family), so a skipped test is visible in a plain `cargo test`.
pub fn skip_notice(msg: impl AsRef<str>) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(msg.as_ref().as_bytes());
}
