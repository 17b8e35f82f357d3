//! Sampling and summaries: a row's median and p99, two things timed
//! interleaved, the middle of a few rounds, and resident memory.

use std::time::{Duration, Instant};

use anyhow::Context;

/// The median and p99 of a row's samples.
#[derive(Clone, Copy)]
pub struct Summary {
    pub median: Duration,
    pub p99: Duration,
}

impl Summary {
    /// Summarizes samples (at least one).
    pub fn of(mut samples: Vec<Duration>) -> Summary {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Summary {
            median: at(0.5),
            p99: at(0.99),
        }
    }
}

/// Times `a` and `b` in alternating batches of `batch` calls, after a
/// tenth as many unrecorded ones; returns the per-call summary of each.
pub fn side_by_side(
    samples: usize,
    batch: u32,
    mut a: impl FnMut() -> anyhow::Result<()>,
    mut b: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Summary, Summary)> {
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<Duration> {
        let started = Instant::now();
        for _ in 0..batch {
            f()?;
        }
        Ok(started.elapsed() / batch)
    };
    for _ in 0..samples / 10 {
        time(&mut a)?;
        time(&mut b)?;
    }
    let (mut first, mut second) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for _ in 0..samples {
        first.push(time(&mut a)?);
        second.push(time(&mut b)?);
    }
    Ok((Summary::of(first), Summary::of(second)))
}

/// The median of a few values, one per round (an odd number of them).
pub fn middle<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_unstable_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    values[values.len() / 2]
}

/// This process's resident memory, in bytes.
pub fn resident() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kb.parse::<u64>()? * 1024)
}
