//! The numbers as a native plugin: a host of the same build reads its
//! streams as its code makes them.

outlet_guest::export_native!(numbers::plugin);
