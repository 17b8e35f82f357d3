//! `outlet bench --chart FILE.svg`: every row on one logarithmic time axis,
//! grouped by mechanism, each row's median as a bar with its p99 as a
//! whisker, its baseline as a grey bar beside it with the ratio written
//! on the row, and the usual figures for each kind of mechanism marked.

use std::path::Path;

use anyhow::Context;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::report::{Row, human, ratio_text};

/// The order of the groups, fastest kind of mechanism first; others after.
const GROUPS: [&str; 7] = ["native", "cabi", "wasm", "extism", "rpc", "exec", "bus"];

/// The usual figures for each kind of mechanism, marked across the chart.
const USUAL: [(f64, &str); 4] = [
    (5.0, "~5 ns: a Rust call"),
    (1e3, "~1 µs: a wasm call"),
    (50e3, "~50 µs: a go-plugin call"),
    (5e6, "~5 ms: a process per call"),
];

const ROW: u32 = 24;
/// The rows' names, left of the bars, and their figures, right of them.
const LABELS: u32 = 400;
const FIGURES: u32 = 560;
const WIDTH: u32 = 1800;

/// A colour per group, from a palette that stays apart for the colour-blind.
fn colour(group: &str) -> RGBColor {
    match group {
        "native" => RGBColor(0, 114, 178),
        "cabi" => RGBColor(86, 180, 233),
        "wasm" => RGBColor(0, 158, 115),
        "extism" => RGBColor(120, 190, 160),
        "rpc" => RGBColor(213, 94, 0),
        "exec" => RGBColor(204, 121, 167),
        _ => RGBColor(230, 159, 0),
    }
}

/// Draws `rows` into `file` as SVG, titled `title`.
pub fn draw(rows: &[Row], title: &str, file: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        !rows.is_empty(),
        "--chart: the run measured no rows to draw"
    );
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_key(|row| {
        GROUPS
            .iter()
            .position(|g| *g == row.mechanism)
            .unwrap_or(GROUPS.len())
    });
    drawn(&sorted, title, file)
        .with_context(|| format!("--chart {}: cannot draw the chart", file.display()))
}

/// An axis tick: a power of ten in ns, µs, ms or s.
fn tick(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.0} ns"),
        ns if ns < 1e6 => format!("{:.0} µs", ns / 1e3),
        ns if ns < 1e9 => format!("{:.0} ms", ns / 1e6),
        ns => format!("{:.0} s", ns / 1e9),
    }
}

fn ns(d: std::time::Duration) -> f64 {
    (d.as_nanos() as f64).max(1.0)
}

fn drawn(rows: &[&Row], title: &str, file: &Path) -> anyhow::Result<()> {
    let longest = (rows.iter())
        .flat_map(|r| {
            let base = r.baseline.as_ref().map_or(1.0, |(_, b)| ns(b.median));
            [ns(r.samples.p99), base]
        })
        .fold(USUAL[3].0, f64::max);
    let (low, high) = (1.0, longest * 2.0);
    let n = rows.len();
    // A band above the rows names the usual figures.
    let top = n as f64 + 1.0;
    let height = 120 + ROW * (u32::try_from(n).unwrap_or(1000) + 1);
    let root = SVGBackend::new(file, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, rest) = root.split_horizontally(LABELS);
    let (middle, right) = rest.split_horizontally(WIDTH - LABELS - FIGURES);
    let mut chart = ChartBuilder::on(&middle)
        .caption(title, ("sans-serif", 18))
        .margin_top(10)
        .margin_right(10)
        .x_label_area_size(36)
        .build_cartesian_2d((low..high).log_scale(), 0f64..top)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .y_labels(0)
        .x_desc("time per call or operation (log scale); grey: each row's baseline, same run")
        .x_label_formatter(&|v| tick(*v))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    let small = |colour: &RGBColor| ("sans-serif", 12).into_font().color(colour);
    // The usual figures: a dashed line each, named at the top.
    for (step, (at, name)) in USUAL.into_iter().enumerate() {
        chart.draw_series([DashedPathElement::new(
            vec![(at, 0.0), (at, top - 0.5 * (step % 2) as f64)],
            4,
            4,
            BLACK.mix(0.5),
        )])?;
        let y = top - 0.1 - 0.5 * (step % 2) as f64;
        chart.draw_series([Text::new(name, (at * 1.1, y), small(&BLACK))])?;
    }
    let mut group = "";
    for (index, row) in rows.iter().enumerate() {
        let y = (n - index) as f64 - 0.5;
        let fill = colour(row.mechanism);
        let (median, p99) = (ns(row.samples.median), ns(row.samples.p99));
        chart.draw_series([Rectangle::new(
            [(low, y + 0.04), (median, y + 0.36)],
            fill.filled(),
        )])?;
        // The p99, a whisker from the median.
        chart.draw_series([PathElement::new(
            vec![(median, y + 0.2), (p99.max(median), y + 0.2)],
            fill.stroke_width(1),
        )])?;
        let mut note = format!(
            "{} (p99 {})",
            human(row.samples.median),
            human(row.samples.p99)
        );
        if let Some((name, base)) = &row.baseline {
            let base_ns = ns(base.median);
            chart.draw_series([Rectangle::new(
                [(low, y - 0.36), (base_ns, y - 0.04)],
                RGBColor(170, 170, 170).filled(),
            )])?;
            // A baseline of no time has no ratio worth writing.
            let ratio = (row.ratio())
                .filter(|ratio| ratio.is_finite())
                .map_or_else(|| "–".to_owned(), ratio_text);
            note = format!("{note}   {ratio} of {name} ({})", human(base.median));
        }
        // The row's name on the left, its figures on the right, the
        // group's name at its first row, where a line parts it from the
        // group above.
        let (_, top) = chart.backend_coord(&(low, y + 0.5));
        let (_, bottom) = chart.backend_coord(&(high, y - 0.5));
        let middle = (top + bottom) / 2;
        right.draw(&Text::new(note, (8, middle - 7), small(&BLACK)))?;
        if row.mechanism != group {
            group = row.mechanism;
            let bold = ("sans-serif", 14)
                .into_font()
                .style(FontStyle::Bold)
                .color(&fill);
            left.draw(&Text::new(group, (8, middle - 7), bold))?;
            if index > 0 {
                root.draw(&PathElement::new(
                    vec![(8, top), (WIDTH as i32 - 8, top)],
                    BLACK.mix(0.25),
                ))?;
            }
        }
        left.draw(&Text::new(row.case, (78, middle - 7), small(&BLACK)))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bench::stats::Summary;

    fn summary(ns: u64) -> Summary {
        Summary {
            median: Duration::from_nanos(ns),
            p99: Duration::from_nanos(ns * 2),
        }
    }

    #[test]
    fn a_chart_has_every_row_its_ratio_and_the_usual_figures() {
        let rows = [
            Row {
                mechanism: "rpc",
                case: "KV Get, frames",
                usual: "",
                samples: summary(6_790),
                baseline: Some(("go-plugin Go host + Go plugin", summary(135_800))),
            },
            Row {
                mechanism: "native",
                case: "Greet, direct trait call",
                usual: "",
                samples: summary(147),
                baseline: Some(("direct Rust greet", summary(98))),
            },
            Row {
                mechanism: "exec",
                case: "Greet, one process per call",
                usual: "",
                samples: summary(565_543),
                baseline: None,
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("chart.svg");
        draw(&rows, "a run", &file).unwrap();
        let svg = std::fs::read_to_string(&file).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in [
            "a run",
            "Greet, direct trait call",
            "KV Get, frames",
            "Greet, one process per call",
            "~5 ns: a Rust call",
            "~5 ms: a process per call",
            "of go-plugin Go host + Go plugin",
        ] {
            assert!(svg.contains(text), "{text} is missing");
        }
        // Grouped: native's row is drawn above rpc's, which comes first.
        let at = |text: &str| svg.find(text).unwrap();
        assert!(at("Greet, direct trait call") < at("KV Get, frames"));
        assert!(svg.contains(&ratio_text(147.0 / 98.0)), "the ratio");
    }
}
