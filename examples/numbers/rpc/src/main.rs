//! The numbers as an rpc plugin: one child process serving the numbers'
//! streams as gRPC streams, to an Outlet host or a Go go-plugin host.

fn main() -> std::process::ExitCode {
    outlet_guest::rpc::serve(numbers::plugin())
}
