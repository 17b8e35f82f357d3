//! What one run measured: the table's rows and the lines below it, printed,
//! and the same as JSON.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use super::greet::BATCH;
use super::stats::Summary;

/// One measured row: a mechanism's round trip or cost and, measured in the
/// same run, the baseline it is judged against.
pub struct Row {
    pub mechanism: &'static str,
    pub case: &'static str,
    /// The usual figure for this kind of mechanism, printed for comparison.
    pub usual: &'static str,
    pub samples: Summary,
    pub baseline: Option<(&'static str, Summary)>,
}

/// What one run measured: the table's rows, lines below it, and what the
/// JSON holds beside the rows.
#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// Prints the table, the notes and the usual figures.
    pub fn print(&self, calls: usize) {
        println!(
            "Outlet bench: medians and p99s of {calls} samples per round trip (in-process ones \
             timed in batches of {BATCH} calls), fewer for loads, starts, restarts and the \
             endless loop"
        );
        println!(
            "Baselines come from the same run: interleaved with their rows, but go-plugin's and \
             Extism's in rounds with them, and the endless loop's is its time limit"
        );
        println!(
            "{:<8} {:<40} {:>10} {:>10}  {:<30} {:>8}",
            "", "round trip", "median", "p99", "baseline (same run)", "ratio"
        );
        for row in &self.rows {
            let (name, ratio) = match &row.baseline {
                Some((name, base)) => (
                    format!("{name} {}", human(base.median)),
                    ratio_text(row.ratio().unwrap_or_default()),
                ),
                None => (String::new(), String::new()),
            };
            println!(
                "{:<8} {:<40} {:>10} {:>10}  {:<30} {:>8}",
                row.mechanism,
                row.case,
                human(row.samples.median),
                human(row.samples.p99),
                name,
                ratio
            );
        }
        if !self.notes.is_empty() {
            println!();
        }
        for note in &self.notes {
            println!("{note}");
        }
        println!("\nthe usual figures, for comparison:");
        let mut seen = Vec::new();
        for row in &self.rows {
            if !seen.contains(&row.mechanism) {
                seen.push(row.mechanism);
                println!("  {:<8} {}", row.mechanism, row.usual);
            }
        }
    }

    /// Writes the run as JSON: `calls`, `machine`, `rows`, and the extras.
    pub fn write_json(&self, calls: usize, file: &Path) -> anyhow::Result<()> {
        let rows: Vec<serde_json::Value> = self.rows.iter().map(Row::json).collect();
        let mut out = serde_json::json!({ "calls": calls, "machine": machine(), "rows": rows });
        out.as_object_mut()
            .expect("an object")
            .extend(self.extra.clone());
        std::fs::write(file, format!("{out:#}\n"))
            .with_context(|| format!("writing {}", file.display()))
    }
}

impl Row {
    /// The row's median over its baseline's.
    pub fn ratio(&self) -> Option<f64> {
        let (_, base) = self.baseline.as_ref()?;
        Some(self.samples.median.as_secs_f64() / base.median.as_secs_f64())
    }

    fn json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({
            "mechanism": self.mechanism,
            "case": self.case,
            "median_ns": self.samples.median.as_nanos() as u64,
            "p99_ns": self.samples.p99.as_nanos() as u64,
        });
        if let (Some((name, base)), Some(ratio)) = (&self.baseline, self.ratio()) {
            value["baseline"] = serde_json::json!({
                "case": name,
                "median_ns": base.median.as_nanos() as u64,
                "p99_ns": base.p99.as_nanos() as u64,
            });
            value["ratio"] = serde_json::json!(ratio);
        }
        value
    }
}

/// The machine the run was made on: its processor, as `/proc/cpuinfo`
/// names it, and how many CPUs this process may use.
pub fn machine() -> serde_json::Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = info
        .lines()
        .filter(|line| line.starts_with("model name"))
        .find_map(|line| line.split_once(':'))
        .map(|(_, name)| name.trim().to_owned());
    let cpus = std::thread::available_parallelism().map(usize::from).ok();
    serde_json::json!({ "cpu": cpu, "cpus": cpus })
}

/// A ratio as the table prints it: two decimals, more below 0.1.
pub fn ratio_text(ratio: f64) -> String {
    match ratio {
        r if r < 0.1 => format!("{r:.4}x"),
        r => format!("{r:.2}x"),
    }
}

/// A duration as the table prints it: ns, µs or ms.
pub fn human(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.3} ms", ns / 1e6)
    }
}
