//! `bqai semantic draft` as the planner writes it: a model drafted from a CSV dataset without
//! one (schema and sampled values), rendered as TOML, loaded back as an operator would load it
//! unedited, and used by the planner to answer questions on that dataset — right answers,
//! checked against hand-written SQL on the embedded engine. And the draft of `shop` finds the
//! joins its hand-written model declares.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bqai_core::ask::{GenerationContext, GenerationOutcome, SqlGenerator};
use bqai_core::model::{SqlDialect, Table, TableRef};
use bqai_core::ports::Warehouse;
use bqai_core::semantic::{ColumnRole, SemanticModel};
use bqai_local::{LocalConfig, LocalWarehouse};
use bqai_planner::draft::to_toml;
use common::{planner, run_guarded, same_rows, shop_tables, today};

/// `stores/regions.csv` and `stores/sales.csv`: 4 regions, 400 sales over 2025.
async fn stores() -> Arc<LocalWarehouse> {
    let dir = std::env::temp_dir().join(format!("bqai-draft-{}", std::process::id()));
    let data = dir.join("stores");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("regions.csv"),
        "region_id,region_name,manager\n1,North,Ada\n2,South,Bob\n3,East,Cy\n4,West,Di\n",
    )
    .unwrap();
    let mut sales =
        String::from("sale_id,region_id,channel,store_country,amount,unit_price,sold_on\n");
    for i in 0..400u32 {
        let channel = ["web", "store", "phone"][(i % 3) as usize];
        let country = ["United States", "United Kingdom", "Germany"][(i % 5 % 3) as usize];
        let day = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap()
            + chrono::Days::new(u64::from(i * 364 / 400));
        sales.push_str(&format!(
            "{},{},{channel},{country},{}.50,{}.25,{day}\n",
            i + 1,
            i % 4 + 1,
            10 + i % 37,
            3 + i % 11
        ));
    }
    std::fs::write(data.join("sales.csv"), sales).unwrap();
    let wh = LocalWarehouse::new(LocalConfig {
        demo: true,
        data: vec![data.display().to_string()],
        ..LocalConfig::default()
    })
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Arc::new(wh)
}

async fn tables(wh: &dyn Warehouse, dataset: &str, names: &[&str]) -> Vec<Table> {
    let mut out = Vec::new();
    for t in names {
        out.push(wh.get_table(&TableRef::new(dataset, *t)).await.unwrap());
    }
    out
}

fn context(question: &str, tables: &[Table], model: Arc<SemanticModel>) -> GenerationContext {
    GenerationContext {
        question: question.to_owned(),
        dialect: SqlDialect::DataFusion,
        dataset: Some("stores".to_owned()),
        tables: tables.to_vec(),
        semantic: Some(model),
        examples: Vec::new(),
        failed_attempts: Vec::new(),
        max_rows: 1000,
        conversation: Vec::new(),
        today: today(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drafted_model_loads_and_the_planner_answers_with_it() {
    let wh = stores().await;
    let tables = tables(wh.as_ref(), "stores", &["regions", "sales"]).await;
    let planner = planner(wh.clone());
    let draft = planner
        .draft_model("stores", &tables, SqlDialect::DataFusion)
        .await;
    let toml = to_toml(&draft);
    let model = SemanticModel::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));

    // What it inferred.
    let sales = model.table("sales").unwrap();
    assert_eq!(sales.time_column.as_deref(), Some("sold_on"));
    let role = |c: &str| sales.column(c).unwrap().role;
    assert_eq!(role("sale_id"), ColumnRole::Key);
    assert_eq!(role("region_id"), ColumnRole::Key);
    assert_eq!(role("channel"), ColumnRole::Dimension);
    assert_eq!(role("amount"), ColumnRole::Measure);
    assert_eq!(role("sold_on"), ColumnRole::Time);
    let joins: Vec<(&str, &str)> = model
        .relationships
        .iter()
        .map(|r| (r.from.as_str(), r.to.as_str()))
        .collect();
    assert_eq!(joins, [("sales.region_id", "regions.region_id")]);
    let measures: Vec<(&str, &str)> = model
        .measures
        .iter()
        .map(|m| (m.name.as_str(), m.sql.as_str()))
        .collect();
    assert!(
        measures.contains(&("total_amount", "SUM(sales.amount)")),
        "{measures:?}"
    );
    assert!(
        measures.contains(&("average_unit_price", "AVG(sales.unit_price)")),
        "{measures:?}"
    );
    // The sampled values are named for the operator, and descriptions are left to fill.
    assert!(
        toml.contains("# 3 values: \"phone\", \"store\", \"web\""),
        "{toml}"
    );
    assert!(toml.contains("#description = \"\"  # TODO"), "{toml}");
    assert!(sales.description.is_none());

    // Loaded unedited, the planner answers with it: right rows, checked by running gold SQL.
    let model = Arc::new(model);
    let cases = [
        (
            "total amount by channel",
            "SELECT channel, SUM(amount) FROM stores.sales GROUP BY channel",
        ),
        (
            "average unit price by region name",
            "SELECT r.region_name, AVG(s.unit_price) FROM stores.sales s \
             JOIN stores.regions r ON s.region_id = r.region_id GROUP BY r.region_name",
        ),
        (
            "total amount by month in 2025",
            "SELECT date_trunc('month', sold_on), SUM(amount) FROM stores.sales \
             WHERE sold_on >= DATE '2025-01-01' AND sold_on < DATE '2026-01-01' GROUP BY 1",
        ),
        (
            "how many sales in the United Kingdom",
            "SELECT COUNT(*) FROM stores.sales WHERE store_country = 'United Kingdom'",
        ),
    ];
    for (question, gold) in cases {
        let generation = planner
            .generate(&context(question, &tables, model.clone()))
            .await
            .unwrap();
        let GenerationOutcome::Sql { sql, .. } = generation.outcome else {
            panic!("{question}: refused: {:?}", generation.outcome);
        };
        let got = run_guarded(&wh, &sql).await.unwrap();
        let want = run_guarded(&wh, gold).await.unwrap();
        same_rows(&got, &want, false).unwrap_or_else(|e| panic!("{question}: {e}\n{sql}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_draft_of_shop_finds_the_joins_its_model_declares() {
    let wh = common::warehouse().await;
    let tables = shop_tables(wh.as_ref()).await;
    let draft = planner(wh.clone())
        .draft_model("shop", &tables, SqlDialect::DataFusion)
        .await;
    let model = SemanticModel::from_toml(&to_toml(&draft)).unwrap();
    let mut joins: Vec<String> = model
        .relationships
        .iter()
        .map(|r| format!("{} -> {}", r.from, r.to))
        .collect();
    joins.sort();
    assert_eq!(
        joins,
        [
            "order_items.order_id -> orders.order_id",
            "order_items.product_id -> products.product_id",
            "orders.customer_id -> customers.customer_id",
        ]
    );
    let orders = model.table("orders").unwrap();
    assert_eq!(orders.time_column.as_deref(), Some("order_date"));
    // Synonyms are the operator's: the planner reads names word by word already.
    assert!(orders.synonyms.is_empty());
    let measures: Vec<&str> = model.measures.iter().map(|m| m.name.as_str()).collect();
    assert!(measures.contains(&"average_unit_price"), "{measures:?}");
}
