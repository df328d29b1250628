//! The `[llm]` configuration section and its validation.
//!
//! One flat struct serves every adapter so figment can fill it from `bqai.toml` and
//! `BQAI__LLM__*` variables without a tagged enum; [`LlmConfig::validate`] rejects the
//! combinations that make no sense for the chosen kind, at startup rather than on the first
//! question.

use std::path::PathBuf;

use bqai_core::Error;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The public Anthropic API; the key is mandatory there.
pub const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The public OpenAI API; the key is mandatory there.
pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Model asked of the Anthropic API when none is configured: a current, mid-priced model that
/// writes SQL well. The CLI picks its own default instead.
pub const ANTHROPIC_DEFAULT_MODEL: &str = "claude-sonnet-4-5";

/// Which adapter answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LlmKind {
    /// No language model: bqai's built-in planner answers (no adapter is built).
    #[default]
    Builtin,
    /// The Claude Code CLI (`claude -p`), one process per completion.
    ClaudeCli,
    /// The Anthropic Messages API over HTTP.
    Anthropic,
    /// Any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp).
    Openai,
}

impl LlmKind {
    /// The name used in config, `/health` and [`bqai_core::llm::LlmInfo::kind`].
    pub fn as_str(self) -> &'static str {
        match self {
            LlmKind::Builtin => "builtin",
            LlmKind::ClaudeCli => "claude-cli",
            LlmKind::Anthropic => "anthropic",
            LlmKind::Openai => "openai",
        }
    }
}

/// The `[llm]` section.
///
/// Secrets are [`SecretString`]s: `Debug` redacts them and `Serialize` skips them, so an
/// effective-config dump never contains a key (serializing and reading back therefore drops
/// the keys; figment's defaults layer has none to lose).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Which adapter.
    pub kind: LlmKind,
    /// The `claude` executable (claude-cli only). A bare name is looked up on `PATH` when the
    /// adapter is built; default `claude`.
    pub command: Option<PathBuf>,
    /// API root. Anthropic: default [`ANTHROPIC_DEFAULT_BASE_URL`]; OpenAI-compatible: default
    /// [`OPENAI_DEFAULT_BASE_URL`] (include `/v1`); claude-cli: passed as `ANTHROPIC_BASE_URL`.
    pub base_url: Option<String>,
    /// API key (`x-api-key` for Anthropic and the CLI, `Authorization: Bearer` for OpenAI).
    #[serde(skip_serializing)]
    pub api_key: Option<SecretString>,
    /// Bearer token instead of an API key (claude-cli and anthropic: `ANTHROPIC_AUTH_TOKEN`).
    #[serde(skip_serializing)]
    pub auth_token: Option<SecretString>,
    /// Model name; the provider's (or CLI's) default when absent. Required for openai.
    pub model: Option<String>,
    /// Hard limit of one completion, including waiting for a slot and every retry.
    pub timeout_ms: u64,
    /// Completions in flight at once (processes, for the CLI).
    pub max_concurrency: usize,
    /// Callers allowed to wait for a slot; one more gets `Busy` at once.
    pub max_queue: usize,
    /// Output token limit used when a request asks for 0.
    pub max_tokens: u32,
    /// Retries of 429/529/5xx/connection failures (the CLI's `CLAUDE_CODE_MAX_RETRIES`).
    pub max_retries: u32,
    /// Root of the CLI's private home, config and working directory; default
    /// `<data dir>/claude-cli`.
    pub work_dir: Option<PathBuf>,
    /// claude-cli: processes started ahead of the calls that will use them, each with the
    /// system prompt of a recent call (~150 MB of memory each while waiting); 0 = none, every
    /// call starts its own.
    pub warm_processes: usize,
    /// claude-cli: questions one warm process answers (its conversation cleared after each)
    /// before it is replaced by a fresh one.
    pub warm_max_turns: u32,
    /// USD per million tokens per model (`[llm.prices."claude-sonnet-4-5"] input = 3.0,
    /// output = 15.0, cache_read = 0.3`), for the HTTP adapters, whose providers report no
    /// cost; history and analytics then show what each ask cost. The CLI's own reported cost
    /// wins where there is one.
    pub prices: std::collections::BTreeMap<String, bqai_core::llm::ModelPrice>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            kind: LlmKind::Builtin,
            command: None,
            base_url: None,
            api_key: None,
            auth_token: None,
            model: None,
            timeout_ms: 60_000,
            max_concurrency: 4,
            max_queue: 32,
            max_tokens: 1024,
            max_retries: 2,
            work_dir: None,
            warm_processes: 2,
            warm_max_turns: 20,
            prices: std::collections::BTreeMap::new(),
        }
    }
}

// SecretString has no PartialEq (on purpose: comparisons of secrets are rare); config
// equality is still useful in tests of the config loader.
impl PartialEq for LlmConfig {
    fn eq(&self, other: &Self) -> bool {
        fn same(a: &Option<SecretString>, b: &Option<SecretString>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
                _ => false,
            }
        }
        self.kind == other.kind
            && self.command == other.command
            && self.base_url == other.base_url
            && same(&self.api_key, &other.api_key)
            && same(&self.auth_token, &other.auth_token)
            && self.model == other.model
            && self.timeout_ms == other.timeout_ms
            && self.max_concurrency == other.max_concurrency
            && self.max_queue == other.max_queue
            && self.max_tokens == other.max_tokens
            && self.max_retries == other.max_retries
            && self.work_dir == other.work_dir
            && self.warm_processes == other.warm_processes
            && self.warm_max_turns == other.warm_max_turns
            && self.prices == other.prices
    }
}

impl LlmConfig {
    /// Checks the combination of settings for the configured kind.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |msg: String| Err(Error::InvalidRequest(format!("llm: {msg}")));
        if let Some((model, _)) = self.prices.iter().find(|(_, p)| !p.is_valid()) {
            return invalid(format!(
                "prices.{model:?}: every price must be a number of USD per million tokens, at \
                 least 0"
            ));
        }
        if self.kind == LlmKind::Builtin {
            return Ok(());
        }
        if self.timeout_ms == 0 {
            return invalid("timeout_ms must be greater than 0".into());
        }
        if self.max_concurrency == 0 {
            return invalid("max_concurrency must be at least 1".into());
        }
        if self.max_tokens == 0 {
            return invalid("max_tokens must be at least 1".into());
        }
        if self.warm_max_turns == 0 {
            return invalid("warm_max_turns must be at least 1".into());
        }
        let api_key = non_empty(&self.api_key);
        let auth_token = non_empty(&self.auth_token);
        if self.api_key.is_some() && !api_key {
            return invalid("api_key is set but empty".into());
        }
        if self.auth_token.is_some() && !auth_token {
            return invalid("auth_token is set but empty".into());
        }
        if api_key && auth_token {
            return invalid("set either api_key or auth_token, not both".into());
        }
        if let Some(url) = &self.base_url {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return invalid(format!("base_url {url:?} is not an http(s) URL")),
            }
        }
        if matches!(&self.model, Some(m) if m.trim().is_empty()) {
            return invalid("model is set but empty".into());
        }
        match self.kind {
            LlmKind::Builtin => Ok(()),
            LlmKind::ClaudeCli => {
                // The CLI runs with a private, empty config directory, so it has no login of
                // its own: without a key or token every call would fail with "not logged in".
                if !api_key && !auth_token {
                    return invalid(
                        "kind = \"claude-cli\" needs api_key (ANTHROPIC_API_KEY) or auth_token \
                         (ANTHROPIC_AUTH_TOKEN)"
                            .into(),
                    );
                }
                Ok(())
            }
            LlmKind::Anthropic => {
                if !api_key && !auth_token && self.base_url(ANTHROPIC_DEFAULT_BASE_URL).is_public {
                    return invalid(format!(
                        "kind = \"anthropic\" needs api_key or auth_token for {ANTHROPIC_DEFAULT_BASE_URL}"
                    ));
                }
                Ok(())
            }
            LlmKind::Openai => {
                if auth_token {
                    return invalid(
                        "auth_token applies to claude-cli and anthropic; for openai set api_key"
                            .into(),
                    );
                }
                if !api_key && self.base_url(OPENAI_DEFAULT_BASE_URL).is_public {
                    return invalid(format!(
                        "kind = \"openai\" needs api_key for {OPENAI_DEFAULT_BASE_URL}"
                    ));
                }
                if self.model.is_none() {
                    return invalid(
                        "kind = \"openai\" needs model (e.g. the name your server serves)".into(),
                    );
                }
                Ok(())
            }
        }
    }

    /// The configured API root without a trailing slash, or `default`.
    pub(crate) fn base_url(&self, default: &str) -> BaseUrl {
        match &self.base_url {
            Some(url) => {
                let url = url.trim_end_matches('/').to_string();
                BaseUrl {
                    is_public: url == default,
                    url,
                }
            }
            None => BaseUrl {
                url: default.to_string(),
                is_public: true,
            },
        }
    }
}

/// An API root and whether it is the provider's public endpoint (where keys are mandatory).
pub(crate) struct BaseUrl {
    pub(crate) url: String,
    pub(crate) is_public: bool,
}

fn non_empty(secret: &Option<SecretString>) -> bool {
    secret
        .as_ref()
        .is_some_and(|s| !s.expose_secret().trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The binary feeds this through figment (TOML and env); JSON exercises the same serde
    // impls without a TOML parser in this crate.
    fn parse(json: &str) -> Result<LlmConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_builtin_and_bounded() {
        let c = parse("{}").unwrap();
        assert_eq!(c, LlmConfig::default());
        assert_eq!(c.kind, LlmKind::Builtin);
        assert_eq!(c.timeout_ms, 60_000);
        assert_eq!(c.max_concurrency, 4);
        assert_eq!(c.max_queue, 32);
        assert_eq!(c.max_tokens, 1024);
        assert_eq!(c.max_retries, 2);
        c.validate().unwrap();
    }

    #[test]
    fn kinds_are_kebab_case_and_unknown_fields_are_refused() {
        for (text, kind) in [
            ("builtin", LlmKind::Builtin),
            ("claude-cli", LlmKind::ClaudeCli),
            ("anthropic", LlmKind::Anthropic),
            ("openai", LlmKind::Openai),
        ] {
            let c = parse(&format!(r#"{{"kind":"{text}"}}"#)).unwrap();
            assert_eq!(c.kind, kind);
            assert_eq!(kind.as_str(), text);
        }
        assert!(parse(r#"{"kind":"claude_cli"}"#).is_err());
        assert!(parse(r#"{"api_keys":"x"}"#).is_err());
    }

    #[test]
    fn prices_are_per_model_and_must_be_non_negative() {
        let c = parse(
            r#"{"kind":"anthropic","api_key":"k","prices":{"claude-sonnet-4-5":{"input":3.0,"output":15.0,"cache_read":0.3}}}"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.prices["claude-sonnet-4-5"].cache_read, Some(0.3));
        let negative = parse(r#"{"prices":{"m":{"input":-1.0,"output":1.0}}}"#).unwrap();
        let err = negative.validate().unwrap_err().to_string();
        assert!(err.contains("prices.\"m\""), "{err}");
        assert!(parse(r#"{"prices":{"m":{"input":1.0,"output":1.0,"cached":1.0}}}"#).is_err());
        assert!(
            parse(r#"{"prices":{"m":{"input":1.0}}}"#).is_err(),
            "output is required"
        );
    }

    #[test]
    fn secrets_are_neither_printed_nor_serialized() {
        let c = parse(
            r#"{"kind":"anthropic","api_key":"sk-ant-very-secret","auth_token":"tok-very-secret"}"#,
        )
        .unwrap();
        assert_eq!(
            c.api_key.as_ref().map(|k| k.expose_secret()),
            Some("sk-ant-very-secret")
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("very-secret"), "{json}");
    }

    #[test]
    fn validation_explains_missing_credentials_and_bad_values() {
        let err = |json: &str| parse(json).unwrap().validate().unwrap_err().to_string();
        assert!(err(r#"{"kind":"anthropic"}"#).contains("api_key"));
        assert!(err(r#"{"kind":"openai","model":"m"}"#).contains("api_key"));
        assert!(err(r#"{"kind":"openai","api_key":"k"}"#).contains("model"));
        assert!(err(r#"{"kind":"claude-cli"}"#).contains("ANTHROPIC_API_KEY"));
        assert!(err(r#"{"kind":"anthropic","api_key":"k","auth_token":"t"}"#).contains("not both"));
        assert!(err(r#"{"kind":"anthropic","api_key":"k","timeout_ms":0}"#).contains("timeout_ms"));
        assert!(
            err(r#"{"kind":"anthropic","api_key":"k","max_concurrency":0}"#)
                .contains("max_concurrency")
        );
        assert!(
            err(r#"{"kind":"anthropic","api_key":"k","base_url":"ftp://x"}"#).contains("base_url")
        );
        assert!(err(r#"{"kind":"anthropic","api_key":"  "}"#).contains("empty"));
        // A local server needs no key.
        parse(r#"{"kind":"openai","base_url":"http://localhost:11434/v1","model":"llama3"}"#)
            .unwrap()
            .validate()
            .unwrap();
        parse(r#"{"kind":"anthropic","base_url":"http://127.0.0.1:9/"}"#)
            .unwrap()
            .validate()
            .unwrap();
    }
}
