//! The greeter as an exec plugin: one call per process.

fn main() -> std::process::ExitCode {
    outlet_guest::exec::serve(&greeter::plugin())
}
