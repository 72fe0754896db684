//! The monitoring pages: static HTML with inline SVG plots drawn here (no scripts, no
//! external resources): calibration by decile, recall@k and PPV@k, the risk pyramid,
//! observed rates by decile, feature drift, and the trend over refreshes.

use super::monitor::{MonitorReport, Trend};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 420.0;
const H: f64 = 260.0;
const PAD: f64 = 40.0;

fn svg_open(title: &str) -> String {
    format!(
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\
<line x1=\"{PAD}\" y1=\"{y}\" x2=\"{x}\" y2=\"{y}\" stroke=\"#333\"/><line x1=\"{PAD}\" y1=\"10\" x2=\"{PAD}\" y2=\"{y}\" stroke=\"#333\"/>",
        esc(title),
        esc(title),
        y = H - PAD,
        x = W - 10.0
    )
}

/// Vertical bars with labels under them; values in [0, max].
fn bars(
    title: &str,
    labels: &[String],
    values: &[f64],
    max: f64,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let mut s = svg_open(title);
    let n = values.len().max(1) as f64;
    let slot = (W - PAD - 10.0) / n;
    let max = if max > 0.0 { max } else { 1.0 };
    for (i, (l, v)) in labels.iter().zip(values).enumerate() {
        let h = (H - PAD - 10.0) * (v / max).clamp(0.0, 1.0);
        let x = PAD + slot * i as f64 + slot * 0.15;
        s.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#4a7ab5\"><title>{}: {}</title></rect>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            H - PAD - h,
            slot * 0.7,
            esc(l),
            fmt(*v),
            x + slot * 0.35,
            H - PAD + 14.0,
            esc(l),
            x + slot * 0.35,
            (H - PAD - h - 3.0).max(10.0),
            fmt(*v)
        ));
    }
    s + "</svg></figure>"
}

/// Points (x, y) in [0, max]² with the diagonal: calibration.
fn calibration(r: &MonitorReport) -> String {
    let c = &r.evaluation.calibration;
    let max = c
        .iter()
        .flat_map(|d| [d.mean_predicted, d.observed_rate])
        .fold(0.01f64, f64::max);
    let sx = |v: f64| PAD + (W - PAD - 10.0) * v / max;
    let sy = |v: f64| H - PAD - (H - PAD - 10.0) * v / max;
    let mut s = svg_open("Calibration by decile: mean predicted (x) against observed rate (y)");
    s.push_str(&format!(
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#aaa\" stroke-dasharray=\"4\"/>",
        sx(0.0),
        sy(0.0),
        sx(max),
        sy(max)
    ));
    let pts: Vec<String> = c
        .iter()
        .map(|d| format!("{:.1},{:.1}", sx(d.mean_predicted), sy(d.observed_rate)))
        .collect();
    s.push_str(&format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#c0504d\"/>",
        pts.join(" ")
    ));
    for d in c {
        s.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#c0504d\"><title>decile {}: predicted {:.3}, observed {:.3}</title></circle>",
            sx(d.mean_predicted),
            sy(d.observed_rate),
            d.decile,
            d.mean_predicted,
            d.observed_rate
        ));
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{:.3}</text><text x=\"4\" y=\"14\" font-size=\"10\">{:.3}</text>",
        W - 50.0,
        H - PAD + 14.0,
        max,
        max
    ));
    s + "</svg></figure>"
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn at_k_plots(r: &MonitorReport) -> String {
    let labels: Vec<String> = r
        .evaluation
        .at_k
        .iter()
        .map(|k| format!("top {}%", k.k_percent))
        .collect();
    let recall: Vec<f64> = r.evaluation.at_k.iter().map(|k| k.recall).collect();
    let ppv: Vec<f64> = r.evaluation.at_k.iter().map(|k| k.ppv).collect();
    bars("Recall@k", &labels, &recall, 1.0, &pct) + &bars("PPV@k", &labels, &ppv, 1.0, &pct)
}

fn pyramid(r: &MonitorReport) -> String {
    let labels: Vec<String> = r.pyramid.iter().map(|b| b.band.clone()).collect();
    let rate: Vec<f64> = r.pyramid.iter().map(|b| b.observed_rate).collect();
    let max = rate.iter().copied().fold(0.0, f64::max);
    let mut rows = String::new();
    for b in &r.pyramid {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td></tr>",
            esc(&b.band),
            b.persons,
            b.events,
            b.mean_predicted,
            pct(b.observed_rate)
        ));
    }
    bars(
        "Risk pyramid: observed admission rate by band",
        &labels,
        &rate,
        max,
        &pct,
    ) + &format!(
        "<table><tr><th>band</th><th>persons</th><th>admitted</th><th>mean predicted</th><th>observed</th></tr>{rows}</table>"
    )
}

fn deciles(r: &MonitorReport) -> String {
    let c = &r.evaluation.calibration;
    let labels: Vec<String> = c.iter().map(|d| d.decile.to_string()).collect();
    let rate: Vec<f64> = c.iter().map(|d| d.observed_rate).collect();
    let max = rate.iter().copied().fold(0.0, f64::max);
    bars(
        "Observed admission rate by decile of predicted risk (10 = highest)",
        &labels,
        &rate,
        max,
        &pct,
    )
}

fn drift_table(r: &MonitorReport) -> String {
    let Some(d) = &r.drift else {
        return "<p>No earlier scored as-of date to compare features with.</p>".into();
    };
    let mut rows = String::new();
    for f in &d.features {
        rows.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{:.4}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            esc(&f.status),
            esc(&f.feature),
            f.psi,
            esc(&f.status),
            f.mean_before,
            f.mean_after
        ));
    }
    format!(
        "<h2>Feature drift from {} (PSI; warn {}, alert {})</h2><table><tr><th>feature</th><th>PSI</th><th>status</th><th>mean before</th><th>mean now</th></tr>{rows}</table>",
        esc(&d.from_as_of),
        d.warn,
        d.alert
    )
}

const STYLE: &str = "<style>body{font-family:sans-serif;margin:2em;max-width:70em}figure{display:inline-block;margin:0 1em 1em 0}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}tr.warn{background:#fff3c4}tr.alert{background:#f8c4c4}</style>";

/// The page of one monitored as-of date.
pub fn monitor_html(r: &MonitorReport) -> String {
    let e = &r.evaluation;
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Monitoring: as-of {as_of}</title>{STYLE}</head><body>\
<h1>Risk model monitoring: as-of {as_of}</h1>\
<p>Model <code>{model}</code>. Outcome: an emergency admission in the {h} days to {end}, from the ingested spells (data to {data_end}). \
{n} persons evaluated ({nf} scored keys no longer in the population), {ev} admitted ({prev}). AUROC {auroc:.3}, Brier {brier:.4}.</p>\
{atk}{cal}{dec}<h2>Risk pyramid</h2>{pyr}{drift}<p><a href=\"../index.html\">Trend over refreshes</a></p></body></html>\n",
        as_of = esc(&r.as_of),
        model = esc(&r.model_version),
        h = r.horizon_days,
        end = esc(&r.window_end),
        data_end = esc(&r.data_end),
        n = r.persons_evaluated,
        nf = r.persons_not_found,
        ev = e.events,
        prev = pct(e.prevalence),
        auroc = e.auroc,
        brier = e.brier,
        atk = at_k_plots(r),
        cal = calibration(r),
        dec = deciles(r),
        pyr = pyramid(r),
        drift = drift_table(r),
    )
}

/// Lines over the monitored as-of dates: AUROC and recall at each k.
fn trend_plot(t: &Trend) -> String {
    let n = t.points.len();
    let sx = |i: usize| PAD + (W - PAD - 20.0) * (i as f64 + 0.5) / n.max(1) as f64;
    let sy = |v: f64| H - PAD - (H - PAD - 10.0) * v.clamp(0.0, 1.0);
    let mut s = svg_open("Trend: AUROC (black) and recall at 0.5, 1, 2, 5 % (blues)");
    let mut series: Vec<(String, Vec<f64>)> =
        vec![("#000".into(), t.points.iter().map(|p| p.auroc).collect())];
    let blues = ["#9ecae1", "#6baed6", "#3182bd", "#08519c"];
    for (j, c) in blues.iter().enumerate() {
        let v = t
            .points
            .iter()
            .map(|p| p.at_k.get(j).map_or(0.0, |k| k.recall))
            .collect();
        series.push((c.to_string(), v));
    }
    for (colour, v) in &series {
        let pts: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(i, y)| format!("{:.1},{:.1}", sx(i), sy(*y)))
            .collect();
        s.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            pts.join(" ")
        ));
        for (i, y) in v.iter().enumerate() {
            s.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}: {:.3}</title></circle>",
                sx(i),
                sy(*y),
                esc(&t.points[i].as_of),
                y
            ));
        }
    }
    for (i, p) in t.points.iter().enumerate() {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            sx(i),
            H - PAD + 14.0,
            esc(&p.as_of)
        ));
    }
    s + "</svg></figure>"
}

/// The trend page over every monitored as-of date.
pub fn trend_html(t: &Trend) -> String {
    let mut rows = String::new();
    for p in &t.points {
        let k = |j: usize| p.at_k.get(j).map_or(String::new(), |k| pct(k.recall));
        rows.push_str(&format!(
            "<tr><td><a href=\"as_of={d}/monitor.html\">{d}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&p.model_version),
            p.persons,
            p.events,
            p.auroc,
            k(0),
            k(1),
            k(2),
            k(3),
            p.max_psi.map_or(String::new(), |v| format!("{v:.3}")),
            d = esc(&p.as_of),
        ));
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Monitoring trend</title>{STYLE}</head><body>\
<h1>Risk model monitoring over refreshes</h1>{}<table><tr><th>as-of</th><th>model</th><th>persons</th><th>admitted</th><th>AUROC</th><th>recall@0.5%</th><th>recall@1%</th><th>recall@2%</th><th>recall@5%</th><th>max PSI</th></tr>{rows}</table></body></html>\n",
        trend_plot(t)
    )
}
