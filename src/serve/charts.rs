//! Charts as inline SVG, drawn on the server with the `plotters` crate's SVG backend
//! (no script, no font files, nothing fetched by the browser). Suppressed counts are
//! drawn as no bar and labelled `*`.

use plotters::prelude::*;

use super::access::Count;

const BAR: RGBColor = RGBColor(0, 94, 184); // NHS blue
const HIGH: RGBColor = RGBColor(218, 41, 28); // NHS red

/// The risk pyramid: one centred bar per band, the highest-risk band on top; width by
/// the square root of the count so the small top bands stay visible.
pub fn pyramid(bands: &[(String, Count)], high: &[String]) -> String {
    let mut svg = String::new();
    let h = 40 + 34 * bands.len() as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (560, h)).into_drawing_area();
        let _ = draw_pyramid(&root, bands, high);
        let _ = root.present();
    }
    svg
}

fn draw_pyramid(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    bands: &[(String, Count)],
    high: &[String],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let widest = bands
        .iter()
        .filter_map(|(_, c)| c.0)
        .map(|n| (n as f64).sqrt())
        .fold(1.0, f64::max);
    let n = bands.len() as i32;
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .caption("Risk pyramid (persons per band)", ("sans-serif", 16))
        .build_cartesian_2d(-1.0f64..1.0f64, 0..n.max(1))
        .map_err(|e| e.to_string())?;
    for (i, (name, c)) in bands.iter().enumerate() {
        let y = n - 1 - i as i32;
        let half =
            c.0.map(|v| (v as f64).sqrt() / widest * 0.62)
                .unwrap_or(0.0);
        let colour = if high.contains(name) { HIGH } else { BAR };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(-half, y), (half, y + 1)],
                colour.mix(0.85).filled(),
            )))
            .map_err(|e| e.to_string())?;
        let label = format!("{name}: {}", c.text());
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (0.66, y),
                ("sans-serif", 14).into_font(),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Persons per risk decile (10 = the highest-risk tenth), as vertical bars.
pub fn deciles(rows: &[(u8, Count)]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 260)).into_drawing_area();
        let _ = draw_deciles(&root, rows);
        let _ = root.present();
    }
    svg
}

fn draw_deciles(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    rows: &[(u8, Count)],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let top = rows
        .iter()
        .filter_map(|(_, c)| c.0)
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .caption(
            "Persons per risk decile (10 = highest risk)",
            ("sans-serif", 16),
        )
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5f64..10.5f64, 0f64..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(10)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(rows.iter().filter_map(|(d, c)| {
            let v = c.0? as f64;
            let x = f64::from(*d);
            let colour = if *d == 10 { HIGH } else { BAR };
            Some(Rectangle::new(
                [(x - 0.4, 0.0), (x + 0.4, v)],
                colour.mix(0.85).filled(),
            ))
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}
