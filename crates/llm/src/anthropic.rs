//! [`AnthropicApi`]: the `Llm` port on the Anthropic Messages API (`POST /v1/messages`).
//!
//! Non-streaming: bqai needs the whole SQL before it can check it, so streaming would only add
//! parsing. The system prompt goes as text blocks with `cache_control` on the last block the
//! caller marked cacheable, so the instructions and schema are billed at the cache rate on
//! repeat questions.

use std::time::Instant;

use async_trait::async_trait;
use bqai_core::Error;
use bqai_core::llm::{Llm, LlmError, LlmErrorKind, LlmInfo, LlmRequest, LlmResponse, LlmUsage};
use bqai_core::model::ComponentHealth;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::json;

use crate::config::{ANTHROPIC_DEFAULT_BASE_URL, ANTHROPIC_DEFAULT_MODEL, LlmConfig, LlmKind};
use crate::http::{AuthHeader, HttpTransport, max_tokens};

/// The API version the request and response shapes below follow.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// The Anthropic Messages API adapter.
#[derive(Debug)]
pub struct AnthropicApi {
    http: HttpTransport,
    url: String,
    headers: HeaderMap,
    configured_model: Option<String>,
    model: String,
    default_max_tokens: u32,
}

impl AnthropicApi {
    /// An adapter for `config` (its `kind` is ignored). Sends `x-api-key` when `api_key` is
    /// set, `Authorization: Bearer` when `auth_token` is; asks for
    /// [`ANTHROPIC_DEFAULT_MODEL`] when no model is configured.
    pub fn new(config: &LlmConfig) -> Result<Self, Error> {
        let config = LlmConfig {
            kind: LlmKind::Anthropic,
            ..config.clone()
        };
        config.validate()?;
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            AuthHeader::api_key("x-api-key", key)?.apply(&mut headers);
        } else if let Some(token) = &config.auth_token {
            AuthHeader::bearer(token, "auth_token")?.apply(&mut headers);
        }
        Ok(Self {
            http: HttpTransport::new(&config, "anthropic")?,
            url: format!(
                "{}/v1/messages",
                config.base_url(ANTHROPIC_DEFAULT_BASE_URL).url
            ),
            headers,
            model: config
                .model
                .clone()
                .unwrap_or_else(|| ANTHROPIC_DEFAULT_MODEL.to_string()),
            configured_model: config.model.clone(),
            default_max_tokens: config.max_tokens,
        })
    }

    fn body(&self, request: &LlmRequest) -> serde_json::Value {
        let last_cached = request.system.iter().rposition(|b| b.cache);
        let system: Vec<_> = request
            .system
            .iter()
            .enumerate()
            .map(|(i, block)| {
                let mut b = json!({"type": "text", "text": block.text});
                if Some(i) == last_cached {
                    b["cache_control"] = json!({"type": "ephemeral"});
                }
                b
            })
            .collect();
        let messages: Vec<_> = request
            .messages
            .iter()
            .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": max_tokens(request.max_tokens, self.default_max_tokens),
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = serde_json::Value::Array(system);
        }
        body
    }
}

#[async_trait]
impl Llm for AnthropicApi {
    fn info(&self) -> LlmInfo {
        LlmInfo {
            kind: LlmKind::Anthropic.as_str().into(),
            model: self.configured_model.clone(),
        }
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let started = Instant::now();
        let body = self.body(request);
        let message: MessagesResponse =
            self.http.post_json(&self.url, &self.headers, &body).await?;
        let text: String = message
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect();
        if text.trim().is_empty() {
            tracing::warn!(stop_reason = ?message.stop_reason, "Anthropic answer has no text");
            return Err(LlmError::new(
                LlmErrorKind::BadResponse,
                "the language model answered with no text",
            ));
        }
        let usage = message.usage.unwrap_or_default();
        Ok(LlmResponse {
            text,
            model: message.model.unwrap_or_else(|| self.model.clone()),
            usage: LlmUsage {
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cache_read_tokens: usage.cache_read_input_tokens.unwrap_or(0),
                cache_creation_tokens: usage.cache_creation_input_tokens.unwrap_or(0),
            },
            cost_usd: None,
            latency: started.elapsed(),
        })
    }

    async fn health(&self) -> ComponentHealth {
        // Configuration was checked when the adapter was built; a probe request would be a
        // paid call (or a rate-limit hit) on every health check.
        ComponentHealth::ok(LlmKind::Anthropic.as_str())
    }

    fn load(&self) -> Option<bqai_core::llm::LlmLoad> {
        Some(self.http.load())
    }
}

#[derive(Debug, Deserialize)]
struct MessagesResponse {
    model: Option<String>,
    #[serde(default)]
    content: Vec<ContentBlock>,
    usage: Option<Usage>,
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bqai_core::llm::{LlmMessage, PromptBlock};
    use secrecy::SecretString;

    fn adapter() -> AnthropicApi {
        AnthropicApi::new(&LlmConfig {
            api_key: Some(SecretString::from("sk-ant-do-not-print")),
            ..LlmConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn debug_never_shows_the_key() {
        let debug = format!("{:?}", adapter());
        assert!(!debug.contains("do-not-print"), "{debug}");
        assert!(debug.contains("anthropic"), "{debug}");
    }

    #[test]
    fn only_the_last_cacheable_block_carries_cache_control() {
        let request = LlmRequest {
            system: vec![
                PromptBlock {
                    text: "instructions".into(),
                    cache: true,
                },
                PromptBlock {
                    text: "schema".into(),
                    cache: true,
                },
                PromptBlock {
                    text: "today".into(),
                    cache: false,
                },
            ],
            messages: vec![
                LlmMessage::user("q1"),
                LlmMessage::assistant("a1"),
                LlmMessage::user("q2"),
            ],
            max_tokens: 0,
        };
        let body = adapter().body(&request);
        assert_eq!(body["model"], ANTHROPIC_DEFAULT_MODEL);
        assert_eq!(body["max_tokens"], 1024);
        assert!(body["system"][0].get("cache_control").is_none());
        assert_eq!(body["system"][1]["cache_control"]["type"], "ephemeral");
        assert!(body["system"][2].get("cache_control").is_none());
        assert_eq!(body["messages"][1]["role"], "assistant");
        assert_eq!(body["messages"][2]["content"], "q2");
    }
}
