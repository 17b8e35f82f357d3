//! [`Mechanism`]: how a plugin is loaded and called.

use std::fmt;

use serde::Deserialize;

/// How a plugin is loaded and called. One name everywhere: the manifest's
/// `mechanism`, the host's module, this enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// A Rust dylib from the same build, called directly.
    Native,
    /// A C-ABI shared library with a versioned function table.
    Cabi,
    /// A child process serving gRPC, compatible with HashiCorp go-plugin.
    Rpc,
    /// A WebAssembly module in a wasmtime sandbox.
    Wasm,
    /// A child process per call.
    Exec,
}

impl Mechanism {
    /// All mechanisms, fastest first.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::Native,
        Mechanism::Cabi,
        Mechanism::Wasm,
        Mechanism::Rpc,
        Mechanism::Exec,
    ];

    /// The name used in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Native => "native",
            Mechanism::Cabi => "cabi",
            Mechanism::Rpc => "rpc",
            Mechanism::Wasm => "wasm",
            Mechanism::Exec => "exec",
        }
    }

    /// Whether the host starts the plugin as a process of its own (exec,
    /// rpc), which the OS sandbox can confine.
    pub fn is_process(self) -> bool {
        matches!(self, Mechanism::Rpc | Mechanism::Exec)
    }

    /// Whether the plugin's code runs inside the host's process.
    pub fn in_process(self) -> bool {
        matches!(self, Mechanism::Native | Mechanism::Cabi)
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
