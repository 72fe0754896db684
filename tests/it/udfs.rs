//! The NHS UDFs through DataFusion SQL.

use datafusion::arrow::util::display::array_value_to_string;

async fn one(sql: &str) -> String {
    let ctx = onboard::engine::planning_context();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    array_value_to_string(batches[0].column(0), 0).unwrap()
}

#[tokio::test]
async fn nhs_number_and_postcode_functions() {
    assert_eq!(one("SELECT nhs_number_valid('943 476 5919')").await, "true");
    assert_eq!(one("SELECT nhs_number_valid('9876544321')").await, "false");
    assert_eq!(
        one("SELECT nhs_number_valid(CAST(NULL AS VARCHAR))").await,
        ""
    );
    assert_eq!(one("SELECT uk_postcode('ls11ab')").await, "LS1 1AB");
    assert_eq!(one("SELECT postcode_district('sw1a1aa')").await, "SW1A");
    assert_eq!(one("SELECT icd10_normalise('I10.X')").await, "I10");
    assert_eq!(
        one("SELECT parse_date('31/12/1999', '%d/%m/%Y')").await,
        "1999-12-31"
    );
    assert_eq!(
        one("SELECT parse_date('not a date', '%d/%m/%Y', '%Y-%m-%d')").await,
        ""
    );
    assert_eq!(
        one("SELECT round(jaro_winkler('MARTHA', 'MARHTA'), 3)").await,
        "0.961"
    );
}

#[tokio::test]
async fn udfs_work_on_string_view_columns() {
    let ctx = onboard::engine::planning_context();
    let batches = ctx
        .sql("SELECT nhs_number_valid(arrow_cast(x, 'Utf8View')) FROM (VALUES ('4010232137'), ('4010232138')) t(x)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let col = batches[0].column(0);
    assert_eq!(array_value_to_string(col, 0).unwrap(), "true");
    assert_eq!(array_value_to_string(col, 1).unwrap(), "false");
}
