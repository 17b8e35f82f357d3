//! The Greet every in-process row sends, and the row that times it through
//! a plugin against the same greeter compiled into this process.

use std::path::Path;

use anyhow::Context;
use greeter::{GreetRequest, Greeter, GreeterClient};
use outlet_host::Host;

use super::report::Row;
use super::stats::side_by_side;

/// Greet calls per timed batch for in-process mechanisms, whose calls are
/// too short to time one by one.
pub const BATCH: u32 = 1000;

/// The request every row sends: a name of 58 bytes, so that request and
/// response are about 64 bytes each once encoded.
pub fn request() -> GreetRequest {
    GreetRequest {
        name: "Ada Lovelace, Charles Babbage and the Analytical Engine 1843"[..58].into(),
    }
}

/// Greet through an in-process plugin against the same greeter compiled
/// into this process and called directly, in interleaved batches.
pub fn in_process(
    host: &Host,
    file: &Path,
    calls: usize,
    mechanism: &'static str,
    case: &'static str,
    usual: &'static str,
) -> anyhow::Result<Row> {
    let plugin = host
        .load(file)
        .with_context(|| format!("loading {}", file.display()))?;
    let greeter = plugin.client::<GreeterClient<_>>()?;
    let direct = greeter::Greetings::default();
    let request = request();
    let (ours, base) = side_by_side(
        calls,
        BATCH,
        || {
            std::hint::black_box(greeter.greet(std::hint::black_box(request.clone()))?);
            Ok(())
        },
        || {
            let reply = Greeter::greet(&direct, std::hint::black_box(request.clone()));
            std::hint::black_box(reply?);
            Ok(())
        },
    )?;
    host.unload(plugin.name());
    Ok(Row {
        mechanism,
        case,
        usual,
        samples: ours,
        baseline: Some(("direct Rust greet", base)),
    })
}
