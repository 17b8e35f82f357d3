//! native: Greet through the generated client, which calls the plugin's
//! implementation directly; and what loading a native plugin costs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use outlet_dylib::Reopen;
use outlet_host::Host;
use outlet_manifest::Manifest;

use super::greet::in_process;
use super::report::{Report, Row, human};
use super::stats::{Summary, resident, side_by_side};

const USUAL: &str = "plugin package: direct call ~5 ns";

/// Greet, through the plugin against the greeter called directly.
pub fn greet(host: &Host, manifests: &Path, calls: usize) -> anyhow::Result<Row> {
    in_process(
        host,
        &manifests.join("native.toml"),
        calls,
        "native",
        "Greet, Rust dylib, direct trait call",
        USUAL,
    )
}

/// Copies of the native greeter, so that every load maps a file of its own
/// (the dynamic loader shares one mapping per path).
struct Copies {
    manifest: Manifest,
    dir: tempfile::TempDir,
}

impl Copies {
    /// Copy `i`, made on first use, under a name of its own.
    fn get(&self, i: usize) -> anyhow::Result<Manifest> {
        let path = self.dir.path().join(format!("libgreeter_native_{i}.so"));
        if !path.exists() {
            std::fs::copy(&self.manifest.path, &path)
                .with_context(|| format!("copying {}", self.manifest.path.display()))?;
        }
        let mut copy = self.manifest.clone();
        copy.path = path;
        copy.name = format!("{}-{i}", self.manifest.name);
        Ok(copy)
    }
}

/// What loading native plugins costs: one (open, checks, Hello) and
/// unloading it, beside a bare `dlopen` + `dlclose` of the same file; 100
/// distinct copies one after the other; resident memory before loading,
/// with one loaded, and after 100 load and unload cycles.
pub fn load(
    host: &Host,
    manifests: &Path,
    samples: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let copies = Copies {
        manifest: Manifest::load(manifests.join("native.toml"))?,
        dir: tempfile::tempdir()?,
    };
    let rss_before = resident()?;
    let one = copies.get(0)?;
    let (ours, base) = beside_bare_dlopen(host, &one, samples)?;
    let plugin = host.load_manifest(one.clone())?;
    let rss_one = resident()?;
    host.unload(plugin.name());
    drop(plugin);
    for _ in 0..100 {
        let plugin = host.load_manifest(one.clone())?;
        host.unload(plugin.name());
    }
    let rss_cycled = resident()?;
    let hundred = hundred_distinct(host, &copies)?;
    report.rows.push(Row {
        mechanism: "native",
        case: "load (open, checks, Hello) + unload",
        usual: USUAL,
        samples: ours,
        baseline: Some(("bare dlopen + dlclose", base)),
    });
    let rss = [rss_before, rss_one, rss_cycled];
    report.notes.push(format!(
        "native loading: 100 distinct plugins loaded in {}; resident memory {} KiB before, \
         {} KiB with one plugin loaded, {} KiB after 100 load/unload cycles",
        human(hundred),
        rss[0] >> 10,
        rss[1] >> 10,
        rss[2] >> 10
    ));
    report.extra.insert(
        "native_loading".into(),
        serde_json::json!({
            "hundred_distinct_ns": hundred.as_nanos() as u64,
            "rss_before": rss[0],
            "rss_one_loaded": rss[1],
            "rss_after_100_cycles": rss[2],
        }),
    );
    Ok(())
}

/// Loading and unloading `one` through the host, interleaved with a bare
/// `dlopen` + `dlclose` of the same file.
fn beside_bare_dlopen(
    host: &Host,
    one: &Manifest,
    samples: usize,
) -> anyhow::Result<(Summary, Summary)> {
    // Made on the first bare open, which comes after the host's first load:
    // only a file this process has loaded as a plugin opens bare.
    let mut bare: Option<Reopen> = None;
    side_by_side(
        samples,
        1,
        || {
            let plugin = host.load_manifest(one.clone())?;
            host.unload(plugin.name());
            Ok(())
        },
        || {
            if bare.is_none() {
                bare = Some(Reopen::new(&one.path)?);
            }
            if let Some(bare) = &bare {
                bare.open_and_close()?;
            }
            Ok(())
        },
    )
}

/// The time to load 100 distinct copies one after the other; they are
/// unloaded afterwards.
fn hundred_distinct(host: &Host, copies: &Copies) -> anyhow::Result<Duration> {
    let copies: Vec<_> = (1..=100)
        .map(|i| copies.get(i))
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let loaded: Vec<_> = copies
        .into_iter()
        .map(|m| host.load_manifest(m))
        .collect::<Result<_, _>>()?;
    let hundred = started.elapsed();
    for plugin in loaded {
        host.unload(plugin.name());
    }
    Ok(hundred)
}
