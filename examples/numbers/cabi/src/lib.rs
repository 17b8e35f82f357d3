//! The numbers as a cabi plugin written in Rust, behind the C ABI of
//! `include/outlet.h`: its streams are `open`, `next` and `close` of the
//! plugin's table, its requests pulled with the host's `next_request`.

outlet_guest::export_cabi!(numbers::plugin);
