//! Property tests of the manifest reader, the template renderer and the expression
//! compiler: on arbitrary bytes, arbitrary YAML trees, mutated good manifests, arbitrary
//! templates and arbitrary SQL expressions, `validate` never panics and every error is a
//! located diagnostic in the file it concerns; a manifest that validates compiles to a
//! DataFusion plan.
//!
//! The number of cases is bounded so CI stays fast (`PROPTEST_CASES` raises it, e.g.
//! `PROPTEST_CASES=2000 cargo test --test integration fuzz::`).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::{Map, Value};

use onboard::diagnostics::Severity;
use onboard::validate::{Options, Outcome, validate_paths};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 40;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

const GOOD: &str = r#"manifest_version: 1
provider: { id: fuzz-good, name: Fuzz practice, setting: primary_care, system: emis_web }
sources:
  patients:
    path: "gp/patients_*.csv"
    format: csv
    columns: [PatientGuid, NHSNumber, DOB, Gender, Postcode, Practice]
    maps_to: person_identity
    fields:
      nhs_number: { from: NHSNumber, transform: nhs_number }
      date_of_birth: { from: DOB, parse_date: ["%d/%m/%Y"] }
      sex: { from: Gender, map: { M: "1", F: "2" }, map_default: "0" }
      postcode: { from: Postcode, transform: uk_postcode }
      local_patient_id: { expr: "upper(trim(\"PatientGuid\"))" }
    quality:
      - { rule: nhs_number_valid, field: nhs_number, on_fail: warn }
      - { rule: matches_regex, column: Practice, pattern: "^[A-Z][0-9]{5}$" }
      - { id: plausible_dob, expr: "date_of_birth >= DATE '1890-01-01'", on_fail: warn }
"#;

/// A project root with no templates but the one a test writes, and a manifest file.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("templates/providers")).unwrap();
        Project { dir }
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn validate(&self, manifest: &Path) -> Outcome {
        let opts = Options {
            root: Some(self.root().to_path_buf()),
            ..Default::default()
        };
        validate_paths(&[manifest.to_path_buf()], &opts).expect("validate runs")
    }
}

/// Every error has a position in one of `files` (the manifest, or its template).
fn all_located(o: &Outcome, files: &[&Path]) -> Result<(), TestCaseError> {
    let names: Vec<String> = files
        .iter()
        .map(|f| onboard::diagnostics::display_path(f))
        .collect();
    for d in o.diagnostics.iter() {
        if d.severity != Severity::Error {
            continue;
        }
        let Some(span) = &d.span else {
            return Err(TestCaseError::fail(format!(
                "unlocated {}: {}",
                d.code, d.message
            )));
        };
        prop_assert!(
            names.contains(&span.file.name),
            "{} located in {} (want one of {names:?}): {}",
            d.code,
            span.file.name,
            d.message
        );
        prop_assert!(span.start.line >= 1 && span.start.column >= 1);
    }
    Ok(())
}

/// Every source of every manifest that validated compiles to a logical plan.
fn plans(o: &Outcome) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let run = onboard::compile::RunContext {
        run_id: "fuzz".into(),
        reference_date: "2026-10-31".into(),
    };
    for m in &o.manifests {
        let ctx = onboard::engine::planning_context();
        for s in &m.sources {
            let c = onboard::compile::compile_source(m, s, &run);
            onboard::compile::register_empty_scan(&ctx, &c, s)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if let Err(e) = rt.block_on(onboard::compile::logical_plan(&ctx, &c)) {
                return Err(TestCaseError::fail(format!(
                    "validated but does not plan: {e}\n{}",
                    c.sql
                )));
            }
        }
    }
    Ok(())
}

/// Words manifests are made of, so random trees reach past the first checks.
const WORDS: &[&str] = &[
    "manifest_version",
    "provider",
    "id",
    "name",
    "setting",
    "system",
    "ods_code",
    "uses",
    "params",
    "sources",
    "path",
    "format",
    "csv",
    "columns",
    "maps_to",
    "fields",
    "identity",
    "quality",
    "thresholds",
    "delivery",
    "from",
    "const",
    "expr",
    "transform",
    "map",
    "map_file",
    "map_default",
    "parse_date",
    "parse_timestamp",
    "rule",
    "field",
    "column",
    "pattern",
    "values",
    "min",
    "max",
    "after",
    "on_fail",
    "category",
    "description",
    "person_identity",
    "gp_event",
    "nhs_number",
    "date_of_birth",
    "sex",
    "postcode",
    "patients",
    "csv",
    "ndjson",
    "parquet",
    "primary_care",
    "not_null",
    "in_range",
    "unique",
    "matches_regex",
    "quarantine",
    "warn",
    "NHSNumber",
    "DOB",
    "%d/%m/%Y",
    "gp/*.csv",
    "../x",
    "/etc/passwd",
    "password",
    "<<",
    "1",
    "true",
    "",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e9f64..1.0e9).prop_map(Value::from),
        proptest::sample::select(WORDS).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => "[a-zA-Z_ .:#-]{1,10}",
    ]
}

/// Arbitrary YAML trees (mappings, sequences, scalars), a few levels deep.
fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value as block YAML (strings double-quoted, so every scalar keeps its type).
fn yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(_) | Value::Array(_) => emit(v, 0, &mut out),
        s => {
            out.push_str(&inline(s));
            out.push('\n');
        }
    }
    out
}

fn inline(v: &Value) -> String {
    match v {
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

fn emit(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let k = Value::String(k.clone()).to_string();
                if is_block(x) {
                    out.push_str(&format!("{pad}{k}:\n"));
                    emit(x, indent + 2, out);
                } else {
                    out.push_str(&format!("{pad}{k}: {}\n", inline(x)));
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                if is_block(x) {
                    out.push_str(&format!("{pad}-\n"));
                    emit(x, indent + 2, out);
                } else {
                    out.push_str(&format!("{pad}- {}\n", inline(x)));
                }
            }
        }
        s => out.push_str(&format!("{pad}{}\n", inline(s))),
    }
}

fn good_value() -> Value {
    onboard::manifest::source::parse_plain("good.yaml", GOOD).unwrap()
}

/// The JSON pointers of every node of `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// What to do to one node of the good manifest.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Value),
    Remove,
    AddKey(String, Value),
}

fn mutation() -> impl Strategy<Value = (prop::sample::Index, Mutation)> {
    let m = prop_oneof![
        tree().prop_map(Mutation::Replace),
        Just(Mutation::Remove),
        (key(), tree()).prop_map(|(k, v)| Mutation::AddKey(k, v)),
    ];
    (any::<prop::sample::Index>(), m)
}

fn mutate(mut v: Value, muts: &[(prop::sample::Index, Mutation)]) -> Value {
    for (idx, m) in muts {
        let mut ps = Vec::new();
        pointers(&v, String::new(), &mut ps);
        let p = idx.get(&ps).clone();
        match m {
            Mutation::Replace(x) => match v.pointer_mut(&p) {
                Some(node) => *node = x.clone(),
                None => {}
            },
            Mutation::Remove => {
                let (parent, last) = p.rsplit_once('/').unwrap_or(("", ""));
                match v.pointer_mut(parent) {
                    Some(Value::Object(o)) => {
                        o.shift_remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = last.parse::<usize>()
                            && i < a.len()
                        {
                            a.remove(i);
                        }
                    }
                    _ => {}
                }
            }
            Mutation::AddKey(k, x) => {
                if let Some(Value::Object(o)) = v.pointer_mut(&p) {
                    o.insert(k.clone(), x.clone());
                }
            }
        }
    }
    v
}

/// SQL-ish expressions over the manifest's columns and fields.
fn sql_expr() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        proptest::sample::select(
            &[
                "\"NHSNumber\"",
                "\"DOB\"",
                "\"PatientGuid\"",
                "\"Practice\"",
                "NHSNumber",
                "date_of_birth",
                "nhs_number",
                "sex",
                "postcode",
                "\"Nope\"",
                "1",
                "0",
                "-3.5",
                "'x'",
                "''",
                "'it''s'",
                "NULL",
                "true",
                "DATE '2020-01-01'",
                "DATE 'nope'",
                "INTERVAL '1 day'",
                "*",
                "'%d/%m/%Y'",
            ][..]
        )
        .prop_map(str::to_string),
        "[a-z_\"'0-9 ]{0,6}",
    ];
    atom.prop_recursive(4, 24, 3, |inner| {
        let op = proptest::sample::select(
            &[
                " + ",
                " - ",
                " * ",
                " / ",
                " || ",
                " = ",
                " <> ",
                " < ",
                " >= ",
                " AND ",
                " OR ",
                " LIKE ",
                " IS ",
                " IN ",
                " BETWEEN ",
                " ",
            ][..],
        );
        let func = proptest::sample::select(
            &[
                "upper",
                "lower",
                "trim",
                "length",
                "coalesce",
                "nullif",
                "substr",
                "concat",
                "cast_me",
                "count",
                "sum",
                "nhs_number_valid",
                "postcode_valid",
                "parse_date",
                "abs",
                "regexp_like",
                "row_number",
            ][..],
        );
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("{a}{o}{b}")),
            (func, prop::collection::vec(inner.clone(), 0..3))
                .prop_map(|(f, args)| format!("{f}({})", args.join(", "))),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("NOT {a}")),
            inner.clone().prop_map(|a| format!("CAST({a} AS DATE)")),
            (inner.clone(), inner)
                .prop_map(|(a, b)| format!("CASE WHEN {a} THEN {b} ELSE NULL END")),
        ]
    })
}

/// Well-typed expressions: text over `cols` (quoted names), and booleans over them.
fn text_expr(cols: &'static [&'static str]) -> impl Strategy<Value = String> + Clone {
    let atom = prop_oneof![
        proptest::sample::select(cols).prop_map(str::to_string),
        "[a-zA-Z0-9 ,%_']{0,6}".prop_map(|t| format!("'{}'", t.replace('\'', "''"))),
    ];
    atom.prop_recursive(3, 16, 3, |t| {
        let f1 = proptest::sample::select(&["upper", "lower", "trim", "btrim", "reverse"][..]);
        prop_oneof![
            (f1, t.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            (t.clone(), t.clone()).prop_map(|(a, b)| format!("concat({a}, {b})")),
            (t.clone(), t.clone()).prop_map(|(a, b)| format!("coalesce({a}, {b})")),
            (t.clone(), t.clone()).prop_map(|(a, b)| format!("nullif({a}, {b})")),
            (t.clone(), 0i64..5, 0i64..5).prop_map(|(a, i, n)| format!("substr({a}, {i}, {n})")),
            (t.clone(), t.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            (t.clone(), t.clone(), t)
                .prop_map(|(c, a, b)| format!("CASE WHEN {c} = 'x' THEN {a} ELSE {b} END")),
        ]
    })
}

fn bool_expr(cols: &'static [&'static str]) -> impl Strategy<Value = String> {
    let t = text_expr(cols);
    let cmp = proptest::sample::select(&[" = ", " <> ", " < ", " >= "][..]);
    let atom = prop_oneof![
        (t.clone(), cmp, t.clone()).prop_map(|(a, o, b)| format!("{a}{o}{b}")),
        t.clone().prop_map(|a| format!("{a} IS NULL")),
        t.clone().prop_map(|a| format!("length({a}) > 3")),
        t.clone().prop_map(|a| format!("{a} LIKE 'F%'")),
        t.clone().prop_map(|a| format!("nhs_number_valid({a})")),
        t.prop_map(|a| format!("{a} IN ('1', '2')")),
        Just("date_of_birth >= DATE '1890-01-01'".to_string()),
    ];
    atom.prop_recursive(2, 8, 2, |b| {
        prop_oneof![
            (b.clone(), b.clone()).prop_map(|(x, y)| format!("({x}) AND ({y})")),
            (b.clone(), b.clone()).prop_map(|(x, y)| format!("({x}) OR ({y})")),
            b.prop_map(|x| format!("NOT ({x})")),
        ]
    })
}

/// Source columns the field expression can read, and mapped fields a rule can read.
const SOURCE_COLUMNS: &[&str] = &[
    "\"PatientGuid\"",
    "\"Practice\"",
    "\"Gender\"",
    "\"NHSNumber\"",
];
const MAPPED_TEXT: &[&str] = &["nhs_number", "sex", "postcode", "local_patient_id"];

/// Jinja-ish template text around a valid manifest body.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(
            &[
                "{{ ods_code }}",
                "{{ missing }}",
                "{{ ods_code | upper }}",
                "{{ ods_code|tojson }}",
                "{% if ods_code %}",
                "{% endif %}",
                "{% for x in codes %}",
                "{% endfor %}",
                "{{ x }}",
                "{{",
                "}}",
                "{%",
                "%}",
                "{# c #}",
                "{{ 1/0 }}",
                "{{ range(100000) }}",
                "{% for i in range(1000000) %}x{% endfor %}",
                "{{ ods_code.nope.deeper }}",
                "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
                "\n",
                "  ",
                ": ",
                "- ",
                "sources:\n",
                "  patients:\n",
                "\"",
                "'",
            ][..]
        )
        .prop_map(str::to_string),
        "\\PC{0,8}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_give_located_diagnostics(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        "[ -~\n\t]{0,300}".prop_map(String::into_bytes),
    ]) {
        let p = Project::new();
        let f = p.write("m.yaml", &bytes);
        let o = p.validate(&f);
        all_located(&o, &[&f])?;
        plans(&o)?;
    }

    #[test]
    fn arbitrary_yaml_trees_give_located_diagnostics(v in tree()) {
        let p = Project::new();
        let f = p.write("m.yaml", yaml(&v).as_bytes());
        let o = p.validate(&f);
        all_located(&o, &[&f])?;
        plans(&o)?;
    }

    #[test]
    fn mutated_good_manifests_are_located_or_plan(muts in prop::collection::vec(mutation(), 1..4)) {
        let p = Project::new();
        let v = mutate(good_value(), &muts);
        let f = p.write("m.yaml", yaml(&v).as_bytes());
        let o = p.validate(&f);
        all_located(&o, &[&f])?;
        plans(&o)?;
    }

    #[test]
    fn arbitrary_expressions_are_located_or_plan(
        field in prop_oneof![2 => text_expr(SOURCE_COLUMNS), 1 => sql_expr()],
        rule in prop_oneof![2 => bool_expr(MAPPED_TEXT), 1 => sql_expr()],
    ) {
        let p = Project::new();
        let mut v = good_value();
        v["sources"]["patients"]["fields"]["local_patient_id"] = serde_json::json!({ "expr": field });
        v["sources"]["patients"]["quality"][2]["expr"] = Value::String(rule);
        let f = p.write("m.yaml", yaml(&v).as_bytes());
        let o = p.validate(&f);
        all_located(&o, &[&f])?;
        plans(&o)?;
    }

    #[test]
    fn arbitrary_templates_are_located_or_plan(
        text in template_text(),
        params in prop::collection::vec((key(), tree()), 0..3),
    ) {
        let p = Project::new();
        let t = p.write("templates/providers/fz.yaml.j2", text.as_bytes());
        let mut v = good_value();
        let obj = v.as_object_mut().unwrap();
        obj.shift_remove("sources");
        obj.insert("uses".into(), Value::from("fz"));
        obj.insert("params".into(), Value::Object(params.into_iter().collect()));
        let f = p.write("m.yaml", yaml(&v).as_bytes());
        let o = p.validate(&f);
        all_located(&o, &[&f, &t])?;
        plans(&o)?;
    }
}

#[test]
fn the_good_manifest_validates_and_plans() {
    let p = Project::new();
    let f = p.write("m.yaml", yaml(&good_value()).as_bytes());
    let o = p.validate(&f);
    assert!(!o.diagnostics.has_errors(), "{:?}", o.diagnostics);
    assert_eq!(o.manifests.len(), 1);
    plans(&o).unwrap();
}

/// Found by the property test above in CI: a function called with too few arguments
/// type-checked without planning, so validate passed what `run` would then refuse.
#[test]
fn a_function_with_missing_arguments_is_a_located_error() {
    let p = Project::new();
    let mut v = good_value();
    v["sources"]["patients"]["fields"]["local_patient_id"] =
        serde_json::json!({ "expr": "CAST(upper() AS DATE)" });
    let f = p.write("m.yaml", yaml(&v).as_bytes());
    let o = p.validate(&f);
    let d = o
        .diagnostics
        .iter()
        .find(|d| d.code == "ONB0304")
        .unwrap_or_else(|| panic!("no ONB0304 in {:?}", o.diagnostics));
    assert!(d.span.is_some(), "{d:?}");
    all_located(&o, &[&f]).unwrap();
    plans(&o).unwrap();
}

/// Found by `mutated_good_manifests_are_located_or_plan`: an empty `map:` compiled to
/// `CASE x ELSE … END`, which does not parse. It is a located error instead.
#[test]
fn an_empty_value_map_is_a_located_error() {
    let p = Project::new();
    let mut v = good_value();
    v["sources"]["patients"]["fields"]["sex"]["map"] = serde_json::json!({});
    let f = p.write("m.yaml", yaml(&v).as_bytes());
    let o = p.validate(&f);
    let d = o
        .diagnostics
        .iter()
        .find(|d| d.code == "ONB0217")
        .unwrap_or_else(|| panic!("no ONB0217 in {:?}", o.diagnostics));
    assert!(d.span.is_some(), "{d:?}");
    all_located(&o, &[&f]).unwrap();
}
