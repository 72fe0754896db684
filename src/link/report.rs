//! The linkage report as a static HTML page (no scripts, no external resources): link
//! rates by provider and tier, the trained model, the match-weight histogram, guard
//! refusals and ethnicity completeness before and after linkage.

use std::fmt::Write as _;

use super::LinkSummary;
use super::model::Model;

/// Tiers in report order.
pub const TIERS: [&str; 7] = [
    "nhs_number_dob",
    "nhs_number_dob_tolerant",
    "nhs_number_dob_conflict",
    "nhs_number_no_dob",
    "local_id",
    "probabilistic",
    "unlinked",
];

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn report_html(s: &LinkSummary, m: &Model) -> String {
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Linkage report</title><style>\
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2733;max-width:1100px}table{border-collapse:collapse;margin:.5rem 0 1rem}\
td,th{border:1px solid #ccd;padding:.25rem .5rem;font-size:.9rem}th{background:#eef2f7}.num{text-align:right}\
.bar{display:inline-block;height:10px;background:#3a7}</style></head><body>\n<h1>Linkage report</h1>\n",
    );
    let _ = write!(
        h,
        "<p>{} identity rows ({} without any key), {} candidate keys linked into {} persons: {} same-record links, \
         {} candidate pairs scored, {} probabilistic links, {} pairs for clerical review. Refused: {} merges of two \
         different NHS numbers, {} merges joining incompatible dates of birth. {} oversized blocks skipped.</p>\n",
        s.identity_rows,
        s.keyless_rows,
        s.candidate_keys,
        s.persons,
        s.same_record_links,
        s.candidate_pairs_scored,
        s.probabilistic_links,
        s.clerical_review_pairs,
        s.nhs_conflicts_refused,
        s.chaining_refused,
        s.oversized_blocks
    );
    let _ = write!(
        h,
        "<p>Persons holding several NHS numbers: {}. Persons whose records hold incompatible dates of birth: {}.</p>\n",
        s.persons_with_several_nhs_numbers, s.persons_with_conflicting_dob
    );
    let _ = write!(
        h,
        "<h2>Ethnicity</h2><p>Of {} registered persons, {:.1}% have an ethnic category on their GP record and {:.1}% in any linked record.</p>\n",
        s.registered_persons,
        s.ethnicity_recorded_before * 100.0,
        s.ethnicity_recorded_after * 100.0
    );
    h.push_str("<h2>Identity rows by provider and tier</h2><table><tr><th>provider</th>");
    for t in TIERS {
        let _ = write!(h, "<th>{}</th>", t.replace('_', " "));
    }
    h.push_str("</tr>\n");
    for (p, tiers) in &s.rows_by_provider_and_tier {
        let _ = write!(h, "<tr><td>{}</td>", esc(p));
        for t in TIERS {
            let _ = write!(
                h,
                "<td class=num>{}</td>",
                tiers.get(t).copied().unwrap_or(0)
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n<h2>Model</h2><p>u from ");
    let _ = write!(
        h,
        "{} random pairs; m by EM over {} sessions; two random records match with probability {:.3e} (prior {:+.2}).</p><table><tr><th>comparison</th><th>level</th><th class=num>m</th><th class=num>u</th><th class=num>weight</th></tr>\n",
        m.u_sample_pairs,
        m.sessions.len(),
        m.lambda,
        m.prior
    );
    for c in &m.comparisons {
        for (l, name) in c.levels.iter().enumerate() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}{}</td><td class=num>{:.4}</td><td class=num>{:.6}</td><td class=num>{:+.2}</td></tr>",
                c.field.name(),
                esc(name),
                if l == 0 && c.term_frequency {
                    " (term-frequency adjusted)"
                } else {
                    ""
                },
                c.m[l],
                c.u[l],
                c.weights[l]
            );
        }
    }
    h.push_str("</table>\n<h2>Best match weight of rows without an NHS number</h2><table><tr><th>weight</th><th class=num>rows</th><th></th></tr>\n");
    let max = s
        .match_weight_histogram
        .values()
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    for (bin, n) in &s.match_weight_histogram {
        let _ = writeln!(
            h,
            "<tr><td>[{}, {})</td><td class=num>{}</td><td><span class=bar style=\"width:{}px\"></span></td></tr>",
            bin,
            bin + 2,
            n,
            (n * 300) / max
        );
    }
    h.push_str("</table>\n</body></html>\n");
    h
}
