//! BM25-style sparse vectors for the keyword half of hybrid search.
//!
//! Terms are hashed (FNV-1a, 32 bit) into Qdrant sparse-vector indices, so no
//! vocabulary file has to be kept in step with the collection. A document's
//! value for a term is the BM25 term-frequency part
//! `tf·(k1+1) / (tf + k1·(1 − b + b·len/avg_len))`; a query's value is 1 per
//! distinct term. The IDF part is left to Qdrant: the sparse vectors are
//! created with `Modifier::Idf`, so Qdrant multiplies each term by the
//! inverse document frequency it counts over the collection at query time.
//! The dot product is then the classic BM25 score (Qdrant documents this
//! split). Differences from Lucene's BM25: `avg_len` is a fixed constant,
//! not the collection's running mean, and two terms may share a hash bucket
//! (1 in 2³² per pair).
//!
//! Text normalisation: lower-case, split on anything that is not a letter
//! or digit, drop English stop words, fold British spellings used in
//! radiology to American ones (haemorrhage → hemorrhage, oedema → edema,
//! tumour → tumor) and strip a plural `s`, so that "nodules" meets "nodule".

use std::collections::BTreeMap;

/// A sparse vector: strictly increasing indices, one value each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVector {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVector {
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// BM25 parameters. The defaults are the customary k1 = 1.2, b = 0.75, and
/// an average chunk length (in terms, after stop words) of 60, close to the
/// mean of the guideline and abstract chunks this crate writes.
#[derive(Debug, Clone, Copy)]
pub struct Bm25 {
    pub k1: f32,
    pub b: f32,
    pub avg_len: f32,
}

impl Default for Bm25 {
    fn default() -> Self {
        Self {
            k1: 1.2,
            b: 0.75,
            avg_len: 60.0,
        }
    }
}

impl Bm25 {
    pub fn encode_document(&self, text: &str) -> SparseVector {
        let terms = terms(text);
        let len = terms.len() as f32;
        let mut tf: BTreeMap<u32, f32> = BTreeMap::new();
        for t in &terms {
            *tf.entry(hash_term(t)).or_insert(0.0) += 1.0;
        }
        let norm = self.k1 * (1.0 - self.b + self.b * len / self.avg_len.max(1.0));
        let (indices, values) = tf
            .into_iter()
            .map(|(i, f)| (i, f * (self.k1 + 1.0) / (f + norm)))
            .unzip();
        SparseVector { indices, values }
    }

    pub fn encode_query(&self, text: &str) -> SparseVector {
        let mut idx: Vec<u32> = terms(text).iter().map(|t| hash_term(t)).collect();
        idx.sort_unstable();
        idx.dedup();
        let values = vec![1.0; idx.len()];
        SparseVector {
            indices: idx,
            values,
        }
    }
}

/// The normalised terms of `text`, in order, stop words removed.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| normalise(&w.to_lowercase()))
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

fn normalise(word: &str) -> String {
    let mut w = word.to_string();
    for (uk, us) in SPELLINGS {
        if w.contains(uk) {
            w = w.replace(uk, us);
        }
    }
    // Plural `s` only: a full stemmer would merge terms radiologists keep
    // apart (e.g. "calcified" vs "calcification").
    if w.len() > 4
        && w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("us")
        && !w.ends_with("is")
    {
        w.pop();
    }
    w
}

const SPELLINGS: &[(&str, &str)] = &[
    ("haem", "hem"),
    ("oedem", "edem"),
    ("tumour", "tumor"),
    ("oesoph", "esoph"),
    ("paediatr", "pediatr"),
    ("anaesth", "anesth"),
];

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "do", "does",
    "for", "from", "had", "has", "have", "in", "into", "is", "it", "its", "may", "might", "more",
    "most", "no", "not", "of", "on", "or", "should", "such", "than", "that", "the", "their",
    "then", "there", "these", "they", "this", "those", "to", "was", "were", "what", "when",
    "which", "while", "who", "will", "with", "within", "would",
];

/// FNV-1a, 32 bit: stable across runs, platforms and releases, unlike
/// `std`'s hasher, which sparse indices stored on disk need.
fn hash_term(term: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in term.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn british_and_american_spellings_and_plurals_share_terms() {
        assert_eq!(terms("Haemorrhages"), terms("hemorrhage"));
        assert_eq!(terms("oedema tumours"), terms("edema tumor"));
        // "mass" and "status" keep their final s.
        assert_eq!(terms("mass status"), vec!["mass", "status"]);
    }

    #[test]
    fn document_weights_saturate_with_term_frequency_and_shrink_with_length() {
        let bm = Bm25::default();
        let once = bm.encode_document("nodule");
        let thrice = bm.encode_document("nodule nodule nodule");
        assert!(thrice.values[0] > once.values[0]);
        assert!(thrice.values[0] < 3.0 * once.values[0]);
        assert!(thrice.values[0] < bm.k1 + 1.0);
        let long = bm.encode_document(&format!("nodule {}", "lung ".repeat(200)));
        let i = long
            .indices
            .iter()
            .position(|i| *i == once.indices[0])
            .unwrap_or(usize::MAX);
        assert!(long.values[i] < once.values[0]);
    }

    #[test]
    fn query_vectors_are_sorted_unique_and_unweighted() {
        let q = Bm25::default().encode_query("the nodule and the Nodules, solid nodule");
        assert_eq!(q.indices.len(), 2);
        assert!(q.indices.windows(2).all(|w| w[0] < w[1]));
        assert!(q.values.iter().all(|v| *v == 1.0));
        assert!(Bm25::default().encode_query("the of and").is_empty());
    }
}
