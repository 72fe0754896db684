//! `upper_case` (DQ990, conformance; test-only): the field holds no lower-case letters.
//!
//! A rule written the way every built-in rule is, to show that a rule is one unit: this
//! file plus its line in [`super::RULES`] (registered only in test builds). The test
//! below validates a manifest using it, compiles it to SQL and runs it: the failing row
//! is quarantined under the rule's id and code.

use super::{BuiltinRule, Param, RuleDef, RuleUse, SqlScope, resolve};
use crate::manifest::model::KahnCategory;

pub const RULE: RuleDef = RuleDef {
    name: "upper_case",
    code: "DQ990",
    category: KahnCategory::Conformance,
    required: &[Param::Field],
    optional: &[],
    summary: "The field holds no lower-case letters (test-only example rule).",
    example: "{ rule: upper_case, field: given_name }",
    source_column: true,
    resolve: resolve::<UpperCase>,
};

/// `upper_case` on one field.
#[derive(Debug, Clone, PartialEq)]
pub struct UpperCase {
    pub field: String,
}

impl BuiltinRule for UpperCase {
    fn resolve(u: &mut RuleUse<'_>) -> Option<Self> {
        Some(UpperCase {
            field: u.field_name.clone(),
        })
    }
    fn def(&self) -> &'static RuleDef {
        &RULE
    }
    fn failing_sql(&self, s: &dyn SqlScope) -> String {
        format!(
            "{0} IS NOT NULL AND CAST({0} AS VARCHAR) <> upper(CAST({0} AS VARCHAR))",
            s.column(&self.field)
        )
    }
    fn fields(&self) -> Vec<String> {
        vec![self.field.clone()]
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::validate::{Options, RuleCheck, validate_paths};

    const MANIFEST: &str = r#"manifest_version: 1
provider: { id: upper, name: Upper case test, setting: other, system: test }
sources:
  people:
    path: "people_*.csv"
    format: csv
    columns: [ID, Name, DOB]
    maps_to: person_identity
    fields:
      local_patient_id: { from: ID }
      given_name: { from: Name }
      date_of_birth: { from: DOB, parse_date: "%d/%m/%Y" }
    quality:
      - { rule: upper_case, field: given_name }
"#;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn options(dir: &Path) -> Options {
        Options {
            root: Some(dir.to_path_buf()),
            ..Default::default()
        }
    }

    #[test]
    fn validates_and_reports_misuse() {
        let dir = tempfile::tempdir().unwrap();
        let m = write(dir.path(), "m.yaml", MANIFEST);
        let outcome = validate_paths(&[m], &options(dir.path())).unwrap();
        assert!(
            !outcome.diagnostics.has_errors(),
            "{:?}",
            outcome.diagnostics
        );
        let rule = &outcome.manifests[0].sources[0].quality[0];
        assert_eq!(
            (rule.id.as_str(), rule.code),
            ("upper_case_given_name", "DQ990")
        );
        assert!(matches!(&rule.check, RuleCheck::Builtin(b) if b.def().name == "upper_case"));

        let bad = MANIFEST.replace(
            "{ rule: upper_case, field: given_name }",
            "{ rule: upper_case }\n      - { rule: upper_cse, field: given_name }",
        );
        let m = write(dir.path(), "bad.yaml", &bad);
        let outcome = validate_paths(&[m], &options(dir.path())).unwrap();
        let d: Vec<_> = outcome.diagnostics.into_sorted();
        assert!(
            d.iter()
                .any(|d| d.code == "ONB0402" && d.message == "rule `upper_case` needs `field`"),
            "{d:?}"
        );
        assert!(
            d.iter()
                .any(|d| d.code == "ONB0401"
                    && d.help.as_deref() == Some("did you mean `upper_case`?")),
            "{d:?}"
        );
    }

    #[test]
    fn compiles_to_sql_and_quarantines_rows() {
        let dir = tempfile::tempdir().unwrap();
        let m = write(dir.path(), "m.yaml", MANIFEST);
        let outcome = validate_paths(std::slice::from_ref(&m), &options(dir.path())).unwrap();
        let manifest = &outcome.manifests[0];
        let ctx = crate::compile::RunContext {
            run_id: "t".into(),
            reference_date: "2026-10-31".into(),
        };
        let c = crate::compile::compile_source(manifest, &manifest.sources[0], &ctx);
        assert!(
            c.sql.contains(r#""given_name" IS NOT NULL AND CAST("given_name" AS VARCHAR) <> upper(CAST("given_name" AS VARCHAR))"#),
            "{}",
            c.sql
        );

        std::fs::create_dir_all(dir.path().join("landing")).unwrap();
        write(
            &dir.path().join("landing"),
            "people_1.csv",
            "ID,Name,DOB\n1,ANN,01/02/1990\n2,bob,03/04/1985\n3,CAROL,05/06/1970\n",
        );
        let ics = write(
            dir.path(),
            "ics.yaml",
            &format!(
                "ics: {{ id: t, name: T }}\nproviders: [\"{}\"]\nlanding: landing\noutput: out\nreference_date: 2026-10-31\n",
                m.display()
            ),
        );
        let opts = crate::run::RunOptions {
            ics,
            demo_key: true,
            ..Default::default()
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let published = rt.block_on(crate::run::run(&opts)).unwrap();
        let s = &published.record.sources[0];
        assert_eq!(
            (s.rows_read, s.rows_accepted, s.rows_quarantined),
            (3, 2, 1)
        );
        let hits = s
            .rule_hits
            .iter()
            .find(|h| h.rule == "upper_case_given_name")
            .unwrap();
        assert_eq!((hits.code.as_str(), hits.rows), ("DQ990", 1));
    }
}
