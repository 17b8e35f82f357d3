//! A manifest's TOML, as `outlet check` or `Host::load` reads it: parsed,
//! validated, then admitted by the default policy. Any text ends in a
//! manifest or an error whose message stays short, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use outlet_fuzz as _;
use outlet_manifest::Manifest;
use outlet_manifest::policy::{Policy, check};

/// The longest error message any input may produce: errors quote the
/// input, but only a cut of it.
const MOST: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/nonexistent/plugins/fuzz.toml");
    match Manifest::parse(text, file) {
        Ok(manifest) => {
            assert_eq!(manifest.file, file);
            if let Err(error) = check(&manifest) {
                assert!(error.to_string().len() <= MOST, "{error}");
            }
            if let Err(error) = Policy::default().admit(manifest) {
                assert!(error.to_string().len() <= MOST, "{error}");
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.len() <= MOST,
                "{} bytes: {message:.300}",
                message.len()
            );
        }
    }
});
