//! What checking an artifact costs before each start or call, once the
//! file is known: `Manifest::open_artifact` of a pinned manifest whose file
//! this process hashed before (an `open`, an `fstat` and a lookup). A file
//! seen for the first time, or changed, is hashed in full instead; what
//! that costs is a note, since it is paid once per file.

use std::time::{Duration, Instant};

use outlet_manifest::{Manifest, Stamp};

use super::report::Report;

/// `manifest`, pinned to its artifact's hash.
pub fn pinned(manifest: &Manifest) -> anyhow::Result<Manifest> {
    let mut pinned = manifest.clone();
    pinned.sha256 = Some(outlet_manifest::sha256_hex(&std::fs::read(&manifest.path)?));
    Ok(pinned)
}

/// `samples` checks of `manifest`'s artifact, pinned, after a first one
/// that hashes it (what hashing costs goes into `report`'s notes).
pub fn samples(
    manifest: &Manifest,
    samples: usize,
    report: &mut Report,
) -> anyhow::Result<Vec<Duration>> {
    let pinned = pinned(manifest)?;
    // A file changed within the last ticks of the file system's clock is
    // hashed at every check; a bench right after a build waits for it.
    let stamp = Stamp::from(&std::fs::metadata(&pinned.path)?);
    while !stamp.settled() {
        std::thread::sleep(Duration::from_millis(100));
    }
    pinned.open_artifact()?;
    let bytes = std::fs::read(&pinned.path)?;
    let started = Instant::now();
    outlet_manifest::sha256_hex(&bytes);
    let hash = started.elapsed();
    report.notes.push(format!(
        "{}: hashing its artifact ({:.1} MB) takes {:.1} ms, paid once per file (at first \
         sight, and after a change); each later check of the unchanged file costs an open and \
         an fstat (the \"checks\" rows)",
        pinned.name,
        bytes.len() as f64 / 1e6,
        hash.as_secs_f64() * 1e3
    ));
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        pinned.open_artifact()?;
        times.push(started.elapsed());
    }
    Ok(times)
}
