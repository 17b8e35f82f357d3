//! The go-plugin handshake line an rpc plugin prints first, and the
//! version list a host hands a plugin (`PLUGIN_PROTOCOL_VERSIONS`). A line
//! that parses prints back as a line that parses the same; one that does
//! not is quoted cut.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outlet_fuzz as _;
use outlet_rpc::{HandshakeError, HandshakeLine, negotiate};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    match line.parse::<HandshakeLine>() {
        Ok(parsed) => {
            let again: HandshakeLine = parsed.to_string().parse().expect("a printed line parses");
            assert_eq!(again, parsed);
            assert!(!parsed.address.is_empty());
        }
        Err(HandshakeError::Malformed { line }) => assert!(line.len() <= 200),
        Err(_) => {}
    }
    let ours = [1, 2, 7];
    if let Some(version) = negotiate(&ours, Some(&line)) {
        assert!(ours.contains(&version));
        assert!(line.split(',').any(|v| v.trim().parse() == Ok(version)));
    }
});
