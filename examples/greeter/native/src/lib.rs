//! The greeter as a native plugin: the same greeter as the exec greeter
//! (it can also relay to the Greeter its host offers), which a host of the
//! same build calls through the `Greeter` trait with no encoding at all.

outlet_guest::export_native!(plugin);

/// The greeter, relaying through the host when configured to.
fn plugin() -> outlet_guest::Plugin {
    greeter::plugin_calling(outlet_guest::native::Host)
}
