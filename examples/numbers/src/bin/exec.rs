//! The numbers as an exec plugin: one process per stream, reading its
//! requests from stdin and writing its responses to stdout as they are made.

fn main() -> std::process::ExitCode {
    outlet_guest::exec::serve(&numbers::plugin())
}
