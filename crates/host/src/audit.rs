//! The audit trail of calls through the host: one [`AuditRecord`] for every
//! call a plugin makes to a service the host offers, allowed or refused,
//! given to `tracing` (target `outlet::audit`) and to the host's
//! [`AuditSink`], if it installed one ([`crate::HostBuilder::audit`]).
//!
//! [`JsonLines`] is a sink that appends each record to a file as one line
//! of JSON, written before the call's answer goes back to the plugin: once
//! a plugin has its answer, the record is in the file (in the kernel's page
//! cache), so killing the host then loses none. (The service has run by
//! then: a host killed while the call is served leaves its effect and no
//! record.) It does not `fsync`: a crash of the machine may lose the last
//! records. A record it cannot write is logged as an error, and the call
//! goes on.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use outlet_protocol::Code;

/// One call through the host.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// When the call arrived.
    pub time: SystemTime,
    /// The calling plugin, as the host knows it.
    pub caller: String,
    /// Who answered: `host` for a service the host offers.
    pub callee: String,
    /// The gRPC path called, `/package.Service/Method`.
    pub method: String,
    /// How it ended: `Ok`, or the code it failed with (`PermissionDenied`
    /// for a call no grant allows).
    pub code: Code,
    /// From its arrival to its answer.
    pub duration: Duration,
    /// The request's size, encoded.
    pub request_bytes: usize,
    /// The answer's size, encoded: 0 for a call that failed.
    pub response_bytes: usize,
    /// The calls it was made within, outermost first, ending with the
    /// caller.
    pub chain: Vec<String>,
}

impl AuditRecord {
    /// The record as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        /// The line's fields, in this order.
        #[derive(serde::Serialize)]
        struct Line<'a> {
            time_unix_ns: u64,
            caller: &'a str,
            callee: &'a str,
            method: &'a str,
            code: String,
            duration_ns: u64,
            request_bytes: usize,
            response_bytes: usize,
            chain: &'a [String],
        }
        let since_epoch = self
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let line = Line {
            time_unix_ns: since_epoch.as_nanos() as u64,
            caller: &self.caller,
            callee: &self.callee,
            method: &self.method,
            code: format!("{:?}", self.code),
            duration_ns: self.duration.as_nanos() as u64,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            chain: &self.chain,
        };
        serde_json::to_string(&line).unwrap_or_default()
    }
}

/// Where the host sends every [`AuditRecord`], besides `tracing`. Called on
/// the calling thread, before the call's answer goes back: keep it short.
pub trait AuditSink: Send + Sync + 'static {
    /// Takes one record.
    fn record(&self, record: &AuditRecord);
}

impl<T: AuditSink + ?Sized> AuditSink for std::sync::Arc<T> {
    fn record(&self, record: &AuditRecord) {
        (**self).record(record);
    }
}

/// An [`AuditSink`] that appends each record to a file, one JSON object per
/// line, before the answer goes back (see the module documentation for
/// what that keeps).
#[derive(Debug)]
pub struct JsonLines {
    /// The file, and whether the last write may have left half a line.
    file: Mutex<(File, bool)>,
}

impl JsonLines {
    /// Appends to `path`, made (0600) if it is not there.
    ///
    /// # Errors
    /// The OS's, when the file cannot be opened for appending.
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<JsonLines> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        Ok(JsonLines {
            file: Mutex::new((file, false)),
        })
    }
}

impl AuditSink for JsonLines {
    fn record(&self, record: &AuditRecord) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let (file, torn) = &mut *file;
        // After a failed write, a new line: the next record stands alone.
        let mut line = String::from(if *torn { "\n" } else { "" });
        line.push_str(&record.to_json());
        line.push('\n');
        *torn = false;
        if let Err(error) = file.write_all(line.as_bytes()) {
            *torn = true;
            tracing::error!(target: "outlet::audit", %error, "an audit record could not be written");
        }
    }
}

/// Gives `record` to `tracing` and to `sink`.
pub(crate) fn emit(sink: Option<&dyn AuditSink>, record: &AuditRecord) {
    tracing::info!(
        target: "outlet::audit",
        caller = ?record.caller,
        callee = ?record.callee,
        method = ?record.method,
        chain = ?record.chain,
        code = ?record.code,
        duration_ns = record.duration.as_nanos() as u64,
        request_bytes = record.request_bytes,
        response_bytes = record.response_bytes,
        "call through the host"
    );
    if let Some(sink) = sink {
        sink.record(record);
    }
}
