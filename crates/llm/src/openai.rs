//! [`OpenAiCompatible`]: the `Llm` port on an OpenAI-compatible Chat Completions API
//! (`POST {base_url}/chat/completions`): OpenAI itself, vLLM, Ollama, llama.cpp's server.
//!
//! Only the common subset is used (`model`, `messages`, `max_tokens`, `temperature`) so local
//! servers understand it; the system prompt is one system message since prompt caching, where
//! a server has it, is automatic on a stable prefix.

use std::time::Instant;

use async_trait::async_trait;
use bqai_core::Error;
use bqai_core::llm::{Llm, LlmError, LlmErrorKind, LlmInfo, LlmRequest, LlmResponse, LlmUsage};
use bqai_core::model::ComponentHealth;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::json;

use crate::config::{LlmConfig, LlmKind, OPENAI_DEFAULT_BASE_URL};
use crate::http::{AuthHeader, HttpTransport, max_tokens};

/// The OpenAI-compatible Chat Completions adapter.
#[derive(Debug)]
pub struct OpenAiCompatible {
    http: HttpTransport,
    url: String,
    headers: HeaderMap,
    model: String,
    default_max_tokens: u32,
}

impl OpenAiCompatible {
    /// An adapter for `config` (its `kind` is ignored). `model` is required; `api_key` is sent
    /// as `Authorization: Bearer` and may be omitted for a local server.
    pub fn new(config: &LlmConfig) -> Result<Self, Error> {
        let config = LlmConfig {
            kind: LlmKind::Openai,
            ..config.clone()
        };
        config.validate()?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            AuthHeader::bearer(key, "api_key")?.apply(&mut headers);
        }
        Ok(Self {
            http: HttpTransport::new(&config, "openai")?,
            url: format!(
                "{}/chat/completions",
                config.base_url(OPENAI_DEFAULT_BASE_URL).url
            ),
            headers,
            // validate() guarantees a model for this kind.
            model: config.model.clone().unwrap_or_default(),
            default_max_tokens: config.max_tokens,
        })
    }

    fn body(&self, request: &LlmRequest) -> serde_json::Value {
        let system = request.system_text();
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(
            request
                .messages
                .iter()
                .map(|m| json!({"role": m.role.as_str(), "content": m.content})),
        );
        json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens(request.max_tokens, self.default_max_tokens),
            // SQL generation wants the most likely answer, and repeatable answers make the
            // result cache and the tests meaningful.
            "temperature": 0,
        })
    }
}

#[async_trait]
impl Llm for OpenAiCompatible {
    fn info(&self) -> LlmInfo {
        LlmInfo {
            kind: LlmKind::Openai.as_str().into(),
            model: Some(self.model.clone()),
        }
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let started = Instant::now();
        let body = self.body(request);
        let completion: ChatCompletion =
            self.http.post_json(&self.url, &self.headers, &body).await?;
        let choice = completion.choices.into_iter().next();
        let text = choice
            .as_ref()
            .and_then(|c| c.message.content.clone())
            .unwrap_or_default();
        if text.trim().is_empty() {
            tracing::warn!(
                finish_reason = ?choice.and_then(|c| c.finish_reason),
                "chat completion has no text"
            );
            return Err(LlmError::new(
                LlmErrorKind::BadResponse,
                "the language model answered with no text",
            ));
        }
        let usage = completion.usage.unwrap_or_default();
        let cached = usage
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        Ok(LlmResponse {
            text,
            model: completion.model.unwrap_or_else(|| self.model.clone()),
            usage: LlmUsage {
                // OpenAI counts cached tokens inside prompt_tokens; the port counts tokens
                // billed at the full rate separately from cache reads.
                input_tokens: usage.prompt_tokens.saturating_sub(cached),
                output_tokens: usage.completion_tokens,
                cache_read_tokens: cached,
                cache_creation_tokens: 0,
            },
            cost_usd: None,
            latency: started.elapsed(),
        })
    }

    async fn health(&self) -> ComponentHealth {
        // As for the Anthropic adapter: configuration only, no paid probe.
        ComponentHealth::ok(LlmKind::Openai.as_str())
    }

    fn load(&self) -> Option<bqai_core::llm::LlmLoad> {
        Some(self.http.load())
    }
}

#[derive(Debug, Deserialize)]
struct ChatCompletion {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptTokensDetails {
    cached_tokens: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bqai_core::llm::{LlmMessage, PromptBlock};
    use secrecy::SecretString;

    fn adapter() -> OpenAiCompatible {
        OpenAiCompatible::new(&LlmConfig {
            api_key: Some(SecretString::from("sk-proj-do-not-print")),
            model: Some("gpt-test".into()),
            ..LlmConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn debug_never_shows_the_key() {
        let debug = format!("{:?}", adapter());
        assert!(!debug.contains("do-not-print"), "{debug}");
    }

    #[test]
    fn system_blocks_become_one_system_message() {
        let request = LlmRequest {
            system: vec![
                PromptBlock {
                    text: "a".into(),
                    cache: true,
                },
                PromptBlock {
                    text: "b".into(),
                    cache: false,
                },
            ],
            messages: vec![LlmMessage::user("q")],
            max_tokens: 77,
        };
        let body = adapter().body(&request);
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "a\n\nb"})
        );
        assert_eq!(body["messages"][1], json!({"role": "user", "content": "q"}));
        assert_eq!(body["max_tokens"], 77);
        assert_eq!(body["temperature"], 0);
    }
}
