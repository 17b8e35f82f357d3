//! The KV plugin as an rpc child process, with go-plugin's handshake: a Go
//! go-plugin host built for the KV example loads it as it is.

fn main() -> std::process::ExitCode {
    let (key, value) = kv::COOKIE;
    outlet_guest::rpc::serve_with_cookie(kv::plugin(), key, value)
}
