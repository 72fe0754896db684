//! Model cards (Markdown and a static HTML page): what a model is for, the data window
//! and features it was trained on, and how it performed at the validation as-of date,
//! overall (AUROC, Brier, recall@k, PPV@k, calibration by decile) and by IMD quintile,
//! ethnic group, sex and age band.

use std::fmt::Write as _;

use super::evaluation::Evaluation;
use super::train::Artefact;

const INTENDED_USE: &str = "Case-finding support: ranks the registered population by the risk of at least one emergency admission in the next {h} days, so that care teams can review the people at the top. Not a diagnosis, and not for decisions about an individual without clinical review.";

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// The card as Markdown.
pub fn markdown(a: &Artefact) -> String {
    let e = &a.validation.evaluation;
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: `{}`\n", a.version);
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| role | {:?} |", a.role);
    let _ = writeln!(s, "| kind | {} |", a.kind);
    let _ = writeln!(
        s,
        "| outcome | at least one emergency admission in the {} days after the as-of date |",
        a.horizon_days
    );
    let _ = writeln!(
        s,
        "| trained on | as-of {} ({} persons, {} with the outcome) |",
        dates(&a.training.as_of),
        a.training.persons,
        a.training.events
    );
    let _ = writeln!(
        s,
        "| validated on | as-of {} ({} persons, {} with the outcome) |",
        a.validation.as_of, e.persons, e.events
    );
    let _ = writeln!(
        s,
        "| data fingerprint | `{}` |",
        &a.data_fingerprint[..16.min(a.data_fingerprint.len())]
    );
    let _ = writeln!(
        s,
        "\n## Intended use\n\n{}\n",
        INTENDED_USE.replace("{h}", &a.horizon_days.to_string())
    );
    let _ = writeln!(
        s,
        "## Performance at validation\n\nAUROC **{:.3}**, Brier score {:.4}, prevalence {}.\n",
        e.auroc,
        e.brier,
        pct(e.prevalence)
    );
    let _ = writeln!(
        s,
        "| top k % flagged | flagged | admitted among flagged | recall@k | PPV@k |\n|---|---|---|---|---|"
    );
    for k in &e.at_k {
        let _ = writeln!(
            s,
            "| {} % | {} | {} | {} | {} |",
            k.k_percent,
            k.flagged,
            k.true_positives,
            pct(k.recall),
            pct(k.ppv)
        );
    }
    let _ = writeln!(
        s,
        "\n### Calibration by decile of predicted risk\n\n| decile | persons | mean predicted | observed |\n|---|---|---|---|"
    );
    for d in e.calibration.iter().rev() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            d.decile,
            d.persons,
            pct(d.mean_predicted),
            pct(d.observed_rate)
        );
    }
    subgroups_md(&mut s, e);
    let _ = writeln!(
        s,
        "\n## Features\n\n| feature | label | kind |\n|---|---|---|"
    );
    for f in &a.features {
        let _ = writeln!(s, "| `{}` | {} | {} |", f.name, f.label, f.kind);
    }
    if !a.dropped_constant.is_empty() {
        let _ = writeln!(
            s,
            "\nLeft out (constant in the training data): {}.",
            a.dropped_constant.join(", ")
        );
    }
    let _ = writeln!(s, "\n## Code lists\n");
    for (f, v) in &a.codelist_versions {
        let _ = writeln!(s, "* `{f}`: {v}");
    }
    let _ = writeln!(
        s,
        "\n## Caveats\n\n* Explanations are exact SHAP values in log-odds space; they describe the model, not causes.\n* Area and population factors (deprivation, ethnicity) describe where risk concentrates, not a person.\n* People with no GP record are flagged by `has_gp_feed`: their risk is likely under-estimated."
    );
    s
}

/// The subgroup table, its counts through the one disclosure control (`crate::disclosure`):
/// counts of 1–7 suppressed (`*`), others rounded to 5, secondary suppression within each
/// breakdown, rates from suppressed counts suppressed.
fn subgroups_md(s: &mut String, e: &Evaluation) {
    let _ = writeln!(
        s,
        "\n### By subgroup\n\nRecall@5 % is the share of the group's admitted people who were in the overall top 5 %. Counts are disclosure-controlled (1–7 suppressed as `*`, others rounded to 5).\n\n| breakdown | group | persons | admitted | AUROC | recall@5 % | mean predicted | observed |\n|---|---|---|---|---|---|---|---|"
    );
    let policy = crate::disclosure::DisclosurePolicy::default();
    let mut breakdowns: Vec<&str> = e.subgroups.iter().map(|g| g.breakdown.as_str()).collect();
    breakdowns.dedup();
    for b in breakdowns {
        let groups: Vec<_> = e.subgroups.iter().filter(|g| g.breakdown == b).collect();
        let persons: Vec<u64> = groups.iter().map(|g| g.persons as u64).collect();
        let events: Vec<u64> = groups.iter().map(|g| g.events as u64).collect();
        let shown =
            |c: crate::disclosure::Cell| c.value().map_or("*".to_string(), |v| v.to_string());
        let (Ok((pc, _)), Ok((ec, _))) = (
            crate::disclosure::protect_breakdown(&policy, &persons, None),
            crate::disclosure::protect_breakdown(&policy, &events, Some(&persons)),
        ) else {
            continue;
        };
        for (i, g) in groups.iter().enumerate() {
            let ok = crate::disclosure::rate_publishable(ec[i], pc[i]);
            let rate = |v: Option<String>| {
                if ok {
                    v.unwrap_or_else(|| "–".into())
                } else {
                    "*".into()
                }
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                g.breakdown,
                g.group,
                shown(pc[i]),
                shown(ec[i]),
                rate(g.auroc.map(|v| format!("{v:.3}"))),
                rate(g.recall_at_5.map(pct)),
                rate(Some(pct(g.mean_predicted))),
                rate(Some(pct(g.observed_rate)))
            );
        }
    }
}

fn dates(d: &[chrono::NaiveDate]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The card as a static HTML page: the Markdown tables as HTML plus a calibration plot.
pub fn html(a: &Artefact) -> String {
    let mut body = String::new();
    let mut in_table = false;
    for line in markdown(a).lines() {
        if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                body.push_str("<table>");
                in_table = true;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let _ = write!(
                body,
                "<tr>{}</tr>",
                cells
                    .iter()
                    .map(|c| format!("<td>{}</td>", inline(c)))
                    .collect::<String>()
            );
            continue;
        }
        if in_table {
            body.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("### ") {
            let _ = writeln!(body, "<h3>{}</h3>", inline(h));
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(body, "<h2>{}</h2>", inline(h));
            if h.starts_with("Performance") {
                body.push_str(&calibration_svg(&a.validation.evaluation));
            }
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(body, "<h1>{}</h1>", inline(h));
        } else if let Some(li) = line.strip_prefix("* ") {
            let _ = writeln!(body, "<li>{}</li>", inline(li));
        } else if !line.is_empty() {
            let _ = writeln!(body, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        body.push_str("</table>\n");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Model card {}</title><style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#212b32}}table{{border-collapse:collapse;margin:.5rem 0}}td{{border:1px solid #d8dde0;padding:.25rem .5rem}}tr:first-child td{{font-weight:600;background:#f0f4f5}}code{{background:#f0f4f5;padding:0 .2rem}}</style></head><body>\n{}</body></html>\n",
        esc(&a.version),
        body
    )
}

/// `code` and **bold** spans of one Markdown line, escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(s).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, b) in part.split("**").enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<strong>{b}</strong>");
                } else {
                    out.push_str(b);
                }
            }
        }
    }
    out
}

/// Observed against mean predicted risk by decile, on a shared axis.
pub fn calibration_svg(e: &Evaluation) -> String {
    let max = e
        .calibration
        .iter()
        .flat_map(|d| [d.mean_predicted, d.observed_rate])
        .fold(0.01, f64::max);
    let (w, h, pad) = (360.0, 240.0, 30.0);
    let sx = |v: f64| pad + v / max * (w - 2.0 * pad);
    let sy = |v: f64| h - pad - v / max * (h - 2.0 * pad);
    let mut s = format!(
        "<svg role=\"img\" aria-label=\"Calibration by decile\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{pad}\" stroke=\"#aeb7bd\" stroke-dasharray=\"4\"/>",
        h - pad,
        w - pad
    );
    for d in &e.calibration {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#005eb8\"><title>decile {}: predicted {:.3}, observed {:.3}</title></circle>",
            sx(d.mean_predicted),
            sy(d.observed_rate),
            d.decile,
            d.mean_predicted,
            d.observed_rate
        );
    }
    let _ = write!(
        s,
        "<text x=\"{pad}\" y=\"{}\" font-size=\"11\">mean predicted (max {:.1}%) →</text><text x=\"4\" y=\"{}\" font-size=\"11\" transform=\"rotate(-90 10 {})\">observed</text></svg>",
        h - 8.0,
        max * 100.0,
        h / 2.0,
        h / 2.0
    );
    s
}
