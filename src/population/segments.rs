//! Segmentations and flags: each rule is a SQL condition over the person features,
//! checked against the feature columns before anything runs (a rule over an unknown
//! feature is refused with a did-you-mean), then evaluated in one query. Every person
//! falls in exactly one segment of each segmentation: in a priority segmentation the
//! first matching rule wins and a person no rule takes is an error (a gap) unless the
//! last segment is `otherwise`; in an exclusive one a person matching two rules is an
//! error (overlapping segments) and one matching none too.

use datafusion::prelude::SessionContext;

use super::PopulationError;
use super::config::{SegmentMode, SegmentationsFile};

/// Each person's segment in each segmentation and flags, with the rules that matched.
#[derive(Debug, Clone, Default)]
pub struct Assigned {
    pub person_keys: Vec<String>,
    /// `segments[s][p]`: index of person p's segment in segmentation s.
    pub segments: Vec<Vec<usize>>,
    /// `traces[s][p]`: the names of every segment whose rule person p satisfies.
    pub traces: Vec<Vec<String>>,
    /// `flags[f][p]`.
    pub flags: Vec<Vec<bool>>,
}

/// Evaluate every rule over `person_features` in one query and assign the segments.
pub async fn assign(
    ctx: &SessionContext,
    file: &SegmentationsFile,
) -> Result<Assigned, PopulationError> {
    let mut cols = vec!["person_key".to_string()];
    for (i, s) in file.segmentations.iter().enumerate() {
        for (j, g) in s.segments.iter().enumerate() {
            if let Some(w) = &g.when {
                cols.push(format!(
                    "COALESCE(CAST(({w}) AS BOOLEAN), false) AS \"m_{i}_{j}\""
                ));
            }
        }
    }
    for (k, f) in file.flags.iter().enumerate() {
        cols.push(format!(
            "COALESCE(CAST(({}) AS BOOLEAN), false) AS \"f_{k}\"",
            f.when
        ));
    }
    let sql = format!(
        "SELECT {} FROM person_features ORDER BY person_key",
        cols.join(", ")
    );
    let b = super::inputs::collect(ctx, "segment rules", &sql).await?;
    let keys: Vec<String> = super::inputs::texts(&b, "person_key")?
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect();
    let mut out = Assigned {
        person_keys: keys,
        ..Default::default()
    };
    for (i, s) in file.segmentations.iter().enumerate() {
        let matched: Vec<Vec<bool>> = s
            .segments
            .iter()
            .enumerate()
            .map(|(j, g)| match g.when {
                Some(_) => bools(&b, &format!("m_{i}_{j}")),
                None => Ok(vec![true; out.person_keys.len()]),
            })
            .collect::<Result<_, _>>()?;
        let (seg, trace) = decide(s, &matched, &out.person_keys)?;
        out.segments.push(seg);
        out.traces.push(trace);
    }
    for k in 0..file.flags.len() {
        out.flags.push(bools(&b, &format!("f_{k}"))?);
    }
    Ok(out)
}

fn bools(
    b: &[datafusion::arrow::array::RecordBatch],
    name: &str,
) -> Result<Vec<bool>, PopulationError> {
    Ok(super::inputs::numbers(b, name)?
        .into_iter()
        .map(|v| v.unwrap_or(0.0) != 0.0)
        .collect())
}

/// One segmentation's assignment from its rules' matches: errors name the segments and
/// how many persons overlap or fall through.
fn decide(
    s: &super::config::Segmentation,
    matched: &[Vec<bool>],
    keys: &[String],
) -> Result<(Vec<usize>, Vec<String>), PopulationError> {
    let n = keys.len();
    let mut seg = Vec::with_capacity(n);
    let mut traces = Vec::with_capacity(n);
    let mut gaps = 0usize;
    let mut overlaps: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
    for p in 0..n {
        let hits: Vec<usize> = (0..matched.len())
            .filter(|j| matched[*j][p] && s.segments[*j].when.is_some())
            .collect();
        traces.push(
            hits.iter()
                .map(|j| s.segments[*j].name.clone())
                .collect::<Vec<_>>()
                .join(";"),
        );
        if s.mode == SegmentMode::Exclusive && hits.len() > 1 {
            *overlaps.entry((hits[0], hits[1])).or_default() += 1;
        }
        match hits.first() {
            Some(j) => seg.push(*j),
            None => match s.segments.iter().position(|g| g.otherwise) {
                Some(j) => seg.push(j),
                None => {
                    gaps += 1;
                    seg.push(usize::MAX);
                }
            },
        }
    }
    if let Some(((a, b), count)) = overlaps.iter().next() {
        return Err(PopulationError::Segmentation(format!(
            "[ONB0945] segmentation `{}` is exclusive but segments `{}` and `{}` overlap: {count} persons satisfy both rules ({} persons in overlaps in all); make the rules disjoint or use `mode: priority`",
            s.name,
            s.segments[*a].name,
            s.segments[*b].name,
            overlaps.values().sum::<usize>()
        )));
    }
    if gaps > 0 {
        return Err(PopulationError::Segmentation(format!(
            "[ONB0945] segmentation `{}` leaves {gaps} of {n} persons in no segment; add a segment with `otherwise: true` (priority mode) or widen the rules",
            s.name
        )));
    }
    Ok((seg, traces))
}
