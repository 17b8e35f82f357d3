//! What `Plugin::stats` counts: calls per method, errors by code, calls in
//! flight, latency, bytes, restarts and reloads.

use std::time::Duration;

use greeter::{GreetRequest, GreeterClient};
use outlet_host::Plugin;
use outlet_protocol::{Code, Transport};

use crate::support::{greet, host, manifest, rpc_fixture, test_library};

const GREET: &str = "/outlet.examples.greeter.v1.Greeter/Greet";

#[test]
fn an_rpc_plugins_calls_errors_bytes_restarts_and_reloads_are_counted() {
    let f = rpc_fixture("counted", "", "");
    let plugin = f.load();
    for _ in 0..3 {
        assert_eq!(greet(&plugin, "Ada").unwrap(), "Hello, Ada!");
    }
    let wave = "/outlet.examples.greeter.v1.Greeter/Wave";
    assert_eq!(
        plugin.call(wave, &[]).unwrap_err().code(),
        Code::Unimplemented
    );
    // A call in flight is seen as one.
    let slow = {
        let plugin = plugin.clone();
        std::thread::spawn(move || greet(&plugin, "sleep:400"))
    };
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(plugin.stats().methods[0].in_flight, 1);
    let pid = slow.join().unwrap().unwrap();

    let stats = plugin.stats();
    assert_eq!(
        (stats.plugin.as_str(), stats.calls(), stats.errors()),
        ("counted", 5, 1)
    );
    let [greets, waves] = &stats.methods[..] else {
        panic!("{stats:?}")
    };
    assert_eq!(
        (greets.method.as_str(), greets.calls, greets.in_flight),
        (GREET, 4, 0)
    );
    assert!(greets.errors.is_empty(), "{greets:?}");
    // "Ada" three times and "sleep:400", answered "Hello, Ada!" and the
    // plugin's pid, each with two bytes of protobuf around it.
    assert_eq!(greets.bytes_in, 3 * (2 + 3) + (2 + 9));
    assert_eq!(greets.bytes_out, 3 * (2 + 11) + (2 + pid.len() as u64));
    assert_eq!(greets.latency.timed, 4, "every rpc call is timed");
    assert!(greets.latency.quantile(1.0).unwrap() >= Duration::from_millis(400));
    assert_eq!((waves.method.as_str(), waves.calls), (wave, 1));
    assert_eq!(waves.errors, [(Code::Unimplemented, 1)]);

    let pid = plugin.process_id().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let restarted = std::time::Instant::now();
    while plugin.stats().restarts == 0 {
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "no restart counted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    plugin.reload().unwrap();
    let stats = plugin.stats();
    assert_eq!((stats.restarts, stats.reloads), (1, 1));
    assert_eq!(stats.calls(), 5, "the counts outlive the instance");
    plugin.shutdown().unwrap();
    f.assert_no_leftovers();
}

/// Whether the calls go straight to the implementation or by path (the
/// test binary's greeter crate is built with other features than the
/// library's, so its types differ), each is counted; `outlet demo` shows
/// the direct path's (no bytes).
#[test]
fn every_native_call_is_counted_and_one_in_sixty_four_timed() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = host()
        .load(manifest(
            dir.path(),
            "native",
            "counted-native",
            &test_library(),
            "",
        ))
        .unwrap();
    let client: GreeterClient<Plugin> = plugin.client().unwrap();
    for _ in 0..70 {
        client.greet(GreetRequest { name: "Ada".into() }).unwrap();
    }
    let stats = plugin.stats();
    let [greets] = &stats.methods[..] else {
        panic!("{stats:?}")
    };
    assert_eq!((greets.method.as_str(), greets.calls), (GREET, 70));
    assert_eq!(greets.latency.timed, 2, "calls 0 and 64");
}
