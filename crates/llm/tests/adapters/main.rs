//! The three `Llm` adapters against the stand-in API server of bqai-testkit: the HTTP adapters
//! directly, the Claude Code CLI as the real pinned binary pointed at the stand-in.
//!
//! One test binary (not one per adapter) so the suite links once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns

mod anthropic;
mod claude_cli;
mod common;
mod openai;
mod stand_in;
