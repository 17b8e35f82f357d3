//! go-plugin's KV example as an Outlet interface (`kv.proto`, package
//! `proto`), and a store that keeps the values in memory.
//!
//! ```
//! use kv::{GetRequest, Kv, PutRequest, Store};
//!
//! let store = Store::default();
//! store.put(PutRequest { key: "a".into(), value: b"1".to_vec() })?;
//! assert_eq!(store.get(GetRequest { key: "a".into() })?.value, b"1");
//! # Ok::<(), outlet_protocol::Status>(())
//! ```
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::RwLock;

use outlet_protocol::Status;

include!(concat!(env!("OUT_DIR"), "/proto.rs"));

/// go-plugin's handshake for the KV example: its `HandshakeConfig`.
pub const COOKIE: (&str, &str) = ("BASIC_PLUGIN", "hello");

/// The values, in memory, for as long as the plugin runs.
#[derive(Debug, Default)]
pub struct Store {
    values: RwLock<HashMap<String, Vec<u8>>>,
}

impl Kv for Store {
    fn get(&self, request: GetRequest) -> Result<GetResponse, Status> {
        // A key never put has the empty value, as in proto3 and the Go plugin.
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        let value = values.get(&request.key).cloned().unwrap_or_default();
        Ok(GetResponse { value })
    }

    fn put(&self, request: PutRequest) -> Result<Empty, Status> {
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        values.insert(request.key, request.value);
        Ok(Empty {})
    }
}

/// The KV plugin: a [`Store`] served.
pub fn plugin() -> outlet_guest::Plugin {
    outlet_guest::Plugin::new("kv", env!("CARGO_PKG_VERSION"))
        .service(KvServer::new(Store::default()))
}
