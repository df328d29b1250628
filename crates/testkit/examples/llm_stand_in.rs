//! Runs the stand-in Anthropic/OpenAI API server by hand, to try an LLM-backed bqai without a
//! real API (what the tests do automatically):
//!
//! ```sh
//! cargo run -p bqai-testkit --example llm_stand_in -- "$(cat reply.txt)"
//! # prints: LLM stand-in listening on http://127.0.0.1:PORT
//! BQAI__LLM__KIND=claude-cli BQAI__LLM__COMMAND=$(scripts/install-claude.sh) \
//!   BQAI__LLM__BASE_URL=http://127.0.0.1:PORT BQAI__LLM__API_KEY=stand-in bqai serve
//! ```
//!
//! Every model request is answered with the text given as the first argument (default: a
//! ```sql block counting orders), streamed as server-sent events when the client streams.
#![allow(clippy::print_stdout)]

use bqai_testkit::llm_server::{LlmStandIn, Reply};

#[tokio::main]
async fn main() {
    let reply = std::env::args().nth(1).unwrap_or_else(|| {
        "```sql\nSELECT COUNT(*) AS orders FROM shop.orders\n```\nExplanation: Counts every order.".into()
    });
    let stand_in = LlmStandIn::start().await;
    stand_in.set_default_reply(Reply::Text(reply));
    println!("LLM stand-in listening on {}", stand_in.base_url());
    let _ = tokio::signal::ctrl_c().await;
    println!("{} model requests served", stand_in.request_count());
}
