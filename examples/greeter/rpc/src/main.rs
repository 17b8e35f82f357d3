//! The greeter as an rpc plugin: one child process serving gRPC for as long
//! as the host keeps it.
//!
//! With config key `guestbook`, each name it greets is also written, during
//! the call, into its host's key-value store under that key: a call back
//! into the host (`proto.KV/Put`, the KV example's interface, which the host
//! serves with `Host::offer`) over go-plugin's broker.

use std::sync::{Arc, RwLock};

use greeter::{GreetRequest, GreetResponse, Greeter, GreeterServer, Greetings};
use kv::{KvClient, PutRequest};
use outlet_guest::{Plugin, Status};

#[derive(Default)]
struct Guestbook {
    greetings: Greetings,
    /// Where in the host's store names go: config key `guestbook`.
    key: RwLock<Option<String>>,
}

impl Greeter for Guestbook {
    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {
        let key = self.key.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(key) = key {
            let host = KvClient::new(outlet_guest::rpc::Host);
            host.put(PutRequest {
                key,
                value: request.name.clone().into_bytes(),
            })?;
        }
        self.greetings.greet(request)
    }
}

fn main() -> std::process::ExitCode {
    let book = Arc::new(Guestbook::default());
    let configured = book.clone();
    let plugin = Plugin::new("greeter", env!("CARGO_PKG_VERSION"))
        .service(GreeterServer::new(book))
        .on_configure(move |config| {
            configured.greetings.configure(config)?;
            *configured.key.write().unwrap_or_else(|e| e.into_inner()) =
                config.get("guestbook").cloned();
            Ok(())
        });
    outlet_guest::rpc::serve(plugin)
}
