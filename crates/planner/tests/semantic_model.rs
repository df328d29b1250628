//! The shop semantic model (`bqai_local::DEMO_SEMANTIC_MODEL`) is consistent with the demo
//! data: it parses, names only real tables and columns, its measures compute, and every
//! verified example passes the guard, dry-runs and runs on the embedded engine.

mod common;

use bqai_core::model::FieldMode;
use common::{model, run_guarded, shop_tables, warehouse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_model_matches_the_demo_data_and_its_examples_run() {
    let wh = warehouse().await;
    let model = model();
    let tables = shop_tables(wh.as_ref()).await;

    // Every table and column of the data is described, and nothing else.
    assert_eq!(model.tables.len(), tables.len());
    for t in &tables {
        let st = model
            .table(&t.table_ref.table)
            .unwrap_or_else(|| panic!("table {} is not in the model", t.table_ref.table));
        assert!(st.description.is_some(), "{} has no description", st.name);
        assert_eq!(st.columns.len(), t.schema.len(), "columns of {}", st.name);
        for f in &t.schema {
            let c = st
                .column(&f.name)
                .unwrap_or_else(|| panic!("{}.{} is not in the model", st.name, f.name));
            assert!(
                c.description.is_some(),
                "{}.{} has no description",
                st.name,
                c.name
            );
            assert_ne!(f.mode, FieldMode::Repeated);
        }
    }
    for r in &model.relationships {
        for (t, c) in [r.from_parts().unwrap(), r.to_parts().unwrap()] {
            assert!(model.table(t).unwrap().column(c).is_some(), "{t}.{c}");
        }
    }

    // Measures compute over their own table joined as the planner joins it.
    for m in &model.measures {
        let sql = format!(
            "SELECT {} AS v FROM shop.order_items AS order_items \
             JOIN shop.orders AS orders ON order_items.order_id = orders.order_id \
             JOIN shop.customers AS customers ON orders.customer_id = customers.customer_id \
             JOIN shop.products AS products ON order_items.product_id = products.product_id",
            m.sql
        );
        let result = run_guarded(&wh, &sql)
            .await
            .unwrap_or_else(|e| panic!("measure {}: {e}", m.name));
        assert_eq!(result.rows.len(), 1, "measure {}", m.name);
    }

    assert!(
        (10..=15).contains(&model.examples.len()),
        "{} examples",
        model.examples.len()
    );
    for e in &model.examples {
        let result = run_guarded(&wh, &e.sql)
            .await
            .unwrap_or_else(|err| panic!("example {:?}: {err}\n{}", e.question, e.sql));
        assert!(
            !result.rows.is_empty(),
            "example {:?} returned no rows",
            e.question
        );
    }
}
