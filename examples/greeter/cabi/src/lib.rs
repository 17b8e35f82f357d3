//! The greeter as a cabi plugin written in Rust: the same `greeter::plugin()`
//! as the exec greeter, behind the C ABI of `include/outlet.h`.

outlet_guest::export_cabi!(greeter::plugin);
