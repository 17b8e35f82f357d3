//! The greeter as a cabi plugin written in Rust: the same greeter as the
//! exec greeter (it can also relay to the Greeter its host offers), behind
//! the C ABI of `include/outlet.h`.

outlet_guest::export_cabi!(plugin);

/// The greeter, relaying through the host when configured to.
fn plugin() -> outlet_guest::Plugin {
    greeter::plugin_calling(outlet_guest::cabi::Host)
}
