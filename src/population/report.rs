//! The static HTML population report (`reports/population.html`, inline SVG, no
//! scripts, nothing fetched) and the text summary the command prints. Every number in
//! the report comes from the published (disclosure-controlled) aggregate rows.

use std::fmt::Write;

use super::aggregate::{ALL, Row};
use super::{Stage, Summary};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn find<'a>(rows: &'a [Row], measure: &str, breakdown: &str, statistic: &str) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| r.measure == measure && r.breakdown == breakdown && r.statistic == statistic)
        .collect()
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None => "*".into(),
    }
}

/// Horizontal bars with optional intervals: (label, value, lower, upper).
fn bars(
    title: &str,
    unit: &str,
    items: &[(String, Option<f64>, Option<f64>, Option<f64>)],
) -> String {
    let max = items
        .iter()
        .filter_map(|i| i.3.or(i.1))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let (w, row, left) = (640.0, 22.0, 190.0);
    let h = row * items.len() as f64 + 40.0;
    let scale = |v: f64| left + v / max * (w - left - 70.0);
    let mut s = format!(
        "<h3>{}</h3><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for (i, (label, v, lo, hi)) in items.iter().enumerate() {
        let y = 10.0 + i as f64 * row;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 14.0,
            esc(label)
        );
        match v {
            Some(v) => {
                let _ = write!(
                    s,
                    "<rect x=\"{left}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"#3b6ea5\"/>",
                    y + 3.0,
                    scale(*v) - left,
                    row - 6.0
                );
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    let _ = write!(
                        s,
                        "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{2}\" y2=\"{2}\" stroke=\"#111\" stroke-width=\"1.5\"/>",
                        scale(*lo),
                        scale(*hi),
                        y + row / 2.0
                    );
                }
                let _ = write!(
                    s,
                    "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{}</text>",
                    scale(hi.unwrap_or(*v)) + 4.0,
                    y + 14.0,
                    fmt(Some(*v))
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<text x=\"{left}\" y=\"{}\" font-size=\"11\" fill=\"#888\">suppressed</text>",
                    y + 14.0
                );
            }
        }
    }
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text></svg>",
        h - 8.0,
        esc(unit)
    );
    s
}

/// Bars of one statistic of one measure by one breakdown (groups, then All).
fn measure_bars(
    rows: &[Row],
    measure: &str,
    breakdown: &str,
    statistic: &str,
    title: &str,
) -> String {
    let items: Vec<_> = find(rows, measure, breakdown, statistic)
        .into_iter()
        .filter(|r| r.category.is_none())
        .map(|r| (r.group.clone(), r.value, r.lower_95, r.upper_95))
        .collect();
    let unit = find(rows, measure, breakdown, statistic)
        .first()
        .map(|r| r.unit)
        .unwrap_or("");
    if items.is_empty() {
        return String::new();
    }
    bars(title, unit, &items)
}

/// Stacked bars of a partition (category shares per group).
fn stacked(rows: &[Row], measure: &str, breakdown: &str, title: &str) -> String {
    let cells: Vec<&Row> = find(rows, measure, breakdown, "percent")
        .into_iter()
        .filter(|r| r.group != ALL)
        .collect();
    let mut groups: Vec<&str> = cells.iter().map(|r| r.group.as_str()).collect();
    groups.dedup();
    let mut cats: Vec<&str> = Vec::new();
    for r in &cells {
        if let Some(c) = r.category.as_deref()
            && !cats.contains(&c)
        {
            cats.push(c);
        }
    }
    if groups.is_empty() {
        return String::new();
    }
    let colours = [
        "#08306b", "#2171b5", "#6baed6", "#c6dbef", "#fdae6b", "#e6550d", "#a63603", "#756bb1",
        "#54278f", "#999",
    ];
    let (w, row, left) = (640.0, 22.0, 120.0);
    let h = row * groups.len() as f64 + 30.0 + 16.0 * cats.len() as f64;
    let mut s = format!(
        "<h3>{}</h3><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for (i, g) in groups.iter().enumerate() {
        let y = 6.0 + i as f64 * row;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>",
            left - 6.0,
            y + 14.0,
            esc(g)
        );
        let mut x = left;
        for (k, c) in cats.iter().enumerate() {
            let v = cells
                .iter()
                .find(|r| r.group == *g && r.category.as_deref() == Some(c))
                .and_then(|r| r.value)
                .unwrap_or(0.0);
            let width = v / 100.0 * (w - left - 20.0);
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{}\" width=\"{width:.1}\" height=\"{}\" fill=\"{}\"/>",
                y + 3.0,
                row - 6.0,
                colours[k % colours.len()]
            );
            x += width;
        }
    }
    for (k, c) in cats.iter().enumerate() {
        let y = row * groups.len() as f64 + 18.0 + 16.0 * k as f64;
        let _ = write!(
            s,
            "<rect x=\"{left}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            y - 9.0,
            colours[k % colours.len()],
            left + 14.0,
            y,
            esc(c)
        );
    }
    s.push_str("</svg><p class=\"note\">Shares of each group; suppressed cells are left out of the bar.</p>");
    s
}

/// The whole report.
pub fn html(stage: &Stage, summary: &Summary, rows: &[Row]) -> String {
    let mut s = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Population health report</title><style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#111}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}th{background:#eef}td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:13px}</style></head><body>",
    );
    let _ = write!(
        s,
        "<h1>Population health report</h1><p>As of {} &middot; {} persons &middot; cost year {} &middot; tariff {}</p>",
        summary.as_of,
        summary.persons,
        esc(&summary.cost_year),
        esc(&summary.tariff_version)
    );
    let p = &stage.settings.disclosure;
    let _ = write!(
        s,
        "<p class=\"note\">Disclosure control: counts from 1 to {} are suppressed (*), other counts rounded to the nearest {}, with secondary suppression so no suppressed count can be recovered from the totals; rates from suppressed counts are suppressed. {} counts published, {} suppressed.</p>",
        p.suppress_up_to, p.round_to, summary.published_counts, summary.suppressed_counts
    );
    for seg in &stage.rules.segmentations {
        let m = format!("segment:{}", seg.name);
        let items: Vec<_> = find(rows, "population", &m, "count")
            .into_iter()
            .filter(|r| r.group != ALL)
            .map(|r| (r.group.clone(), r.value, None, None))
            .collect();
        s.push_str(&bars(
            &format!(
                "Segment sizes: {}",
                seg.label.as_deref().unwrap_or(&seg.name)
            ),
            "persons (rounded)",
            &items,
        ));
        s.push_str(&measure_bars(
            rows,
            "cost_per_head",
            &m,
            "cost_per_head",
            &format!("Cost per head by segment ({})", seg.name),
        ));
    }
    s.push_str(&stacked(
        rows,
        "risk_band",
        "imd_quintile",
        "Risk pyramid by deprivation (IMD quintile, 1 = most deprived)",
    ));
    s.push_str(&measure_bars(
        rows,
        "cost_per_head",
        "ltc_count_band",
        "cost_per_head",
        "Cost per head by number of long-term conditions",
    ));
    s.push_str(&measure_bars(
        rows,
        "cost_per_head",
        "age_band",
        "cost_per_head",
        "Cost per head by age band",
    ));
    for (c, label) in stage.conditions.iter().take(4) {
        s.push_str(&measure_bars(
            rows,
            &format!("prevalence_{c}"),
            "imd_quintile",
            "dsr",
            &format!("{label}: age-standardised prevalence by IMD quintile (95% CI)"),
        ));
    }
    s.push_str(&measure_bars(
        rows,
        "acsc_emergency_admissions_12m",
        "imd_quintile",
        "dsr",
        "Emergency admissions for chronic ACSCs by IMD quintile (age-standardised, 95% CI)",
    ));
    s.push_str(&measure_bars(
        rows,
        "low_acuity_ae_attendances_12m",
        "locality",
        "crude_rate",
        "Low-acuity A&E attendances by locality (crude, 95% CI)",
    ));
    s.push_str(&stacked(
        rows,
        "ae_arrival_mode",
        "imd_quintile",
        "How people arrived at A&E, by IMD quintile",
    ));
    s.push_str(&measure_bars(
        rows,
        "ethnicity_recorded",
        "practice",
        "crude_rate",
        "Ethnicity recorded, by practice",
    ));
    s.push_str(&reconciliation_table(summary, p));
    s.push_str("<p class=\"note\">Tables: gold/population/aggregates (tidy Parquet: measure, breakdown, group, category, statistic, value, 95% limits, status); docs/population.md documents every column.</p></body></html>");
    s
}

fn reconciliation_table(summary: &Summary, p: &crate::disclosure::DisclosurePolicy) -> String {
    let mut s = String::from(
        "<h3>Cost reconciliation (persons = events)</h3><table><tr><th>setting</th><th>year</th><th>events</th><th>cost over events</th><th>cost over persons</th><th>from provider</th><th>from tariff</th></tr>",
    );
    for r in &summary.reconciliation {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            esc(&r.setting),
            esc(&r.financial_year),
            fmt(p.count(r.events).value().map(|v| v as f64)),
            r.cost_over_events,
            r.cost_over_persons,
            r.cost_from_provider,
            r.cost_from_tariff
        );
    }
    s.push_str("</table><p class=\"note\">Event counts rounded and suppressed like every published count.</p>");
    s
}

/// What `onboard population run` prints.
pub fn text(summary: &Summary) -> String {
    let mut s = format!(
        "population at {}: {} persons; cost year {}\n",
        summary.as_of, summary.persons, summary.cost_year
    );
    for (name, sizes) in &summary.segment_sizes {
        let total: usize = sizes.iter().map(|x| x.1).sum();
        let _ = writeln!(s, "segmentation {name} ({total} persons):");
        for (g, n) in sizes {
            let _ = writeln!(s, "  {g:<22} {n:>7}");
        }
    }
    let _ = writeln!(
        s,
        "cost reconciliation (sum over persons = sum over events):"
    );
    for r in &summary.reconciliation {
        let _ = writeln!(
            s,
            "  {:<14} {:<8} {:>8} events {:>14.2} = {:>14.2}",
            r.setting, r.financial_year, r.events, r.cost_over_events, r.cost_over_persons
        );
    }
    let _ = writeln!(
        s,
        "{} aggregate rows; {} counts published, {} suppressed",
        summary.aggregate_rows, summary.published_counts, summary.suppressed_counts
    );
    for o in &summary.outputs {
        let _ = writeln!(s, "  {}", o.display());
    }
    s
}
