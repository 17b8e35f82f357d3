//! Outlet's integration tests: real plugins in real processes. One test
//! binary for the whole workspace, so its dependencies link once.

mod asynchronous;
mod bus;
mod cabi;
mod call_context;
mod events;
mod exec;
mod exhaustion;
mod load;
mod native;
mod policy;
mod readme;
mod rpc;
mod sandbox;
mod stats;
mod stream;
mod stress;
mod support;
mod wasm;
