//! The core protocol's messages as a plugin answers them: Hello, Health,
//! Status, Reply and Piece, and go-plugin's health and broker messages.
//! Decoding any bytes ends in a message or an error; a message takes no
//! more room than the bytes it came from; Hello negotiates only what both
//! sides offered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outlet_fuzz as _;
use outlet_protocol::core::{HealthResponse, HelloRequest, HelloResponse, Piece, Reply, Status};
use outlet_protocol::prost::Message;
use outlet_protocol::{Code, negotiate};
use outlet_rpc::wire::{ConnInfo, HealthCheckResponse, StdioData};

/// Decodes `bytes` as `M`. What it decodes to takes no more room than the
/// bytes did, but for the few bytes a repeated field sent one number at a
/// time gains when packed (its tag and length, once per field).
fn decode<M: Message + Default>(bytes: &[u8]) -> Option<M> {
    let message = M::decode(bytes).ok()?;
    assert!(message.encoded_len() <= bytes.len() + 64);
    Some(message)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 8 {
        0 => {
            let offer = HelloRequest {
                core_versions: vec![1],
                app_versions: vec![1, 2, 3],
                capabilities: vec!["configure".into(), "rpc-frames".into()],
            };
            let Some(hello) = decode::<HelloResponse>(bytes) else {
                return;
            };
            match negotiate(&offer, &hello) {
                Ok(agreed) => {
                    // The highest version both offered, of each kind.
                    let highest = |ours: &[u32], theirs: &[u32]| {
                        ours.iter().filter(|v| theirs.contains(v)).max().copied()
                    };
                    assert_eq!(
                        Some(agreed.core_version),
                        highest(&offer.core_versions, &hello.core_versions)
                    );
                    assert_eq!(
                        Some(agreed.app_version),
                        highest(&offer.app_versions, &hello.app_versions)
                    );
                    assert!(agreed.capabilities.iter().all(|c| {
                        offer.capabilities.contains(c) && hello.capabilities.contains(c)
                    }));
                }
                Err(error) => assert!(error.to_string().len() < 256 + 24 * bytes.len()),
            }
        }
        1 => {
            let _ = decode::<HealthResponse>(bytes);
        }
        2 => {
            if let Some(wire) = decode::<Status>(bytes) {
                let (code, message) = (wire.code, wire.message.clone());
                let status = outlet_protocol::Status::from(wire);
                assert_eq!(status.message(), message);
                if (0..=16).contains(&code) {
                    assert_eq!(status.code().as_i32(), code);
                } else {
                    assert_eq!(status.code(), Code::Unknown);
                }
            }
        }
        3 => {
            if let Some(reply) = decode::<Reply>(bytes) {
                assert!(reply.body.len() <= bytes.len());
            }
        }
        4 => {
            let _ = decode::<Piece>(bytes);
        }
        5 => {
            let _ = decode::<HealthCheckResponse>(bytes);
        }
        6 => {
            let _ = decode::<ConnInfo>(bytes);
        }
        _ => {
            let _ = decode::<StdioData>(bytes);
        }
    }
});
