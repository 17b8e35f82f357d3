//! The greeter as an rpc plugin: one child process serving gRPC for as long
//! as the host keeps it.

fn main() -> std::process::ExitCode {
    outlet_guest::rpc::serve(greeter::plugin())
}
