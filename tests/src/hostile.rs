//! The numbers, misbehaving on request, for the stream tests: a `Count` of
//! one of the `HOSTILE_*` counts does what its name says; any other count,
//! and `Sum` and `Echo`, are the numbers' own (`examples/numbers`).

use std::time::Duration;

use outlet_guest::{Messages, Status};

/// A `Count` whose payload doubles from 1 KiB, without end.
pub const HOSTILE_GROWS: u64 = 1_000_001;
/// A `Count` that sends one number, then nothing, for an hour.
pub const HOSTILE_STALLS: u64 = 1_000_002;
/// A `Count` that sends one number, then kills its process.
pub const HOSTILE_DIES: u64 = 1_000_003;
/// A `Count` of 4 KiB numbers without end, as fast as it can make them.
pub const HOSTILE_FLOODS: u64 = 1_000_004;
/// One number: how many the last flood made, with the payload `cancelled`
/// once it saw its host's cancel.
pub const HOSTILE_MADE: u64 = 1_000_005;

/// How many numbers the last flood made.
static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Whether the last flood saw its host's cancel when it was dropped.
static SAW_CANCEL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The numbers, but for the `HOSTILE_*` counts.
pub struct Hostile;

/// The flood's numbers; when dropped, it notes whether the host had
/// cancelled the stream.
struct Flood;

impl Iterator for Flood {
    type Item = numbers::Number;

    fn next(&mut self) -> Option<numbers::Number> {
        let value = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Some(numbers::Number {
            value,
            payload: vec![b'f'; 4096],
        })
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        let cancelled = outlet_guest::context::cancelled();
        SAW_CANCEL.store(cancelled, std::sync::atomic::Ordering::Relaxed);
    }
}

impl numbers::Numbers for Hostile {
    fn count(&self, request: numbers::CountRequest) -> Result<Messages<numbers::Number>, Status> {
        use numbers::Number;
        use std::sync::atomic::Ordering::Relaxed;
        let number = |value, payload| Number { value, payload };
        Ok(match request.n {
            HOSTILE_GROWS => Messages::ok((0..).map(move |i| number(i, vec![b'g'; 1024 << i]))),
            HOSTILE_STALLS => Messages::ok((1..=2).map(move |i| {
                if i == 2 {
                    std::thread::sleep(Duration::from_secs(3600));
                }
                number(i, Vec::new())
            })),
            HOSTILE_DIES => Messages::ok((1..=2).map(move |i| {
                if i == 2 {
                    std::process::abort();
                }
                number(i, Vec::new())
            })),
            HOSTILE_FLOODS => {
                MADE.store(0, Relaxed);
                SAW_CANCEL.store(false, Relaxed);
                Messages::ok(Flood)
            }
            HOSTILE_MADE => {
                let seen = SAW_CANCEL.load(Relaxed).then(|| b"cancelled".to_vec());
                Messages::ok([number(MADE.load(Relaxed), seen.unwrap_or_default())])
            }
            _ => numbers::Counting.count(request)?,
        })
    }

    fn sum(&self, requests: Messages<numbers::Number>) -> Result<numbers::SumReply, Status> {
        numbers::Counting.sum(requests)
    }

    fn echo(
        &self,
        requests: Messages<numbers::Number>,
    ) -> Result<Messages<numbers::Number>, Status> {
        numbers::Counting.echo(requests)
    }
}
