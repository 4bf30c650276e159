//! OpenAI-compatible chat-completions client (async-openai), with error classes
//! a circuit breaker can count.
//!
//! The client makes exactly one HTTP request per call and never retries: retries,
//! backoff and the circuit breaker belong to the pipeline. async-openai 0.43's
//! default transport retries 429, 5xx and connect errors three times (honouring
//! `Retry-After`); the client replaces it with the plain `ReqwestService`, so a
//! failure reaches the breaker at once. A 429 is reported as
//! [`LlmError::RateLimited`]; async-openai does not expose response headers on
//! errors, so `Retry-After` is not read and the breaker's own backoff governs.

use std::time::Duration;

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestMessageContentPartImage,
    ChatCompletionRequestMessageContentPartText, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionRequestUserMessageContentPart,
    CreateChatCompletionRequest, ImageDetail, ImageUrl,
};
use base64::Engine as _;
use futures::{Stream, StreamExt as _};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::types::PngImage;

/// Which request field carries the output-token limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: understood by every OpenAI-compatible server (vLLM,
    /// Ollama, llama.cpp, Azure) and by OpenAI's non-reasoning models.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: required by OpenAI's reasoning models.
    MaxCompletionTokens,
}

/// Endpoint settings. `Debug` never shows the key (`SecretString` redacts it);
/// there is no `Serialize`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LlmConfig {
    /// Base URL of the API, including its version prefix:
    /// `https://api.openai.com/v1`, `http://localhost:11434/v1` (Ollama),
    /// `http://localhost:8000/v1` (vLLM). `/chat/completions` is appended.
    pub base_url: String,
    /// Model id sent in every request.
    pub model: String,
    /// Bearer token; `None` sends no `Authorization` header (local servers).
    pub api_key: Option<SecretString>,
    /// Whole-request limit in seconds (connect, send, and the full response
    /// body, a stream included).
    pub timeout_secs: f64,
    /// TCP connect limit in seconds.
    pub connect_timeout_secs: f64,
    /// Output-token limit per call.
    pub max_tokens: u32,
    /// Which field carries `max_tokens`.
    pub max_tokens_field: MaxTokensField,
    /// Sampling temperature; low by default, reports should not be creative.
    pub temperature: Option<f32>,
    /// The model accepts `image_url` content parts (vision).
    pub supports_images: bool,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            model: String::new(),
            api_key: None,
            timeout_secs: 60.0,
            connect_timeout_secs: 5.0,
            max_tokens: 1500,
            max_tokens_field: MaxTokensField::MaxTokens,
            temperature: Some(0.2),
            supports_images: false,
        }
    }
}

/// Whether a failure should count towards opening a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Timeout, connection failure, 408, 429, 5xx, a broken stream: worth retrying later.
    Transient,
    /// Any other 4xx, an unparseable response, a bad configuration: retrying will not help.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("LLM request timed out")]
    Timeout,
    #[error("could not connect to the LLM endpoint: {0}")]
    Connect(String),
    #[error("LLM endpoint rate limit (429): {0}")]
    RateLimited(String),
    #[error("LLM endpoint server error ({status}): {message}")]
    Server { status: u16, message: String },
    #[error("LLM endpoint refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("network error talking to the LLM endpoint: {0}")]
    Network(String),
    #[error("LLM stream broke: {0}")]
    Stream(String),
    #[error("unusable LLM response: {0}")]
    BadResponse(String),
    #[error("LLM configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// A short, bounded name for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Timeout => "timeout",
            LlmError::Connect(_) => "connect",
            LlmError::RateLimited(_) => "rate_limited",
            LlmError::Server { .. } => "server",
            LlmError::Rejected { .. } => "rejected",
            LlmError::Network(_) => "network",
            LlmError::Stream(_) => "stream",
            LlmError::BadResponse(_) => "bad_response",
            LlmError::Config(_) => "config",
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            LlmError::Timeout
            | LlmError::Connect(_)
            | LlmError::RateLimited(_)
            | LlmError::Server { .. }
            | LlmError::Network(_)
            | LlmError::Stream(_) => ErrorClass::Transient,
            LlmError::Rejected { .. } | LlmError::BadResponse(_) | LlmError::Config(_) => {
                ErrorClass::Permanent
            }
        }
    }

    pub fn is_transient(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// A stable code for logs and stored reports (no endpoint text).
    pub fn code(&self) -> &'static str {
        match self {
            LlmError::Timeout => "timeout",
            LlmError::Connect(_) => "connect",
            LlmError::RateLimited(_) => "rate_limited",
            LlmError::Server { .. } => "server_error",
            LlmError::Rejected { .. } => "rejected",
            LlmError::Network(_) => "network",
            LlmError::Stream(_) => "stream",
            LlmError::BadResponse(_) => "bad_response",
            LlmError::Config(_) => "config",
        }
    }

    fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            LlmError::Timeout
        } else if e.is_connect() {
            LlmError::Connect(e.to_string())
        } else if e.is_builder() {
            LlmError::Config(e.to_string())
        } else {
            LlmError::Network(e.to_string())
        }
    }
}

impl From<OpenAIError> for LlmError {
    fn from(e: OpenAIError) -> Self {
        match e {
            OpenAIError::Reqwest(e) => LlmError::from_reqwest(&e),
            OpenAIError::ApiError(resp) => {
                let status = resp.status_code.as_u16();
                let message = resp.api_error.message;
                match status {
                    408 => LlmError::Timeout,
                    429 => LlmError::RateLimited(message),
                    500..=599 => LlmError::Server { status, message },
                    _ => LlmError::Rejected { status, message },
                }
            }
            OpenAIError::JSONDeserialize(e, _) => LlmError::BadResponse(e.to_string()),
            OpenAIError::StreamError(e) => match *e {
                async_openai::error::StreamError::EventStream(msg) => {
                    if msg.contains("timed out") || msg.contains("timeout") {
                        LlmError::Timeout
                    } else {
                        LlmError::Stream(msg)
                    }
                }
                other => LlmError::BadResponse(other.to_string()),
            },
            OpenAIError::InvalidArgument(msg) => LlmError::Config(msg),
            other => LlmError::BadResponse(other.to_string()),
        }
    }
}

/// async-openai configuration built from [`LlmConfig`] alone: unlike
/// `OpenAIConfig::default()` it reads no `OPENAI_*` environment variables, and
/// it sends no `Authorization` header when there is no key.
#[derive(Debug, Clone)]
struct Endpoint {
    base: String,
    key: SecretString,
    has_key: bool,
}

impl Config for Endpoint {
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if self.has_key {
            if let Ok(mut v) =
                HeaderValue::from_str(&format!("Bearer {}", self.key.expose_secret()))
            {
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
        }
        headers
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }

    fn api_base(&self) -> &str {
        &self.base
    }

    fn api_key(&self) -> &SecretString {
        &self.key
    }
}

/// A chat prompt: one system message, one user message, optional images.
#[derive(Debug, Clone, Default)]
pub struct ChatPrompt {
    pub system: String,
    pub user: String,
    /// Sent as `image_url` parts (base64 PNG data URLs) after the user text,
    /// each preceded by its caption; ignored unless the config says the model
    /// supports images.
    pub images: Vec<PngImage>,
}

/// A finished completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// Model id the endpoint reports having used.
    pub model: String,
    /// "stop", "length", ... when the endpoint says.
    pub finish_reason: Option<String>,
}

/// A stream of text deltas.
pub type TokenStream = std::pin::Pin<Box<dyn Stream<Item = Result<String, LlmError>> + Send>>;

/// OpenAI-compatible chat client. Cheap to clone.
#[derive(Clone)]
pub struct LlmClient {
    client: async_openai::Client<Endpoint>,
    config: LlmConfig,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("base_url", &self.config.base_url)
            .field("model", &self.config.model)
            .finish_non_exhaustive()
    }
}

fn secs(name: &str, v: f64) -> Result<Duration, LlmError> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| LlmError::Config(format!("{name} must be a positive number of seconds")))
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        if config.model.trim().is_empty() {
            return Err(LlmError::Config("model is empty".into()));
        }
        let base = config.base_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(LlmError::Config(
                "base_url must start with http:// or https://".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(secs("timeout_secs", config.timeout_secs)?)
            .connect_timeout(secs("connect_timeout_secs", config.connect_timeout_secs)?)
            .build()
            .map_err(|e| LlmError::Config(e.to_string()))?;
        let (key, has_key) = match &config.api_key {
            Some(k) if !k.expose_secret().is_empty() => (k.clone(), true),
            _ => (SecretString::from(String::new()), false),
        };
        let endpoint = Endpoint { base, key, has_key };
        Ok(Self {
            // No retry layer: one call, one request (see the module docs).
            client: async_openai::Client::build(http.clone(), endpoint)
                .with_http_service(async_openai::middleware::ReqwestService::new(http)),
            config,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Model id from the configuration.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    fn request(&self, prompt: &ChatPrompt, stream: bool) -> CreateChatCompletionRequest {
        let system = ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(prompt.system.clone()),
            name: None,
        });
        let content = if self.config.supports_images && !prompt.images.is_empty() {
            let mut parts = vec![ChatCompletionRequestUserMessageContentPart::Text(
                ChatCompletionRequestMessageContentPartText {
                    text: prompt.user.clone(),
                    prompt_cache_breakpoint: None,
                },
            )];
            for image in &prompt.images {
                parts.push(ChatCompletionRequestUserMessageContentPart::Text(
                    ChatCompletionRequestMessageContentPartText {
                        text: format!("Image: {}", image.caption),
                        prompt_cache_breakpoint: None,
                    },
                ));
                parts.push(ChatCompletionRequestUserMessageContentPart::ImageUrl(
                    ChatCompletionRequestMessageContentPartImage {
                        image_url: ImageUrl {
                            url: png_data_url(&image.png),
                            detail: Some(ImageDetail::High),
                        },
                        prompt_cache_breakpoint: None,
                    },
                ));
            }
            ChatCompletionRequestUserMessageContent::Array(parts)
        } else {
            ChatCompletionRequestUserMessageContent::Text(prompt.user.clone())
        };
        let user = ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content,
            name: None,
        });
        #[allow(deprecated)] // `max_tokens` is what OpenAI-compatible servers read
        let mut req = CreateChatCompletionRequest {
            messages: vec![system, user],
            model: self.config.model.clone(),
            temperature: self.config.temperature,
            stream: stream.then_some(true),
            ..Default::default()
        };
        match self.config.max_tokens_field {
            MaxTokensField::MaxTokens => {
                #[allow(deprecated)]
                {
                    req.max_tokens = Some(self.config.max_tokens);
                }
            }
            MaxTokensField::MaxCompletionTokens => {
                req.max_completion_tokens = Some(self.config.max_tokens);
            }
        }
        req
    }

    /// One non-streaming chat completion.
    pub async fn chat(&self, prompt: &ChatPrompt) -> Result<Completion, LlmError> {
        let start = std::time::Instant::now();
        let r = self.chat_once(prompt).await;
        record("complete", start, &r);
        r
    }

    async fn chat_once(&self, prompt: &ChatPrompt) -> Result<Completion, LlmError> {
        let resp = self
            .client
            .chat()
            .create(self.request(prompt, false))
            .await?;
        if let Some(u) = &resp.usage {
            metrics::counter!("medvision_llm_tokens_total", "kind" => "prompt")
                .increment(u64::from(u.prompt_tokens));
            metrics::counter!("medvision_llm_tokens_total", "kind" => "completion")
                .increment(u64::from(u.completion_tokens));
        }
        let choice = resp
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| LlmError::BadResponse("no choices".into()))?;
        let text = choice
            .message
            .content
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| match choice.message.refusal {
                Some(r) => LlmError::BadResponse(format!("model refused: {r}")),
                None => LlmError::BadResponse("empty message".into()),
            })?;
        Ok(Completion {
            text,
            model: resp.model,
            finish_reason: choice.finish_reason.map(|r| finish_reason_name(&r)),
        })
    }

    /// A streaming chat completion (`stream: true`, SSE) as a stream of text deltas.
    pub async fn chat_stream(&self, prompt: &ChatPrompt) -> Result<TokenStream, LlmError> {
        let stream = self
            .client
            .chat()
            .create_stream(self.request(prompt, true))
            .await?;
        Ok(Box::pin(stream.filter_map(|chunk| async move {
            match chunk {
                Ok(chunk) => {
                    let text: String = chunk
                        .choices
                        .iter()
                        .filter(|c| c.index == 0)
                        .filter_map(|c| c.delta.content.as_deref())
                        .collect();
                    (!text.is_empty()).then_some(Ok(text))
                }
                Err(e) => Some(Err(LlmError::from(e))),
            }
        })))
    }

    /// A streaming chat completion, handing each delta to `on_token` as it
    /// arrives, and returning the assembled text.
    pub async fn chat_streaming(
        &self,
        prompt: &ChatPrompt,
        on_token: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Completion, LlmError> {
        let start = std::time::Instant::now();
        let r = self.chat_streaming_once(prompt, on_token).await;
        record("stream", start, &r);
        r
    }

    async fn chat_streaming_once(
        &self,
        prompt: &ChatPrompt,
        on_token: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Completion, LlmError> {
        let mut stream = self
            .client
            .chat()
            .create_stream(self.request(prompt, true))
            .await?;
        let mut text = String::new();
        let mut model = self.config.model.clone();
        let mut finish_reason = None;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            if !chunk.model.is_empty() {
                model = chunk.model;
            }
            for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
                if let Some(delta) = choice.delta.content.filter(|d| !d.is_empty()) {
                    on_token(&delta);
                    text.push_str(&delta);
                }
                if let Some(r) = choice.finish_reason {
                    finish_reason = Some(finish_reason_name(&r));
                }
            }
        }
        if text.trim().is_empty() {
            return Err(LlmError::BadResponse("empty stream".into()));
        }
        Ok(Completion {
            text,
            model,
            finish_reason,
        })
    }
}

/// Latency and outcome of one call (tokens are counted where the endpoint
/// reports usage: non-streaming responses).
fn record<T>(mode: &'static str, start: std::time::Instant, r: &Result<T, LlmError>) {
    metrics::histogram!("medvision_llm_request_seconds", "mode" => mode)
        .record(start.elapsed().as_secs_f64());
    let outcome = match r {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    metrics::counter!("medvision_llm_requests_total", "mode" => mode, "outcome" => outcome)
        .increment(1);
}

fn finish_reason_name(r: &async_openai::types::chat::FinishReason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{r:?}").to_lowercase())
}

/// `data:image/png;base64,...`
pub fn png_data_url(png: &[u8]) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_key() {
        let cfg = LlmConfig {
            model: "m".into(),
            api_key: Some(SecretString::from("sk-very-secret".to_string())),
            ..LlmConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("sk-very-secret"));
        let client = LlmClient::new(cfg).expect("client");
        assert!(!format!("{client:?}").contains("sk-very-secret"));
    }

    #[test]
    fn config_deserialises_with_defaults_and_a_secret_key() {
        let cfg: LlmConfig = serde_json::from_str(
            r#"{"base_url": "http://localhost:11434/v1", "model": "llama3.1", "api_key": "k", "supports_images": true}"#,
        )
        .expect("config");
        assert_eq!(cfg.max_tokens, 1500);
        assert_eq!(cfg.timeout_secs, 60.0);
        assert!(cfg.supports_images);
        assert_eq!(cfg.api_key.as_ref().map(|k| k.expose_secret()), Some("k"));
    }

    #[test]
    fn error_classes() {
        assert!(LlmError::Timeout.is_transient());
        assert!(LlmError::RateLimited(String::new()).is_transient());
        assert!(!LlmError::BadResponse(String::new()).is_transient());
        assert_eq!(
            LlmError::from(OpenAIError::InvalidArgument("x".into())).class(),
            ErrorClass::Permanent
        );
    }
}
