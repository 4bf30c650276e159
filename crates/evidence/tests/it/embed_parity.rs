//! The candle embedder against sentence-transformers' own output
//! (fixtures/embeddings/reference.json, made by make_reference.py there).

use serde::Deserialize;

use crate::common::{embedder, fixtures};

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn reference() -> Reference {
    let text = std::fs::read_to_string(fixtures().join("embeddings/reference.json"))
        .expect("reference vectors are committed");
    serde_json::from_str(&text).expect("reference.json parses")
}

#[test]
fn embeddings_match_sentence_transformers_within_1e4_cosine() {
    let Some(model) = embedder("embeddings_match_sentence_transformers_within_1e4_cosine") else {
        return;
    };
    let r = reference();
    assert!(r.sentences.len() >= 8);
    let refs: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let got = model.embed(&refs).expect("embeds");
    assert_eq!(got.len(), r.vectors.len());
    for (i, (g, want)) in got.iter().zip(&r.vectors).enumerate() {
        assert_eq!(g.len(), 384);
        let c = cosine(g, want);
        assert!(
            1.0 - c < 1e-4,
            "sentence {i} ({:?}): cosine {c} to the reference",
            r.sentences[i]
        );
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "sentence {i} norm {norm}");
    }
}

#[test]
fn a_sentence_embeds_the_same_alone_and_padded_in_a_batch() {
    let Some(model) = embedder("a_sentence_embeds_the_same_alone_and_padded_in_a_batch") else {
        return;
    };
    let short = "No pneumothorax.";
    let long = "Large left pleural effusion with contralateral mediastinal shift and \
                compressive atelectasis of the left lower lobe.";
    let alone = model.embed_one(short).expect("embeds");
    let batch = model.embed(&[long, short]).expect("embeds");
    // In the batch the short sentence is padded to the long one's length; a
    // pooling that ignored the attention mask would move it.
    assert!(1.0 - cosine(&alone, &batch[1]) < 1e-5);
    assert!(cosine(&batch[0], &batch[1]) < 0.9);
}

#[test]
fn empty_text_is_refused() {
    let Some(model) = embedder("empty_text_is_refused") else {
        return;
    };
    let err = model
        .embed(&["fine", "  "])
        .expect_err("empty text refused");
    assert!(matches!(err, evidence::Error::InvalidInput(_)), "{err}");
}
