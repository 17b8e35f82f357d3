//! WASI preview 1 for a wasm plugin whose module imports it, with only what
//! the manifest's `[permissions]` grant: its `env` and `inherit_env`
//! variables, the `dirs` preopened read-only or read-write, the real
//! clocks if `clock`, real random bytes if `random`. Without those the
//! clocks stand still at 0 and random bytes are a fixed sequence, so the
//! guest learns nothing of the host from them; there is no network, no
//! blocking wait (`poll_oneoff` is refused: a guest waiting in the host
//! could not be stopped at its deadline), and stdout and stderr become log
//! lines tagged with the plugin's name.
//!
//! Not stopped at the deadline: a file operation that blocks in the host
//! (a FIFO in a granted folder). wasmtime-wasi runs WASI calls on tokio,
//! which cannot be entered from a thread that runs a runtime already: from
//! there, a call to such a plugin runs on a thread of its own (see
//! `Wasm::call_with`).

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::WasmError;
use crate::log::Limiter;
use outlet_manifest::Manifest;
use wasmtime::Linker;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{Deterministic, FsPerms, HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// The import module of WASI preview 1.
pub(super) const MODULE: &str = "wasi_snapshot_preview1";

/// `errno` NOTSUP.
const NOTSUP: i32 = 58;

/// What a plugin's WASI contexts are made from, one per instance.
pub(super) struct Grants {
    plugin: Arc<str>,
    env: Vec<(String, String)>,
    /// Each granted folder: the path checked, the folder opened there at
    /// load (held, so that every instance gets that same folder whatever
    /// is put at the path later), where the guest sees it, and writable.
    dirs: Vec<(PathBuf, std::fs::File, String, bool)>,
    clock: bool,
    random: bool,
    /// The plugin's stdout and stderr lines, held to the log's rate
    /// (`log::Limiter`), in every instance.
    limits: [Arc<Mutex<Limiter>>; 2],
}

/// Limiters for a plugin's stdout and stderr.
fn limits() -> [Arc<Mutex<Limiter>>; 2] {
    [
        Arc::new(Mutex::new(Limiter::new("stdout"))),
        Arc::new(Mutex::new(Limiter::new("stderr"))),
    ]
}

impl Grants {
    /// The grants of a manifest. Folders are resolved once, here, to paths
    /// without links, and opened: each instance gets the folder opened
    /// here (through `/proc/self/fd`), not whatever the path names later.
    ///
    /// # Errors
    /// A folder that does not exist, that no longer is the folder the
    /// host's policy admitted, that changed while it was opened, or that is
    /// inside a folder the plugin may write (granted twice, once writable).
    pub(super) fn new(manifest: &Manifest) -> Result<Grants, WasmError> {
        let permissions = &manifest.permissions;
        let mut env: Vec<_> = permissions.env.clone().into_iter().collect();
        env.extend(
            permissions
                .inherit_env
                .iter()
                .filter_map(|key| Some((key.clone(), std::env::var(key).ok()?))),
        );
        let mut dirs = Vec::new();
        for grant in &permissions.dirs {
            let refuse = |source| WasmError::Folder {
                host: grant.host.clone(),
                guest: grant.guest.clone().unwrap_or_default(),
                source,
            };
            let host = grant.host.canonicalize().map_err(refuse)?;
            // Below in-process, the host's policy resolved and confined the
            // folder at admission: it must still be there, not a link to
            // elsewhere put since (this load may be a reload).
            if manifest.trust != outlet_manifest::Trust::InProcess && host != grant.host {
                return Err(refuse(std::io::Error::other(format!(
                    "it now leads to {}, not to the folder the host's policy admitted",
                    host.display()
                ))));
            }
            let folder = open_folder(&host).map_err(refuse)?;
            dirs.push((
                host,
                folder,
                grant.guest.clone().unwrap_or_default(),
                grant.write,
            ));
        }
        for (outer, ..) in dirs.iter().filter(|(.., write)| *write) {
            let nested = dirs
                .iter()
                .find(|(inner, ..)| inner != outer && inner.starts_with(outer));
            if let Some((inner, ..)) = nested {
                return Err(WasmError::NestedFolder {
                    inner: inner.clone(),
                    outer: outer.clone(),
                });
            }
        }
        Ok(Grants {
            plugin: manifest.name.as_str().into(),
            env,
            dirs,
            clock: permissions.clock,
            random: permissions.random,
            limits: limits(),
        })
    }

    /// Nothing granted.
    fn none(plugin: Arc<str>) -> Grants {
        Grants {
            plugin,
            env: Vec::new(),
            dirs: Vec::new(),
            clock: false,
            random: false,
            limits: limits(),
        }
    }

    /// The context's builder with everything but the folders.
    fn builder(&self) -> WasiCtxBuilder {
        let mut wasi = WasiCtxBuilder::new();
        // File operations run on the calling thread, which is the thread
        // running the guest, instead of hopping to a pool; set before the
        // folders are opened, which copy it.
        wasi.allow_blocking_current_thread(true)
            .envs(&self.env)
            .stdout(Log::new(&self.plugin, 2, &self.limits[0]))
            .stderr(Log::new(&self.plugin, 3, &self.limits[1]));
        if !self.clock {
            wasi.wall_clock(Frozen).monotonic_clock(Frozen);
        }
        if !self.random {
            wasi.secure_random(Deterministic::new(vec![0x5a, 0xc3, 0x96, 0x3c]))
                .insecure_random(Deterministic::new(vec![0xa5, 0x3c, 0x69, 0xc3]))
                .insecure_random_seed(0);
        }
        wasi
    }

    /// A fresh context for one instance.
    ///
    /// # Errors
    /// A granted folder that cannot be opened, naming it.
    pub(super) fn context(&self) -> Result<WasiP1Ctx, WasmError> {
        let mut wasi = self.builder();
        for (host, folder, guest, write) in &self.dirs {
            let perms = if *write {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            // The folder held, not the path: `/proc/self/fd/N` opens the
            // very folder that descriptor is.
            let held = format!("/proc/self/fd/{}", folder.as_raw_fd());
            wasi.preopened_dir(held, guest, perms)
                .map_err(|e| WasmError::Folder {
                    host: host.clone(),
                    guest: guest.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
        }
        Ok(wasi.build_p1())
    }
}

/// Opens the folder at `path` (resolved, without links) and checks that
/// the folder opened is the one at that path: a link put on the path since
/// it was resolved would show as another path.
fn open_folder(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let folder = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", folder.as_raw_fd()))?;
    if opened != path {
        return Err(std::io::Error::other(format!(
            "it changed while it was opened: {} was opened instead",
            opened.display()
        )));
    }
    Ok(folder)
}

/// Links WASI preview 1 into `linker`, reaching each store's context
/// through `context`; `poll_oneoff` is refused.
pub(super) fn link<T: Send + 'static>(
    linker: &mut Linker<T>,
    context: fn(&mut T) -> &mut WasiP1Ctx,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, context)?;
    linker.allow_shadowing(true);
    linker.func_wrap(
        MODULE,
        "poll_oneoff",
        |_: i32, _: i32, _: i32, _: i32| -> i32 { NOTSUP },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// A context granting nothing: what a store that was not given one uses.
pub(super) fn locked(plugin: Arc<str>) -> WasiP1Ctx {
    Grants::none(plugin).builder().build_p1()
}

/// Clocks that stand still at 0.
struct Frozen;

impl HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// stdout or stderr of a guest: each line a log event at `level` (as
/// `log::numbered` counts them), cut at `log::MAX_LINE`.
#[derive(Clone)]
struct Log {
    plugin: Arc<str>,
    level: i32,
    limit: Arc<Mutex<Limiter>>,
}

impl Log {
    fn new(plugin: &Arc<str>, level: i32, limit: &Arc<Mutex<Limiter>>) -> Log {
        Log {
            plugin: plugin.clone(),
            level,
            limit: limit.clone(),
        }
    }
}

impl IsTerminal for Log {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Log {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LogLines {
            log: self.clone(),
            line: Vec::new(),
        })
    }

    /// Used by WASI 0.3 only, which is not linked.
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

/// One store's stream of a `Log`, holding the line being written.
struct LogLines {
    log: Log,
    line: Vec<u8>,
}

impl LogLines {
    fn emit(&mut self) {
        if !self.line.is_empty() {
            let mut limit = self.log.limit.lock().unwrap_or_else(|e| e.into_inner());
            limit.numbered(&self.log.plugin, self.log.level, &self.line);
            self.line.clear();
        }
    }
}

impl OutputStream for LogLines {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        for &byte in &bytes {
            if byte == b'\n' {
                self.emit();
            } else if self.line.len() < crate::log::MAX_LINE {
                self.line.push(byte);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogLines {
    async fn ready(&mut self) {}
}

impl Drop for LogLines {
    fn drop(&mut self) {
        self.emit();
    }
}
