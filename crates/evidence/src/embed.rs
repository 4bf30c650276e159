//! Sentence embeddings with all-MiniLM-L6-v2 (BERT, 384 dimensions) in candle,
//! computed the way sentence-transformers does: tokens truncated to 256,
//! mean of the last hidden states over real (unmasked) tokens, L2-normalised.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::error::{Error, Result};

/// Width of the embedding vectors.
pub const DIM: usize = 384;
/// sentence-transformers' `max_seq_length` for this model
/// (`sentence_bert_config.json`); the tokenizer.json itself says 128.
const MAX_TOKENS: usize = 256;
/// Texts embedded per forward pass.
pub const BATCH: usize = 32;

const FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("device", &self.device)
            .finish()
    }
}

/// Where the model is looked for: `MEDVISION_EMBEDDER_DIR`, else the folder
/// scripts/fetch-embedder.sh unpacks to.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MEDVISION_EMBEDDER_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("medvision/models/all-minilm-l6-v2")
}

/// Checks that `dir` holds every file the embedder needs.
pub fn check_model_dir(dir: &Path) -> Result<()> {
    for f in FILES {
        if !dir.join(f).is_file() {
            return Err(Error::ModelMissing {
                dir: dir.to_path_buf(),
                missing: f,
            });
        }
    }
    Ok(())
}

impl Embedder {
    /// Loads the model from `dir` onto the CPU.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_on(dir, Device::Cpu)
    }

    pub fn load_on(dir: &Path, device: Device) -> Result<Self> {
        check_model_dir(dir)?;
        let read = |f: &str| std::fs::read(dir.join(f)).map_err(|e| Error::io(dir.join(f), e));
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| Error::Model(format!("config.json: {e}")))?;
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        // Pad to the longest text of a batch, not tokenizer.json's fixed 128:
        // fewer wasted positions, same result since padding is masked out.
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        // Read into memory rather than mmap: the workspace forbids `unsafe`,
        // and 90 MB read once is cheap next to the model's lifetime.
        let vb =
            VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)?;
        let model = BertModel::load(vb, &config)?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// One normalised vector per text, in order. Empty texts are refused:
    /// their embedding would be that of `[CLS] [SEP]`, matching nothing.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
            return Err(Error::InvalidInput(format!("text {i} to embed is empty")));
        }
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            out.extend(self.embed_batch(batch)?);
        }
        Ok(out)
    }

    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        self.embed(&[text])?
            .pop()
            .ok_or_else(|| Error::Model("no embedding returned".into()))
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Result<Tensor> {
            let v: Vec<Tensor> = enc
                .iter()
                .map(|e| Tensor::new(f(e).as_slice(), &self.device))
                .collect::<candle_core::Result<_>>()?;
            Ok(Tensor::stack(&v, 0)?)
        };
        let ids = rows(&|e| e.get_ids().to_vec())?;
        let type_ids = rows(&|e| e.get_type_ids().to_vec())?;
        let mask = rows(&|e| e.get_attention_mask().to_vec())?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        // Mean over real tokens only: padding must not dilute the average.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}
