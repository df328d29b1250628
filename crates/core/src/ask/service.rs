//! The ask use case: question → (schema answer | generated, guarded, dry-run, executed SQL).
//!
//! ```text
//! question → intent ─ schema question → answered from the catalog, no SQL
//!                   └ data question → relevant tables → question cache?
//!   → generator (LLM prompt or built-in planner) → SQL → plan (guard, dry run, scope,
//!     statement type, byte cap) ─ failure → fed back to the generator, up to N attempts
//!   → run (row cap, timeout, result cache) → answer (SQL, rows, explanation, hints) → history
//! ```
//!
//! Generated SQL is data until [`QueryService::plan`] has passed it: the generator's output
//! reaches the warehouse only through the same guard and dry run as SQL sent by a person.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::CatalogService;
use crate::conversation::{self, Conversation, Entities, ResultSummary, Suggestion, Turn};
use crate::error::{Error, Result};
use crate::history::{AskRecord, HistoryEntry, HistoryFilter, QueryKind, QueryStatus};
use crate::model::{
    PageRequest, Principal, QueryOutcome, QueryRequest, Role, Table, TableRef, TableSummary,
};
use crate::ports::{Cache, ConversationStore, HistoryStore};
use crate::query::{QueryService, RecordMeta, elapsed_ms, is_valid_dataset_id, safe_message};
use crate::result_cache::{KEY_PREFIX, dataset_tag};
use crate::semantic::{Example, SemanticModel};

use super::generator::{
    FailedAttempt, GenerationContext, GenerationOutcome, GeneratorInfo, SqlGenerator,
};
use super::hints::hints;
use super::intent::{Intent, classify};
use super::relevance::{relevant_tables, similar_examples};
use super::text::normalize_question;

/// Bounds and knobs of the ask pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct AskSettings {
    /// Generator attempts per question (each failure is fed back), at least 1.
    pub max_attempts: u32,
    /// Longest question accepted, in characters.
    pub max_question_chars: usize,
    /// Token budget for the schema shown to an LLM; larger datasets are narrowed.
    pub schema_token_budget: usize,
    /// Few-shot examples per prompt.
    pub max_examples: usize,
    /// How many recent successful asks in history are considered as examples.
    pub history_examples_scan: u32,
    /// How long a question's SQL stays in the question cache.
    pub question_cache_ttl: Duration,
    /// The dataset questions are about when the request names none.
    pub default_dataset: Option<String>,
    /// Most tables of one dataset loaded to answer a question.
    pub max_tables: u32,
    /// Most earlier turns of a conversation handed to the generator (the newest ones).
    pub max_conversation_turns: usize,
    /// The day questions are asked on ("last month", "this year" are read against it);
    /// `None`: today in UTC. Set for tests and demos (the demo data ends on 2025-12-31).
    pub today: Option<chrono::NaiveDate>,
}

/// How conversations are kept (see [`AskService::with_conversations`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSettings {
    /// How long an idle conversation lives (every turn extends it); the store enforces it,
    /// this is what [`AskService::expires_at`] reports.
    pub ttl: Duration,
    /// Most turns a conversation keeps (the oldest are dropped).
    pub max_turns: usize,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            max_turns: 50,
        }
    }
}

impl Default for AskSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            max_question_chars: 4000,
            schema_token_budget: 6000,
            max_examples: 3,
            history_examples_scan: 200,
            question_cache_ttl: Duration::from_secs(24 * 3600),
            default_dataset: None,
            max_tables: 200,
            max_conversation_turns: 10,
            today: None,
        }
    }
}

/// A question.
#[derive(Debug, Clone, PartialEq)]
pub struct AskRequest {
    /// The question in plain language.
    pub question: String,
    /// The dataset it is about (else the configured default, else the only one visible).
    pub dataset_id: Option<String>,
    /// Run the SQL (`false`: generate, guard and dry-run only).
    pub execute: bool,
    /// Row cap for the result.
    pub max_rows: Option<u64>,
    /// Query timeout.
    pub timeout: Option<Duration>,
    /// Whether cached results and cached SQL may answer.
    pub use_cache: bool,
    /// The conversation this question continues (its turns give the context).
    pub conversation_id: Option<String>,
    /// The id of the request that carries the question (an HTTP `X-Request-Id`, a WebSocket
    /// message's `request_id`): the answer's `request_id`, so one id names the ask in the
    /// response, the logs and the audit log. Without one, the answer is named by the
    /// history id of its query.
    pub request_id: Option<String>,
}

impl AskRequest {
    /// A question with defaults for everything else (execute, caches on).
    pub fn new(question: impl Into<String>) -> Self {
        Self {
            question: question.into(),
            dataset_id: None,
            execute: true,
            max_rows: None,
            timeout: None,
            use_cache: true,
            conversation_id: None,
            request_id: None,
        }
    }
}

/// The stages of the pipeline, reported to an [`AskObserver`] as they start.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AskStage {
    /// Classifying the question and gathering the schema.
    Understanding,
    /// Asking the generator for SQL.
    Generating,
    /// Guard and dry run.
    Validating,
    /// Cost estimate known.
    Estimating,
    /// Waiting in the query queue for a free slot (after `running`, when the warehouse is
    /// busy; `running` follows once the query leaves the queue).
    Queued,
    /// Running the query.
    Running,
    /// Feeding an error back to the generator.
    Correcting,
}

/// Receives progress of one ask (the WebSocket streams these); the default ignores it.
///
/// For a question answered with SQL the calls come in this order: `stage(Understanding)`,
/// `stage(Generating)`, `stage(Validating)` (then `stage(Correcting)` and again
/// `Generating`/`Validating` for each retry), `planned` once the SQL passed every check,
/// `stage(Estimating)`, `estimated`, and `stage(Running)` unless it is a dry run — so a client
/// sees the SQL and its cost before the warehouse is asked to run anything.
pub trait AskObserver: Send + Sync {
    /// A stage started; `attempt` is the generator attempt (1-based) where it applies.
    fn stage(&self, stage: AskStage, attempt: Option<u32>);

    /// The SQL that will run (after the guard's rewrite) passed the guard, the dry run and
    /// the caps.
    fn planned(&self, _sql: &str, _explanation: &str) {}

    /// The dry run's estimate for the planned SQL.
    fn estimated(&self, _bytes_processed: u64, _cost_usd: f64) {}

    /// Where to report the query's place in the query queue while it waits there: a watch
    /// told each new position (1 = next), then 0 when the query leaves the queue to run.
    /// `None` (the default): nobody listens.
    fn queue_watch(&self) -> Option<crate::model::QueueWatch> {
        None
    }
}

struct NoObserver;
impl AskObserver for NoObserver {
    fn stage(&self, _: AskStage, _: Option<u32>) {}
}

/// What a schema question is answered with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CatalogAnswer {
    /// The tables of the dataset.
    Tables {
        /// The dataset.
        dataset: String,
        /// Its tables.
        tables: Vec<TableSummary>,
    },
    /// One table with its schema.
    Table {
        /// The table.
        table: Box<Table>,
    },
}

/// LLM spend of one ask.
pub type AskUsage = AskRecord;

/// The answer to a question.
#[derive(Debug, Clone)]
pub struct AskAnswer {
    /// Id of this ask: [`AskRequest::request_id`] when given, else the history id of its
    /// query when one ran.
    pub request_id: String,
    /// The question as asked.
    pub question: String,
    /// The dataset it was answered on.
    pub dataset: String,
    /// The SQL as run (after the guard's rewrite); `None` for schema questions.
    pub sql: Option<String>,
    /// A short explanation for the person who asked.
    pub explanation: String,
    /// Generator attempts (0 for schema questions and question-cache hits).
    pub attempts: u32,
    /// The generator in use.
    pub generator: GeneratorInfo,
    /// The query's outcome (rows, or the dry run's estimate); `None` for schema questions.
    pub result: Option<QueryOutcome>,
    /// The answer to a schema question.
    pub catalog: Option<CatalogAnswer>,
    /// Optimisation hints.
    pub hints: Vec<String>,
    /// The SQL came from the question cache.
    pub from_cache: bool,
    /// What generating cost.
    pub usage: AskUsage,
    /// The conversation the question belongs to, when it belongs to one.
    pub conversation_id: Option<String>,
    /// Follow-up questions that make sense after this answer (2–4 when there are any).
    pub suggestions: Vec<Suggestion>,
}

/// What the question cache stores.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedSql {
    sql: String,
    explanation: String,
    /// The generator's entities and state, so a cached answer can be followed up too.
    #[serde(default)]
    memo: Memo,
}

/// What a turn remembers beyond its SQL: the generator's entities and state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Memo {
    entities: Option<Entities>,
    state: Option<serde_json::Value>,
}

/// Runs the ask pipeline.
pub struct AskService {
    catalog: CatalogService,
    queries: QueryService,
    generator: Arc<dyn SqlGenerator>,
    history: Arc<dyn HistoryStore>,
    cache: Option<Arc<dyn Cache>>,
    semantic: HashMap<String, Arc<SemanticModel>>,
    /// A hash of each semantic model, computed once: part of the question-cache key, so
    /// editing a model invalidates the SQL generated with the old one.
    semantic_fingerprints: HashMap<String, String>,
    settings: AskSettings,
    conversations: Option<(Arc<dyn ConversationStore>, ConversationSettings)>,
}

impl AskService {
    /// An ask service. `semantic` holds one model per dataset; `cache` (the same cache as
    /// query results) backs the question cache when present.
    pub fn new(
        catalog: CatalogService,
        queries: QueryService,
        generator: Arc<dyn SqlGenerator>,
        history: Arc<dyn HistoryStore>,
        cache: Option<Arc<dyn Cache>>,
        semantic: Vec<SemanticModel>,
        settings: AskSettings,
    ) -> Self {
        let semantic_fingerprints = semantic
            .iter()
            .map(|m| {
                let text = serde_json::to_string(m).unwrap_or_default();
                (
                    m.dataset.clone(),
                    hex::encode(Sha256::digest(text.as_bytes())),
                )
            })
            .collect();
        Self {
            catalog,
            queries,
            generator,
            history,
            cache,
            semantic: semantic
                .into_iter()
                .map(|m| (m.dataset.clone(), Arc::new(m)))
                .collect(),
            semantic_fingerprints,
            settings,
            conversations: None,
        }
    }

    /// Keeps conversations in `store`: asks may then name a `conversation_id`, and the
    /// conversation methods ([`AskService::create_conversation`] …) work.
    #[must_use]
    pub fn with_conversations(
        mut self,
        store: Arc<dyn ConversationStore>,
        settings: ConversationSettings,
    ) -> Self {
        self.conversations = Some((store, settings));
        self
    }

    fn conversation_store(&self) -> Result<&(Arc<dyn ConversationStore>, ConversationSettings)> {
        self.conversations
            .as_ref()
            .ok_or_else(|| Error::Unavailable {
                what: "the conversation store".into(),
                source: None,
            })
    }

    /// Starts a conversation owned by `principal`. Its dataset is `dataset` (checked: it must
    /// exist and be readable), else the one questions default to when that is unambiguous,
    /// else it is set by the first ask.
    pub async fn create_conversation(
        &self,
        principal: &Principal,
        dataset: Option<&str>,
    ) -> Result<Conversation> {
        let (store, _) = self.conversation_store()?;
        let dataset = match dataset {
            Some(ds) => Some(self.resolve_dataset(Some(ds), principal).await?),
            None => self.resolve_dataset(None, principal).await.ok(),
        };
        let conversation = Conversation::new(principal.id.clone(), dataset);
        store.create_conversation(&conversation).await?;
        Ok(conversation)
    }

    /// A conversation with its turns: `NotFound` when it does not exist, has expired or
    /// belongs to another principal (admins may read any); `InvalidRequest` for a malformed id.
    pub async fn get_conversation(&self, principal: &Principal, id: &str) -> Result<Conversation> {
        conversation::validate_id(id)?;
        let (store, _) = self.conversation_store()?;
        match store.get_conversation(id).await? {
            Some(c) if may_access(principal, &c) => Ok(c),
            _ => Err(Error::NotFound(format!("conversation {id}"))),
        }
    }

    /// Deletes a conversation, with the access rules of [`AskService::get_conversation`].
    pub async fn delete_conversation(&self, principal: &Principal, id: &str) -> Result<()> {
        self.get_conversation(principal, id).await?;
        let (store, _) = self.conversation_store()?;
        if store.delete_conversation(id).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("conversation {id}")))
        }
    }

    /// When a conversation expires if nothing is added to it; `None` without a store.
    pub fn expires_at(&self, conversation: &Conversation) -> Option<chrono::DateTime<Utc>> {
        let (_, settings) = self.conversations.as_ref()?;
        chrono::Duration::from_std(settings.ttl)
            .ok()
            .map(|ttl| conversation.updated_at + ttl)
    }

    /// The semantic model loaded for `dataset`, if any (`ask.semantic_models`).
    pub fn semantic_model(&self, dataset: &str) -> Option<Arc<SemanticModel>> {
        self.semantic.get(dataset).cloned()
    }

    /// The generator in use.
    pub fn generator(&self) -> GeneratorInfo {
        self.generator.info()
    }

    /// The settings in force.
    pub fn settings(&self) -> &AskSettings {
        &self.settings
    }

    /// Answers a question.
    pub async fn ask(&self, request: AskRequest, principal: &Principal) -> Result<AskAnswer> {
        self.ask_observed(request, principal, &NoObserver).await
    }

    /// Answers a question, reporting stages to `observer`.
    ///
    /// With a `conversation_id` the conversation's earlier turns are the context (its
    /// dataset is used when the request names none) and a successful answer is appended to
    /// it as a new turn. A failed ask is not appended: the next follow-up continues from the
    /// last answer that worked.
    pub async fn ask_observed(
        &self,
        mut request: AskRequest,
        principal: &Principal,
        observer: &dyn AskObserver,
    ) -> Result<AskAnswer> {
        let conversation = match request.conversation_id.as_deref() {
            Some(id) => Some(self.get_conversation(principal, id).await?),
            None => None,
        };
        let turns = match &conversation {
            Some(c) => {
                if request.dataset_id.is_none() {
                    request.dataset_id.clone_from(&c.dataset);
                }
                let keep = self.settings.max_conversation_turns;
                c.turns[c.turns.len().saturating_sub(keep)..].to_vec()
            }
            None => Vec::new(),
        };
        let request_id = request.request_id.clone();
        let (mut answer, memo) = self.answer(request, principal, observer, turns).await?;
        if let Some(id) = request_id {
            answer.request_id = id;
        }
        if let Some(c) = conversation {
            let turn = Turn {
                request_id: answer.request_id.clone(),
                question: answer.question.clone(),
                sql: answer.sql.clone(),
                explanation: answer.explanation.clone(),
                result: answer
                    .result
                    .as_ref()
                    .filter(|o| !o.dry_run)
                    .map(|o| ResultSummary::of(&o.result)),
                entities: memo.entities.unwrap_or_default(),
                generator_state: memo.state,
                at: Utc::now(),
            };
            if let Ok((store, settings)) = self.conversation_store() {
                match store
                    .append_turn(&c.id, &turn, Some(&answer.dataset), settings.max_turns)
                    .await
                {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        tracing::info!(conversation = %c.id, "conversation expired while answering; turn not kept")
                    }
                    Err(e) => {
                        tracing::warn!(conversation = %c.id, error = %e, "could not append the turn to the conversation")
                    }
                }
            }
            answer.conversation_id = Some(c.id);
        }
        Ok(answer)
    }

    /// The pipeline, one named stage after another (each stage is a span of the ask's trace):
    /// [`Self::understand`] → (a schema question: [`Self::answer_from_catalog`]) →
    /// [`Self::relevant_tables`] → the query service's precheck →
    /// [`Self::question_cache_hit`] → [`Self::examples`] → [`Self::generate_and_plan`] →
    /// [`Self::run`] (which ends with [`Self::suggest`]).
    #[tracing::instrument(
        name = "ask",
        skip_all,
        fields(
            bqai.dataset = tracing::field::Empty,
            bqai.follow_up = !turns.is_empty(),
            bqai.execute = request.execute,
        )
    )]
    async fn answer(
        &self,
        request: AskRequest,
        principal: &Principal,
        observer: &dyn AskObserver,
        turns: Vec<Turn>,
    ) -> Result<(AskAnswer, Memo)> {
        let started = Instant::now();
        let question = self.checked_question(&request.question)?;
        observer.stage(AskStage::Understanding, None);
        let understood = self
            .understand(&question, request.dataset_id.as_deref(), principal)
            .await?;
        let dataset = understood.dataset;
        tracing::Span::current().record("bqai.dataset", dataset.as_str());
        let info = self.generator.info();
        let mut usage = AskRecord {
            generator: info.kind.clone(),
            model: info.model.clone(),
            follow_up: !turns.is_empty(),
            ..AskRecord::default()
        };
        match understood.intent {
            Intent::Data => {}
            schema_question => {
                let catalog = self
                    .answer_from_catalog(schema_question, &dataset, understood.summaries, principal)
                    .await?;
                let answer = self.schema_answer(question, dataset, info, usage, catalog);
                return Ok((answer, Memo::default()));
            }
        }

        let semantic = self.semantic.get(&dataset).cloned();
        let tables = self
            .relevant_tables(
                &question,
                &understood.summaries,
                semantic.as_deref(),
                &turns,
                principal,
            )
            .await?;
        // "now by month" means something else in every conversation: a follow-up's cache
        // key includes the SQL it follows.
        let previous_sql = turns.iter().rev().find_map(|t| t.sql.as_deref());
        let cache_key = self.question_cache_key(
            &question,
            &dataset,
            &info,
            &tables,
            previous_sql,
            &CallerScope {
                datasets: self.queries.scope(principal),
                execute: request.execute,
            },
        );
        let max_rows = request
            .max_rows
            .unwrap_or(self.queries.limits().default_max_rows);
        let query_request = |sql: String| QueryRequest {
            sql,
            default_dataset: Some(dataset.clone()),
            dry_run: !request.execute,
            max_rows: request.max_rows,
            timeout: request.timeout,
            use_cache: request.use_cache,
            parameters: crate::model::QueryParameters::None,
        };
        let failed = |sql: Option<String>, error: Error| AskFailure { sql, error };

        let outcome = async {
            // What the query service would refuse whatever the SQL (row cap, timeout, role,
            // scope, an exhausted quota) is refused before a generator is paid to write any.
            self.queries
                .precheck(&query_request(String::new()), principal)
                .await
                .map_err(|e| failed(None, e))?;

            // A repeated question on an unchanged schema reuses its SQL (still planned and
            // run).
            if request.use_cache
                && let Some((planned, cached)) = self
                    .question_cache_hit(&cache_key, query_request, principal, observer)
                    .await
            {
                usage.from_cache = true;
                return Ok(Generated {
                    planned,
                    explanation: cached.explanation,
                    attempts: 0,
                    memo: cached.memo,
                    from_cache: true,
                });
            }

            let examples = self
                .examples(&question, &dataset, semantic.as_deref(), principal)
                .await;
            let ctx = GenerationContext {
                question: question.clone(),
                dialect: self.queries.dialect(),
                dataset: Some(dataset.clone()),
                tables: tables.clone(),
                semantic,
                examples,
                failed_attempts: Vec::new(),
                max_rows,
                conversation: turns,
                today: self.today(),
            };
            self.generate_and_plan(ctx, &mut usage, query_request, principal, observer)
                .await
        }
        .await;

        match outcome {
            Ok(generated) => {
                let store_under = (!generated.from_cache).then_some(cache_key.as_str());
                self.run(
                    generated,
                    store_under,
                    principal,
                    &question,
                    usage,
                    info,
                    &tables,
                    &dataset,
                    observer,
                    request.request_id.clone(),
                )
                .await
            }
            Err(AskFailure { sql, error }) => {
                self.record_failure(
                    &question,
                    &dataset,
                    sql.as_deref(),
                    principal,
                    &usage,
                    &error,
                    started,
                    &request,
                )
                .await;
                Err(error)
            }
        }
    }

    /// The question, trimmed, or why it cannot be asked.
    fn checked_question(&self, question: &str) -> Result<String> {
        let question = question.trim().to_string();
        if question.is_empty() {
            return Err(Error::InvalidRequest("`question` must not be empty".into()));
        }
        if question.contains('\0') {
            return Err(Error::InvalidRequest(
                "`question` contains a NUL character".into(),
            ));
        }
        let chars = question.chars().count();
        if chars > self.settings.max_question_chars {
            return Err(Error::InvalidRequest(format!(
                "`question` is {chars} characters long; the limit is {}",
                self.settings.max_question_chars
            )));
        }
        Ok(question)
    }

    /// Stage "understand": which dataset, which tables it has, and whether the question is
    /// about the schema or about the data.
    #[tracing::instrument(name = "ask.understand", skip_all, fields(bqai.intent = tracing::field::Empty))]
    async fn understand(
        &self,
        question: &str,
        dataset: Option<&str>,
        principal: &Principal,
    ) -> Result<Understood> {
        let dataset = self.resolve_dataset(dataset, principal).await?;
        let summaries = self
            .catalog
            .list_tables(
                principal,
                &dataset,
                &PageRequest::first(self.settings.max_tables),
            )
            .await?
            .items;
        let names: Vec<String> = summaries
            .iter()
            .map(|t| t.table_ref.table.clone())
            .collect();
        let intent = classify(question, &names);
        tracing::Span::current().record(
            "bqai.intent",
            match &intent {
                Intent::ListTables => "list_tables",
                Intent::DescribeTable(_) => "describe_table",
                Intent::Data => "data",
            },
        );
        Ok(Understood {
            dataset,
            summaries,
            intent,
        })
    }

    /// A schema question's answer, from the catalog (no SQL).
    async fn answer_from_catalog(
        &self,
        intent: Intent,
        dataset: &str,
        summaries: Vec<TableSummary>,
        principal: &Principal,
    ) -> Result<CatalogAnswer> {
        Ok(match intent {
            Intent::DescribeTable(name) => CatalogAnswer::Table {
                table: Box::new(
                    self.catalog
                        .get_table(principal, &TableRef::new(dataset.to_string(), name))
                        .await?,
                ),
            },
            Intent::ListTables | Intent::Data => CatalogAnswer::Tables {
                dataset: dataset.to_string(),
                tables: summaries,
            },
        })
    }

    /// Stage "relevant tables": the schemas a generator is shown, narrowed to the question
    /// (and to the token budget); a follow-up keeps the tables its conversation read.
    #[tracing::instrument(name = "ask.relevant_tables", skip_all, fields(bqai.tables = tracing::field::Empty))]
    async fn relevant_tables(
        &self,
        question: &str,
        summaries: &[TableSummary],
        semantic: Option<&SemanticModel>,
        turns: &[Turn],
        principal: &Principal,
    ) -> Result<Vec<Table>> {
        let mut tables = Vec::with_capacity(summaries.len());
        for s in summaries {
            tables.push(self.catalog.get_table(principal, &s.table_ref).await?);
        }
        let mut relevant = relevant_tables(
            question,
            &tables,
            semantic,
            self.settings.schema_token_budget,
        );
        // A follow-up ("now by month") names little of the schema: the tables the earlier
        // turns read stay in play.
        for t in &tables {
            let name = format!("{}.{}", t.table_ref.dataset, t.table_ref.table);
            let in_play = turns
                .iter()
                .any(|turn| turn.entities.tables.contains(&name));
            if in_play && !relevant.iter().any(|r| r.table_ref == t.table_ref) {
                relevant.push(t.clone());
            }
        }
        tracing::Span::current().record("bqai.tables", relevant.len());
        Ok(relevant)
    }

    /// Stage "question cache": SQL generated earlier for the same question on the same
    /// schema, planned again for this caller (a plan that no longer passes is a miss).
    #[tracing::instrument(name = "ask.question_cache", skip_all, fields(bqai.cache.hit = false))]
    async fn question_cache_hit(
        &self,
        key: &str,
        query_request: impl Fn(String) -> QueryRequest,
        principal: &Principal,
        observer: &dyn AskObserver,
    ) -> Option<(crate::query::PlannedQuery, CachedSql)> {
        let cached = self.cached_sql(key).await?;
        observer.stage(AskStage::Validating, None);
        let planned = self
            .queries
            .plan(query_request(cached.sql.clone()), principal)
            .await
            .ok()?;
        tracing::Span::current().record("bqai.cache.hit", true);
        Some((planned, cached))
    }

    /// Stage "generate": asks the generator for SQL and plans it (guard, dry run, caps);
    /// a failure the generator can fix is fed back, up to `max_attempts` attempts.
    async fn generate_and_plan(
        &self,
        mut ctx: GenerationContext,
        usage: &mut AskRecord,
        query_request: impl Fn(String) -> QueryRequest,
        principal: &Principal,
        observer: &dyn AskObserver,
    ) -> std::result::Result<Generated, AskFailure> {
        let max_attempts = self.settings.max_attempts.max(1);
        let mut last_error = String::new();
        let mut last_sql: Option<String> = None;
        for attempt in 1..=max_attempts {
            usage.attempts = attempt;
            observer.stage(
                if attempt == 1 {
                    AskStage::Generating
                } else {
                    AskStage::Correcting
                },
                Some(attempt),
            );
            let generation =
                self.generate(&ctx, attempt, usage)
                    .await
                    .map_err(|error| AskFailure {
                        sql: last_sql.clone(),
                        error,
                    })?;
            let memo = Memo {
                entities: generation.entities,
                state: generation.state,
            };
            let (sql, explanation) = match generation.outcome {
                GenerationOutcome::CannotAnswer { reason } => {
                    return Err(AskFailure {
                        sql: None,
                        error: Error::CannotAnswer(reason),
                    });
                }
                GenerationOutcome::Sql { sql, explanation } => (sql, explanation),
            };
            if sql.trim().is_empty() {
                last_error = "the answer contained no SQL query".to_string();
                ctx.failed_attempts.push(FailedAttempt {
                    sql: None,
                    error: format!("{last_error}; reply with one ```sql block"),
                });
                continue;
            }
            if last_sql.as_deref() == Some(sql.as_str()) {
                // A deterministic generator repeating itself will not get better.
                break;
            }
            last_sql = Some(sql.clone());
            observer.stage(AskStage::Validating, Some(attempt));
            match self
                .plan(query_request(sql.clone()), principal, attempt)
                .await
            {
                Ok(planned) => {
                    return Ok(Generated {
                        planned,
                        explanation,
                        attempts: attempt,
                        memo,
                        from_cache: false,
                    });
                }
                Err(e) if is_correctable(&e) => {
                    last_error = e.to_string();
                    tracing::info!(attempt, error = %last_error, "generated SQL failed its checks; asking for a correction");
                    ctx.failed_attempts.push(FailedAttempt {
                        sql: Some(sql),
                        error: last_error.clone(),
                    });
                }
                Err(error) => {
                    return Err(AskFailure {
                        sql: Some(sql),
                        error,
                    });
                }
            }
        }
        Err(AskFailure {
            sql: last_sql,
            error: Error::GenerationFailed {
                attempts: usage.attempts,
                reason: last_error,
            },
        })
    }

    /// One generator attempt (its span holds the LLM call's), its spend added to `usage`.
    #[tracing::instrument(
        name = "ask.generate",
        skip_all,
        fields(bqai.attempt = attempt, bqai.generator = %self.generator.info().kind)
    )]
    async fn generate(
        &self,
        ctx: &GenerationContext,
        attempt: u32,
        usage: &mut AskRecord,
    ) -> Result<super::generator::Generation> {
        let generation = self.generator.generate(ctx).await?;
        if let Some(u) = &generation.usage {
            usage.llm_latency_ms += u.latency_ms;
            usage.input_tokens +=
                u.tokens.input_tokens + u.tokens.cache_read_tokens + u.tokens.cache_creation_tokens;
            usage.output_tokens += u.tokens.output_tokens;
            if let Some(c) = u.cost_usd {
                usage.cost_usd = Some(usage.cost_usd.unwrap_or(0.0) + c);
            }
        }
        Ok(generation)
    }

    /// Stage "plan": one generated statement through the guard, the dry run and the caps.
    #[tracing::instrument(name = "ask.plan", skip_all, fields(bqai.attempt = attempt))]
    async fn plan(
        &self,
        request: QueryRequest,
        principal: &Principal,
        attempt: u32,
    ) -> Result<crate::query::PlannedQuery> {
        self.queries.plan(request, principal).await
    }

    /// Stage "run": the planned SQL executed (or answered from the dry run), recorded, its
    /// SQL kept in the question cache, and the answer put together.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(
        name = "ask.run",
        skip_all,
        fields(bqai.attempts = generated.attempts, bqai.from_cache = generated.from_cache)
    )]
    async fn run(
        &self,
        generated: Generated,
        store_under: Option<&str>,
        principal: &Principal,
        question: &str,
        usage: AskRecord,
        generator: GeneratorInfo,
        tables: &[Table],
        dataset: &str,
        observer: &dyn AskObserver,
        request_id: Option<String>,
    ) -> Result<(AskAnswer, Memo)> {
        let Generated {
            mut planned,
            explanation,
            attempts,
            mut memo,
            from_cache: _,
        } = generated;
        observer.planned(planned.sql(), &explanation);
        observer.stage(AskStage::Estimating, None);
        let estimate = crate::model::CostEstimate::from_bytes(
            planned.bytes_processed(),
            self.queries.limits().usd_per_tib,
        );
        observer.estimated(planned.bytes_processed(), estimate.usd);
        let submitted = planned.submitted_sql().to_string();
        let read: Vec<Table> = tables
            .iter()
            .filter(|t| planned.referenced_tables().contains(&t.table_ref))
            .cloned()
            .collect();
        let hints = hints(planned.sql(), &read, planned.bytes_processed());
        if !planned.is_dry_run() {
            observer.stage(AskStage::Running, None);
            if let Some(watch) = observer.queue_watch() {
                planned.watch_queue(watch);
            }
        }
        let meta = RecordMeta {
            kind: QueryKind::Ask,
            question: Some(question.to_string()),
            ask: Some(usage.clone()),
            request_id,
            rerun_of: None,
        };
        let outcome = self.queries.run_planned(planned, principal, meta).await?;
        if let Some(key) = store_under {
            self.store_sql(
                key,
                dataset,
                &CachedSql {
                    sql: submitted,
                    explanation: explanation.clone(),
                    memo: memo.clone(),
                },
            )
            .await;
        }
        let suggestions = self.suggest(&mut memo, &read, dataset);
        let answer = AskAnswer {
            request_id: outcome.query_id.clone(),
            question: question.to_string(),
            dataset: dataset.to_string(),
            sql: Some(outcome.sql.clone()),
            explanation,
            attempts,
            generator,
            from_cache: usage.from_cache,
            usage,
            result: Some(outcome),
            catalog: None,
            hints,
            conversation_id: None,
            suggestions,
        };
        Ok((answer, memo))
    }

    /// Stage "suggest": follow-up questions that make sense after this answer. The tables
    /// the guard saw the SQL read are the ones in play, whatever the generator said.
    #[tracing::instrument(name = "ask.suggest", skip_all)]
    fn suggest(&self, memo: &mut Memo, read: &[Table], dataset: &str) -> Vec<Suggestion> {
        let entities = memo.entities.get_or_insert_with(Entities::default);
        entities.tables = read
            .iter()
            .map(|t| format!("{}.{}", t.table_ref.dataset, t.table_ref.table))
            .collect();
        super::suggest::suggestions(
            entities,
            read,
            self.semantic.get(dataset).map(AsRef::as_ref),
        )
    }

    fn schema_answer(
        &self,
        question: String,
        dataset: String,
        generator: GeneratorInfo,
        usage: AskRecord,
        catalog: CatalogAnswer,
    ) -> AskAnswer {
        let explanation = match &catalog {
            CatalogAnswer::Tables { dataset, tables } => format!(
                "Dataset {dataset} has {} table{}: {}.",
                tables.len(),
                if tables.len() == 1 { "" } else { "s" },
                tables
                    .iter()
                    .map(|t| t.table_ref.table.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            CatalogAnswer::Table { table } => format!(
                "{}.{} has {} column{}: {}.",
                table.table_ref.dataset,
                table.table_ref.table,
                table.schema.len(),
                if table.schema.len() == 1 { "" } else { "s" },
                table
                    .schema
                    .iter()
                    .map(|f| format!("{} ({})", f.name, f.field_type.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        AskAnswer {
            request_id: uuid::Uuid::now_v7().to_string(),
            question,
            dataset,
            sql: None,
            explanation,
            attempts: 0,
            generator,
            result: None,
            catalog: Some(catalog),
            hints: Vec::new(),
            from_cache: false,
            usage,
            conversation_id: None,
            suggestions: Vec::new(),
        }
    }

    async fn resolve_dataset(
        &self,
        requested: Option<&str>,
        principal: &Principal,
    ) -> Result<String> {
        if let Some(ds) = requested.or(self.settings.default_dataset.as_deref()) {
            if !is_valid_dataset_id(ds) {
                return Err(Error::InvalidRequest(format!(
                    "`dataset_id` {ds:?} is not a valid dataset id"
                )));
            }
            // Existence and permission in one call.
            self.catalog.get_dataset(principal, ds).await?;
            return Ok(ds.to_string());
        }
        let visible = self
            .catalog
            .list_datasets(principal, &PageRequest::first(50))
            .await?;
        match visible.items.as_slice() {
            [only] if visible.next_page_token.is_none() => Ok(only.id.clone()),
            [] => Err(Error::NotFound("any dataset you may read".into())),
            several => Err(Error::InvalidRequest(format!(
                "several datasets are available; say which one with `dataset_id` (one of: {})",
                several
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Few-shot examples: the semantic model's verified ones, and successful past asks on the
    /// dataset — only those whose SQL the caller could run itself, so another principal's
    /// question and SQL over tables the caller may not read never reach its prompt, and none
    /// that continued a conversation (their SQL answers the words in a context).
    #[tracing::instrument(name = "ask.examples", skip_all)]
    async fn examples(
        &self,
        question: &str,
        dataset: &str,
        semantic: Option<&SemanticModel>,
        principal: &Principal,
    ) -> Vec<Example> {
        let mut candidates: Vec<Example> = semantic.map(|m| m.examples.clone()).unwrap_or_default();
        let filter = HistoryFilter {
            status: Some(QueryStatus::Succeeded),
            kind: Some(QueryKind::Ask),
            principal: None,
        };
        match self
            .history
            .list(
                &filter,
                &PageRequest::first(self.settings.history_examples_scan),
            )
            .await
        {
            Ok(page) => candidates.extend(
                page.items
                    .into_iter()
                    .filter(|e| e.dataset.as_deref() == Some(dataset) && !e.dry_run)
                    // "now per quarter" answered in a conversation means that conversation's
                    // query per quarter: as an example it would answer the bare words with it.
                    .filter(|e| !e.ask.as_ref().is_some_and(|a| a.follow_up))
                    .filter(|e| self.queries.may_run(principal, dataset, &e.sql_submitted))
                    .filter_map(|e| {
                        Some(Example {
                            question: e.question?,
                            sql: e.sql_submitted,
                        })
                    }),
            ),
            Err(e) => tracing::warn!(error = %e, "could not read history for examples"),
        }
        similar_examples(question, &candidates, self.settings.max_examples)
    }

    /// The day questions are asked on: `ask.today`, else today in UTC.
    pub fn today(&self) -> chrono::NaiveDate {
        self.settings
            .today
            .unwrap_or_else(|| Utc::now().date_naive())
    }

    /// The question cache key. Besides the question, schema and generator it holds the
    /// caller's effective scope (an answer written for wider grants is never served to
    /// narrower ones, nor the other way round) and whether the ask executes: an answer only
    /// planned (a viewer's dry run) never seeds one that runs.
    fn question_cache_key(
        &self,
        question: &str,
        dataset: &str,
        info: &GeneratorInfo,
        tables: &[Table],
        previous_sql: Option<&str>,
        caller: &CallerScope,
    ) -> String {
        let mut h = Sha256::new();
        let schema: Vec<(&TableRef, &Vec<crate::model::Field>)> =
            tables.iter().map(|t| (&t.table_ref, &t.schema)).collect();
        let semantic = self.semantic_fingerprints.get(dataset);
        let material = serde_json::json!({
            "q": normalize_question(question),
            "dataset": dataset,
            "generator": info,
            "dialect": self.queries.dialect(),
            "schema": schema,
            "semantic": semantic,
            "prompt": super::prompt::PROMPT_VERSION,
            "follows": previous_sql,
            "scope": caller.datasets,
            "execute": caller.execute,
            // "last month" is another month tomorrow: an answer is kept for its day.
            "today": self.today(),
        });
        h.update(material.to_string().as_bytes());
        format!("{KEY_PREFIX}ask:{}", hex::encode(h.finalize()))
    }

    #[tracing::instrument(name = "cache.get", skip_all, fields(bqai.cache.layer = "question"))]
    async fn cached_sql(&self, key: &str) -> Option<CachedSql> {
        let cache = self.cache.as_ref()?;
        match cache.get(key).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "question cache read failed; generating");
                None
            }
        }
    }

    #[tracing::instrument(name = "cache.set", skip_all, fields(bqai.cache.layer = "question"))]
    async fn store_sql(&self, key: &str, dataset: &str, value: &CachedSql) {
        let Some(cache) = &self.cache else { return };
        let Ok(bytes) = serde_json::to_vec(value) else {
            return;
        };
        if let Err(e) = cache
            .set(
                key,
                bytes,
                self.settings.question_cache_ttl,
                &[dataset_tag(dataset)],
            )
            .await
        {
            tracing::warn!(error = %e, "question cache write failed");
        }
    }

    /// Records an ask that ended before a query ran (refused, not generated, LLM down).
    #[allow(clippy::too_many_arguments)]
    async fn record_failure(
        &self,
        question: &str,
        dataset: &str,
        sql: Option<&str>,
        principal: &Principal,
        usage: &AskRecord,
        err: &Error,
        started: Instant,
        request: &AskRequest,
    ) {
        let entry = HistoryEntry {
            id: uuid::Uuid::now_v7().to_string(),
            kind: QueryKind::Ask,
            question: Some(question.to_string()),
            sql_submitted: sql.unwrap_or_default().to_string(),
            sql_executed: None,
            status: if err.is_client_error() {
                QueryStatus::Rejected
            } else {
                QueryStatus::Failed
            },
            error_code: Some(err.code().to_string()),
            error_message: Some(safe_message(err)),
            principal: principal.id.clone(),
            dataset: Some(dataset.to_string()),
            dry_run: !request.execute,
            bytes_processed: 0,
            bytes_billed: 0,
            duration_ms: elapsed_ms(started),
            row_count: 0,
            cache_hit: false,
            created_at: Utc::now(),
            ask: Some(usage.clone()),
            request_id: request.request_id.clone(),
            sql_shape: None,
            question_shape: None,
            tables: Vec::new(),
            rerun_of: None,
        }
        .shaped(self.queries.dialect());
        self.queries.record_entry(&entry).await;
    }
}

/// What [`AskService::understand`] found.
struct Understood {
    dataset: String,
    summaries: Vec<TableSummary>,
    intent: Intent,
}

/// SQL that passed every check, with what produced it.
struct Generated {
    planned: crate::query::PlannedQuery,
    explanation: String,
    /// Generator attempts (0 when the SQL came from the question cache).
    attempts: u32,
    memo: Memo,
    from_cache: bool,
}

/// An ask that ended before a query ran, with the SQL it had got to (for history).
struct AskFailure {
    sql: Option<String>,
    error: Error,
}

/// The part of the caller a cached answer depends on.
struct CallerScope {
    datasets: crate::model::DatasetScope,
    execute: bool,
}

/// Whether `principal` may read and continue `conversation`: its owner, or an admin.
fn may_access(principal: &Principal, conversation: &Conversation) -> bool {
    principal.role == Role::Admin || conversation.principal == principal.id
}

/// Failures the generator can fix by writing different SQL.
fn is_correctable(e: &Error) -> bool {
    matches!(
        e,
        Error::SqlRejected(_)
            | Error::InvalidQuery(_)
            | Error::InvalidRequest(_)
            | Error::Forbidden(_)
            | Error::NotFound(_)
            | Error::CostLimitExceeded { .. }
    )
}
