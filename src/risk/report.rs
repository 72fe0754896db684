//! What the risk commands print: the risk pyramid, the explained high-risk list and one
//! person's explanation card, read back from `gold/risk_scores` and `gold/explanations`.

use std::fmt::Write as _;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde::Serialize;

use super::score::{ScoreSummary, output_dir};
use super::{RiskError, Stage};

/// The risk pyramid as text: persons per band, highest band on top.
pub fn pyramid(s: &ScoreSummary) -> String {
    let mut out = format!(
        "risk pyramid at {} (model {}, {} persons)\n",
        s.as_of, s.model_version, s.persons
    );
    let widest = s.bands.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    for (name, n) in &s.bands {
        let bar = "█".repeat((n * 40).div_ceil(widest));
        let _ = writeln!(out, "  {name:>10} {n:>8}  {bar}");
    }
    out
}

/// One factor on a card.
#[derive(Debug, Clone, Serialize)]
pub struct CardFactor {
    pub rank: u32,
    pub feature: String,
    pub label: String,
    pub value: f64,
    pub typical_value: f64,
    pub contribution: f64,
    pub odds_ratio: f64,
    pub evidence: Option<String>,
}

/// One person's explanation card.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub person_key: String,
    pub as_of_date: String,
    pub model_version: String,
    pub probability: f64,
    pub percentile: u8,
    pub decile: u8,
    pub band: String,
    pub practice: Option<String>,
    pub factors: Vec<CardFactor>,
}

async fn table(
    ctx: &SessionContext,
    name: &str,
    dir: &std::path::Path,
    sql_where: &str,
) -> Result<Vec<RecordBatch>, RiskError> {
    if !dir.is_dir() {
        return Err(RiskError::Data(format!(
            "no scores at {}: run `onboard risk score` first",
            dir.display()
        )));
    }
    ctx.register_parquet(
        name,
        dir.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    Ok(ctx
        .sql(&format!("SELECT * FROM {name} {sql_where}"))
        .await?
        .collect()
        .await?)
}

fn text(b: &RecordBatch, col: &str, i: usize) -> Option<String> {
    let c = b.column_by_name(col)?;
    let c = datafusion::arrow::compute::cast(c, &DataType::Utf8).ok()?;
    let c = c.as_string::<i32>();
    (!c.is_null(i)).then(|| c.value(i).to_string())
}

fn num(b: &RecordBatch, col: &str, i: usize) -> f64 {
    b.column_by_name(col)
        .and_then(|c| datafusion::arrow::compute::cast(c, &DataType::Float64).ok())
        .map(|c| c.as_primitive::<Float64Type>().value(i))
        .unwrap_or(f64::NAN)
}

/// Cards of the `limit` highest-ranked persons, or of one person.
pub async fn cards(
    stage: &Stage,
    version: &str,
    as_of: NaiveDate,
    person: Option<&str>,
    limit: usize,
) -> Result<Vec<Card>, RiskError> {
    let ctx = crate::engine::planning_context();
    let filter = match person {
        Some(p) => format!("WHERE person_key = '{}'", p.replace('\'', "''")),
        None => format!("WHERE rank <= {limit}"),
    };
    let scores = table(
        &ctx,
        "scores",
        &output_dir(&stage.out, "risk_scores", as_of, version),
        &format!("{filter} ORDER BY rank"),
    )
    .await?;
    let keys: Vec<String> = scores
        .iter()
        .flat_map(|b| (0..b.num_rows()).filter_map(move |i| text(b, "person_key", i)))
        .map(|k| format!("'{}'", k.replace('\'', "''")))
        .collect();
    let expl = if keys.is_empty() {
        Vec::new()
    } else {
        let w = format!("WHERE person_key IN ({})", keys.join(", "));
        table(
            &ctx,
            "explanations",
            &output_dir(&stage.out, "explanations", as_of, version),
            &w,
        )
        .await?
    };
    let mut out = Vec::new();
    for b in &scores {
        for i in 0..b.num_rows() {
            let key = text(b, "person_key", i).unwrap_or_default();
            out.push(Card {
                factors: factors_of(&expl, &key),
                person_key: key,
                as_of_date: text(b, "as_of_date", i).unwrap_or_default(),
                model_version: version.to_string(),
                probability: num(b, "probability", i),
                percentile: num(b, "percentile", i) as u8,
                decile: num(b, "decile", i) as u8,
                band: text(b, "band", i).unwrap_or_default(),
                practice: text(b, "practice", i),
            });
        }
    }
    if let (Some(p), true) = (person, out.is_empty()) {
        return Err(RiskError::Data(format!(
            "person key {p} was not scored at {as_of} by model {version}"
        )));
    }
    Ok(out)
}

fn factors_of(expl: &[RecordBatch], key: &str) -> Vec<CardFactor> {
    let mut f = Vec::new();
    for b in expl {
        for i in 0..b.num_rows() {
            if text(b, "person_key", i).as_deref() != Some(key) {
                continue;
            }
            f.push(CardFactor {
                rank: num(b, "factor_rank", i) as u32,
                feature: text(b, "feature", i).unwrap_or_default(),
                label: text(b, "label", i).unwrap_or_default(),
                value: num(b, "value", i),
                typical_value: num(b, "typical_value", i),
                contribution: num(b, "contribution", i),
                odds_ratio: num(b, "odds_ratio", i),
                evidence: text(b, "evidence", i),
            });
        }
    }
    f.sort_by_key(|x| x.rank);
    f
}

fn value_text(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A card as text.
pub fn card_text(c: &Card) -> String {
    let mut s = format!(
        "{}  risk {:.1}% of an emergency admission in 90 days · percentile {} · decile {} · band {}{}\n",
        c.person_key,
        c.probability * 100.0,
        c.percentile,
        c.decile,
        c.band,
        c.practice
            .as_deref()
            .map(|p| format!(" · practice {p}"))
            .unwrap_or_default()
    );
    for f in &c.factors {
        let _ = writeln!(
            s,
            "   {}. {} — {} (typical {}), ×{:.2} odds{}",
            f.rank,
            f.label,
            value_text(f.value),
            value_text(f.typical_value),
            f.odds_ratio,
            f.evidence
                .as_deref()
                .map(|e| format!("; {e}"))
                .unwrap_or_default()
        );
    }
    s
}

/// What `risk features` wrote.
pub fn features_text(w: &[super::FeaturesWritten]) -> String {
    let mut s = String::new();
    for f in w {
        let outcome = if f.outcome_known {
            format!(
                "{} with an emergency admission in the outcome window",
                f.with_outcome
            )
        } else {
            "outcome not yet known".into()
        };
        let _ = writeln!(
            s,
            "features at {}: {} persons, {outcome} → {}",
            f.as_of,
            f.persons,
            f.path.display()
        );
    }
    s
}

fn at(e: &super::evaluation::Evaluation, k: f64) -> f64 {
    e.at_k
        .iter()
        .find(|a| a.k_percent == k)
        .map(|a| a.recall)
        .unwrap_or(0.0)
}

/// What `risk train` made: each model's validation AUROC and recall@k.
pub fn trained_text(stage: &Stage, t: &super::train::Trained) -> String {
    let mut s = format!(
        "trained on as-of {:?}, validated at {} ({}-day emergency admission)\n  {:<10} {:<34} {:>6} {:>8} {:>8} {:>8}\n",
        stage
            .as_of
            .train
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>(),
        stage.as_of.validate,
        stage.settings.horizon_days,
        "role",
        "version",
        "AUROC",
        "rec@1%",
        "rec@2%",
        "rec@5%"
    );
    for (role, v, e) in &t.artefacts {
        let _ = writeln!(
            s,
            "  {:<10} {:<34} {:>6.3} {:>7.1}% {:>7.1}% {:>7.1}%",
            format!("{role:?}").to_lowercase(),
            v,
            e.auroc,
            at(e, 1.0) * 100.0,
            at(e, 2.0) * 100.0,
            at(e, 5.0) * 100.0
        );
    }
    let card = super::train::models_dir(&stage.out)
        .join(&t.champion)
        .join("card.html");
    let _ = writeln!(
        s,
        "champion: {} (model card: {})",
        t.champion,
        card.display()
    );
    s
}

/// `risk run` and the demo: features, train, score, then the pyramid and the
/// explained high-risk list.
pub async fn run_all(stage: &Stage) -> Result<String, RiskError> {
    let mut s = features_text(&super::write_features(stage, &stage.all_as_of()).await?);
    let t = super::train::train(stage).await?;
    s.push_str(&trained_text(stage, &t));
    let sc = super::score::score(stage, None, None).await?;
    s.push('\n');
    s.push_str(&pyramid(&sc));
    let _ = writeln!(
        s,
        "{} high-risk persons, {} with their top factors; SHAP additivity error at most {:.1e}",
        sc.high_risk, sc.high_risk_with_top_factors, sc.max_additivity_error
    );
    let _ = writeln!(s, "\nhighest risk at {}:", sc.as_of);
    for c in cards(stage, &sc.model_version, sc.as_of, None, 5).await? {
        s.push_str(&card_text(&c));
    }
    let _ = writeln!(
        s,
        "scores: {}\nexplanations: {}",
        sc.scores.display(),
        sc.explanations.display()
    );
    Ok(s)
}
