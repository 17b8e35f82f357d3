//! The greeter as a native plugin: the same `greeter::plugin()` as the exec
//! greeter, which a host of the same build calls through the `Greeter` trait
//! with no encoding at all.

outlet_guest::export_native!(greeter::plugin);
