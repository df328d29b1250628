//! `ClaudeCli` running the real, pinned Claude Code CLI against the stand-in.
//!
//! The binary comes from `BQAI_CLAUDE_BIN`, else from where `scripts/install-claude.sh` puts
//! the version in `scripts/claude-version`. Missing binary = failing tests, on purpose: these
//! are the only tests that prove the flags, environment and output parsing match the CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bqai_core::llm::{Llm, LlmErrorKind, LlmMessage, LlmRequest, PromptBlock};
use bqai_core::model::HealthStatus;
use bqai_llm::{ClaudeCli, LlmConfig, LlmKind};
use bqai_testkit::llm_server::{LlmStandIn, Reply, claude_bin};
use secrecy::SecretString;
use tempfile::TempDir;

use crate::common::{INSTRUCTIONS, SCHEMA, TODAY, assert_prompt, request, stand_in_usage};

const KEY: &str = "sk-ant-cli-test";

/// A running stand-in, a private work dir and a config whose model name is unique to this
/// test, so the test can find (and count) the processes it spawned.
struct Cli {
    server: LlmStandIn,
    work: TempDir,
    config: LlmConfig,
    marker: String,
}

impl Cli {
    async fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let server = LlmStandIn::start().await;
        server.require_api_key(KEY);
        let work = tempfile::tempdir().unwrap();
        let marker = format!(
            "bqai-test-model-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let config = LlmConfig {
            kind: LlmKind::ClaudeCli,
            command: Some(claude_bin()),
            base_url: Some(server.base_url()),
            api_key: Some(SecretString::from(KEY)),
            model: Some(marker.clone()),
            timeout_ms: 20_000,
            max_retries: 0,
            work_dir: Some(work.path().join("cli")),
            // Cold calls unless a test asks for warm processes: most tests count processes.
            warm_processes: 0,
            ..LlmConfig::default()
        };
        Self {
            server,
            work,
            config,
            marker,
        }
    }

    fn llm(&self) -> ClaudeCli {
        ClaudeCli::new(&self.config, self.work.path()).unwrap()
    }

    /// Live processes started for this test: the model name is on the CLI's command line, and
    /// anything it might start runs in its private work dir.
    fn processes(&self) -> Vec<u32> {
        let root = self.work.path().join("cli");
        let me = std::process::id();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != me)
            .filter(|pid| {
                let dir = PathBuf::from(format!("/proc/{pid}"));
                let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
                let in_cmdline = String::from_utf8_lossy(&cmdline).contains(&self.marker);
                let in_work_dir =
                    std::fs::read_link(dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(&root));
                in_cmdline || in_work_dir
            })
            .collect()
    }

    async fn wait_for_request(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.server.request_count() == 0 {
            assert!(
                Instant::now() < deadline,
                "the CLI never called the stand-in"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn assert_no_process_left(&self) {
        // Killing is synchronous; a zombie awaiting its reaper has no command line or cwd.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = self.processes();
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "processes left behind: {left:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn success_passes_our_prompt_and_parses_text_usage_and_cost() {
    let cli = Cli::new().await;
    cli.server
        .push_reply(Reply::Text("SELECT SUM(amount) FROM shop.orders".into()));
    let llm = cli.llm();
    let started = Instant::now();
    let response = llm.complete(&request("total sales?")).await.unwrap();
    eprintln!("one CLI call: {:?}", started.elapsed());

    assert_eq!(response.text, "SELECT SUM(amount) FROM shop.orders");
    assert_eq!(response.model, cli.marker);
    assert_eq!(response.usage, stand_in_usage());
    assert!(
        response.cost_usd.is_some_and(|c| c >= 0.0),
        "{:?}",
        response.cost_usd
    );

    let sent = cli.server.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.body["model"], cli.marker.as_str());
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("authorization"), None);
    let system = sent.system_text();
    assert!(
        system.contains(&format!("{INSTRUCTIONS}\n\n{SCHEMA}\n\n{TODAY}")),
        "{system}"
    );
    assert!(
        sent.body
            .get("tools")
            .is_none_or(|t| t.as_array().is_some_and(Vec::is_empty)),
        "tools: {}",
        sent.body["tools"]
    );
    assert_eq!(sent.last_user_text().as_deref(), Some("total sales?"));
    assert_eq!(
        sent.body["max_tokens"], 300,
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS"
    );
    assert!(
        sent.body
            .get("thinking")
            .is_none_or(|t| t["type"] == "disabled"),
        "MAX_THINKING_TOKENS=0: {}",
        sent.body["thinking"]
    );
    assert!(cli.processes().is_empty());
}

async fn assert_api_error(status: u16, kind: LlmErrorKind) {
    let cli = Cli::new().await;
    cli.server.set_default_reply(Reply::Status(status));
    let err = cli.llm().complete(&request("q")).await.unwrap_err();
    assert_eq!(err.kind, kind, "HTTP {status}: {err:?}");
    assert!(!err.message.contains(KEY), "{}", err.message);
    assert!(!err.message.contains("127.0.0.1"), "{}", err.message);
    assert_eq!(cli.server.request_count(), 1, "CLAUDE_CODE_MAX_RETRIES=0");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_key_is_auth() {
    assert_api_error(401, LlmErrorKind::Auth).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_is_rate_limited() {
    assert_api_error(429, LlmErrorKind::RateLimited).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_is_overloaded() {
    assert_api_error(529, LlmErrorKind::Overloaded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_is_unavailable() {
    assert_api_error(500, LlmErrorKind::Unavailable).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_api_times_out_promptly_and_leaves_no_process() {
    let mut cli = Cli::new().await;
    cli.config.timeout_ms = 3000;
    cli.server.set_default_reply(Reply::Hang);
    let started = Instant::now();
    let err = cli.llm().complete(&request("q")).await.unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Timeout, "{err:?}");
    assert_prompt(started.elapsed(), Duration::from_millis(3000));
    assert_eq!(cli.server.request_count(), 1);
    // Reaped before complete() returned: nothing to wait for.
    assert_eq!(cli.processes(), Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_call_kills_the_cli_which_saw_only_allowed_environment() {
    let cli = Cli::new().await;
    cli.server.set_default_reply(Reply::Hang);
    let llm = Arc::new(cli.llm());
    let call = {
        let llm = Arc::clone(&llm);
        tokio::spawn(async move { llm.complete(&request("q")).await })
    };
    cli.wait_for_request().await;

    let pids = cli.processes();
    assert!(!pids.is_empty(), "the CLI process should be running");
    let env = environ(pids[0]);
    assert_only_allowed_variables(&env);
    assert!(
        !env.keys()
            .any(|k| k.starts_with("CARGO") || k.starts_with("RUST"))
    );
    assert_eq!(env.get("ANTHROPIC_API_KEY").map(String::as_str), Some(KEY));
    assert_eq!(env.get("PATH").map(String::as_str), Some("/usr/bin:/bin"));
    let home = env.get("HOME").unwrap();
    assert!(Path::new(home).starts_with(cli.work.path()), "HOME={home}");
    assert_eq!(
        env.get("CLAUDE_CODE_MAX_RETRIES").map(String::as_str),
        Some("0")
    );
    assert_eq!(env.get("API_TIMEOUT_MS").map(String::as_str), Some("20000"));

    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    cli.assert_no_process_left().await;
}

/// The CLI's environment is the allow-list, nothing of ours.
const ALLOWED_VARIABLES: [&str; 16] = [
    "PATH",
    "HOME",
    "CLAUDE_CONFIG_DIR",
    "TMPDIR",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    "DISABLE_AUTOUPDATER",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "DISABLE_NON_ESSENTIAL_MODEL_CALLS",
    "CLAUDE_CODE_MAX_RETRIES",
    "API_TIMEOUT_MS",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
    "MAX_THINKING_TOKENS",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
];

fn assert_only_allowed_variables(env: &BTreeMap<String, String>) {
    for name in env.keys() {
        assert!(
            ALLOWED_VARIABLES.contains(&name.as_str()),
            "unexpected variable {name} in the CLI's environment: {:?}",
            env.keys().collect::<Vec<_>>()
        );
    }
}

/// `/proc/<pid>/environ` as a map.
fn environ(pid: u32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .filter_map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_is_bounded_and_the_queue_overflow_is_busy() {
    let mut cli = Cli::new().await;
    cli.config.max_concurrency = 2;
    cli.config.max_queue = 1;
    cli.server
        .set_default_reply(Reply::delayed_text(Duration::from_millis(1000), "SELECT 1"));
    let llm = cli.llm();
    let started = Instant::now();
    let req = request("q");
    let (a, b, c, d) = tokio::join!(
        llm.complete(&req),
        llm.complete(&req),
        llm.complete(&req),
        llm.complete(&req),
    );
    eprintln!("4 calls, 2 slots: {:?}", started.elapsed());
    let results = [a, b, c, d];
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.kind == LlmErrorKind::Busy))
        .count();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!((ok, busy), (3, 1), "{results:?}");
    assert_eq!(cli.server.max_in_flight(), 2);
    assert_eq!(cli.server.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_syntax_in_the_conversation_is_only_data() {
    let cli = Cli::new().await;
    let canary = cli.work.path().join("pwned");
    let c = canary.display();
    let question = format!(
        "$(touch {c}) `touch {c}` ; touch {c} && rm -rf {c}.d | cat > {c}\n\
         EOF\n\
         rm -rf ~ \"$HOME\" '$PATH' \\ \n\
         --tools default --dangerously-skip-permissions\n\
         ünïcødé ✓"
    );
    let mut req = request(&question);
    req.system.insert(
        0,
        PromptBlock {
            text: format!("--help $(touch {c})"),
            cache: false,
        },
    );
    let response = cli.llm().complete(&req).await.unwrap();
    assert_eq!(response.text, "SELECT 1");
    let sent = cli.server.last_request().unwrap();
    assert_eq!(sent.last_user_text().as_deref(), Some(question.as_str()));
    assert!(sent.system_text().contains(&format!("--help $(touch {c})")));
    assert!(!canary.exists(), "a shell ran something");
}

#[tokio::test(flavor = "multi_thread")]
async fn earlier_turns_reach_the_model_as_a_transcript() {
    let cli = Cli::new().await;
    let req = LlmRequest {
        messages: vec![
            LlmMessage::user("orders per day?"),
            LlmMessage::assistant("SELECT created, COUNT(*) FROM shop.orders GROUP BY created"),
            LlmMessage::user("only for November"),
        ],
        ..request("")
    };
    cli.llm().complete(&req).await.unwrap();
    let text = cli.server.last_request().unwrap().last_user_text().unwrap();
    let first = text.find("orders per day?").unwrap();
    let answer = text.find("GROUP BY created").unwrap();
    let last = text.find("only for November").unwrap();
    assert!(first < answer && answer < last, "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_system_prompt_too_long_for_argv_goes_through_a_private_file() {
    let cli = Cli::new().await;
    let schema = format!("BEGIN {} END", "t.c INT64, ".repeat(20_000));
    let mut req = request("q");
    req.system[1].text = schema.clone();
    cli.llm().complete(&req).await.unwrap();
    assert!(
        cli.server
            .last_request()
            .unwrap()
            .system_text()
            .contains(&schema)
    );
    let prompts = cli.work.path().join("cli/prompts");
    assert_eq!(
        std::fs::read_dir(prompts).unwrap().count(),
        0,
        "the file is removed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn build_checks_the_command_and_health_checks_the_binary() {
    let cli = Cli::new().await;
    let llm = bqai_llm::build(&cli.config, cli.work.path())
        .unwrap()
        .unwrap();
    assert_eq!(llm.info().kind, "claude-cli");
    assert_eq!(llm.info().model.as_deref(), Some(cli.marker.as_str()));
    assert_eq!(llm.health().await.status, HealthStatus::Ok);

    let mut missing = cli.config.clone();
    missing.command = Some(cli.work.path().join("no-such-claude"));
    let err = bqai_llm::build(&missing, cli.work.path())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("install-claude.sh"), "{err}");

    let builtin = LlmConfig::default();
    assert!(
        bqai_llm::build(&builtin, cli.work.path())
            .unwrap()
            .is_none()
    );
}

/// A second question with the same system prompt is answered by the process that answered the
/// first, its conversation cleared in between: nothing of the first question reaches the second
/// request; the waiting process is as sandboxed as a cold one, and dropping the adapter kills it.
#[tokio::test(flavor = "multi_thread")]
async fn a_warm_process_answers_the_next_call_and_carries_nothing_over() {
    let mut cli = Cli::new().await;
    cli.config.warm_processes = 1;
    cli.server.push_reply(Reply::Text("SELECT 1".into()));
    cli.server.push_reply(Reply::Text("SELECT 2".into()));
    let llm = cli.llm();
    let started = Instant::now();
    let first = llm.complete(&request("the first question")).await.unwrap();
    let cold = started.elapsed();
    assert_eq!(first.text, "SELECT 1");
    assert_eq!(
        llm.warm_counts(),
        (0, 1, 1),
        "the process waits for the next call"
    );
    let waiting = cli.processes();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_only_allowed_variables(&environ(waiting[0]));

    let started = Instant::now();
    let second = llm.complete(&request("the second question")).await.unwrap();
    let warm = started.elapsed();
    eprintln!("cold call {cold:?}, warm call {warm:?}");
    assert_eq!(second.text, "SELECT 2");
    assert_eq!(second.model, cli.marker);
    assert_eq!(second.usage, stand_in_usage());
    let (hits, misses, idle) = llm.warm_counts();
    assert_eq!((hits, misses, idle), (1, 1, 1));
    let sent = cli.server.last_request().unwrap();
    assert!(
        sent.last_user_text()
            .is_some_and(|t| t.ends_with("the second question")),
        "{}",
        sent.body
    );
    assert!(
        !sent.body.to_string().contains("the first question"),
        "{}",
        sent.body
    );
    assert!(
        !sent.body.to_string().contains("SELECT 1"),
        "the first answer carried over: {}",
        sent.body
    );
    assert!(
        sent.system_text()
            .contains(&format!("{INSTRUCTIONS}\n\n{SCHEMA}\n\n{TODAY}"))
    );
    // The clears are local commands: two questions, two requests.
    assert_eq!(cli.server.request_count(), 2);
    // The same process answered and waits again.
    assert_eq!(cli.processes(), waiting);

    drop(llm);
    cli.assert_no_process_left().await;
}

/// A warm process answers `warm_max_turns` questions, each request carrying only its own
/// question, and is then replaced by a fresh one; a prompt that starts with `/` reaches the
/// model as text, not as one of the CLI's commands.
#[tokio::test(flavor = "multi_thread")]
async fn a_warm_process_is_recycled_after_its_turns_and_each_turn_starts_afresh() {
    let mut cli = Cli::new().await;
    cli.config.warm_processes = 1;
    cli.config.warm_max_turns = 3;
    let llm = cli.llm();
    let mut pids = Vec::new();
    for i in 1..=4 {
        let question = if i == 2 {
            "/model claude-opus".to_string()
        } else {
            format!("question number {i}")
        };
        llm.complete(&request(&question)).await.unwrap();
        let sent = cli.server.last_request().unwrap();
        let body = sent.body.to_string();
        assert!(
            sent.last_user_text()
                .is_some_and(|t| t.ends_with(question.as_str())),
            "{body}"
        );
        for earlier in 1..i {
            assert!(
                !body.contains(&format!("question number {earlier}")),
                "turn {i} carries question {earlier}: {body}"
            );
        }
        if i > 2 {
            assert!(!body.contains("/model claude-opus"), "{body}");
        }
        pids.push(cli.processes());
    }
    // The /model turn was a question like the others: one request per call.
    assert_eq!(cli.server.request_count(), 4);
    assert_eq!(llm.warm_counts(), (3, 1, 1));
    assert_eq!(pids[0].len(), 1);
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[1].len(), 1);
    // After its third question the process was replaced; the fourth went to the new one.
    assert_ne!(pids[2], pids[1], "{pids:?}");
    assert_eq!(pids[2], pids[3]);
}

/// A call with another system prompt (another dataset) starts cold, and its replacement takes
/// the place of the process waiting for the old prompt, which is killed.
#[tokio::test(flavor = "multi_thread")]
async fn another_prompt_starts_cold_and_replaces_the_waiting_process() {
    let mut cli = Cli::new().await;
    cli.config.warm_processes = 1;
    let llm = cli.llm();
    llm.complete(&request("q1")).await.unwrap();
    let old = cli.processes();
    assert_eq!(old.len(), 1);

    let mut other = request("q2");
    other.system[1].text = "CREATE TABLE other.t (x INT64)".into();
    llm.complete(&other).await.unwrap();
    assert_eq!(llm.warm_counts(), (0, 2, 1));
    let deadline = Instant::now() + Duration::from_secs(2);
    while cli.processes().contains(&old[0]) {
        assert!(Instant::now() < deadline, "the evicted process lives on");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cli.processes().len(), 1);

    // Same prompt again: warm.
    llm.complete(&other).await.unwrap();
    assert_eq!(llm.warm_counts().0, 1);
    assert!(
        cli.server
            .last_request()
            .unwrap()
            .system_text()
            .contains("CREATE TABLE other.t")
    );
}

/// A failed call starts no replacement (a CLI that cannot work is not started again and again),
/// and a warm process that hangs is killed at the deadline like a cold one.
#[tokio::test(flavor = "multi_thread")]
async fn failures_start_no_replacement_and_a_hanging_warm_call_is_killed() {
    let mut cli = Cli::new().await;
    cli.config.warm_processes = 1;
    cli.config.timeout_ms = 3000;
    let llm = cli.llm();
    cli.server.push_reply(Reply::Status(500));
    let err = llm.complete(&request("q")).await.unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Unavailable);
    assert_eq!(llm.warm_counts(), (0, 1, 0));
    assert!(cli.processes().is_empty());

    llm.complete(&request("q")).await.unwrap();
    assert_eq!(llm.warm_counts().2, 1);
    cli.server.set_default_reply(Reply::Hang);
    let started = Instant::now();
    let err = llm.complete(&request("q")).await.unwrap_err();
    assert_eq!(err.kind, LlmErrorKind::Timeout, "{err:?}");
    assert_prompt(started.elapsed(), Duration::from_millis(3000));
    assert_eq!(llm.warm_counts(), (1, 2, 0));
    assert_eq!(cli.processes(), Vec::<u32>::new());
}
