//! Streaming methods (`examples/numbers`): read as the plugin makes them,
//! held to their caller's deadline and cancel and to the size limit, and
//! stopped when their reader drops them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use numbers::{CountRequest, Number, NumbersClient};
use outlet_host::Plugin;
use outlet_protocol::context::Cancel;
use outlet_protocol::{Code, Messages, Transport};

use crate::support::{go_program, host, library, root};

const COUNT: &str = "/outlet.examples.numbers.v1.Numbers/Count";
const GREET: &str = "/outlet.examples.greeter.v1.Greeter/Greet";

/// The numbers' plugins, each with its mechanism: Outlet's plugin of every
/// mechanism, and go-plugin's Go plugin (on rpc) where the Go programs are
/// built.
fn plugins() -> Vec<(&'static str, PathBuf)> {
    let mut plugins = vec![
        ("native", library("libnumbers_native.so")),
        ("cabi", library("libnumbers_cabi.so")),
        ("rpc", library("numbers-rpc")),
        ("exec", library("numbers-exec")),
        (
            "wasm",
            root().join("target/wasm32-unknown-unknown/debug/numbers_wasm.wasm"),
        ),
    ];
    plugins.extend(go_program("numbers-go-plugin").map(|go| ("rpc", go)));
    plugins
}

/// A manifest for the numbers' plugin `artifact` of `mechanism`; `extra`
/// is appended.
fn numbers_manifest(
    dir: &Path,
    name: &str,
    (mechanism, artifact): (&str, &Path),
    extra: &str,
) -> PathBuf {
    let file = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\nmechanism = \"{mechanism}\"\npath = \"{}\"\n\
         interface = \"outlet.examples.numbers.v1.Numbers\"\nproto = \"{}\"\n\
         trust = \"in-process\"\n{extra}",
        artifact.display(),
        root()
            .join("examples/numbers/manifests/numbers.proto")
            .display(),
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn number(value: u64) -> Number {
    Number {
        value,
        payload: Vec::new(),
    }
}

fn values(messages: Messages<Number>) -> Result<Vec<u64>, outlet_protocol::Status> {
    messages.map(|n| n.map(|n| n.value)).collect()
}

#[test]
fn each_kind_of_stream_works_and_is_counted_once() {
    for (mechanism, artifact) in plugins() {
        each_kind_of_stream_works_and_is_counted_once_on((mechanism, &artifact));
    }
}

fn each_kind_of_stream_works_and_is_counted_once_on(numbers: (&str, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = host()
        .load(numbers_manifest(dir.path(), "numbers", numbers, ""))
        .unwrap();
    let client: NumbersClient<Plugin> = plugin.client().unwrap();

    let counted = client.count(CountRequest {
        n: 3,
        payload_bytes: 5,
    });
    let counted: Vec<Number> = counted.unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        counted.iter().map(|n| n.value).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(counted.iter().all(|n| n.payload == b"nnnnn"));

    let summed = client
        .sum(Messages::ok((1..=100).map(number).collect::<Vec<_>>()))
        .unwrap();
    assert_eq!((summed.sum, summed.count), (5050, 100));

    let echoed = client.echo(Messages::ok([number(7), number(8)])).unwrap();
    assert_eq!(values(echoed).unwrap(), [7, 8]);

    // An error in the middle ends the stream with it.
    let mut failing = client
        .echo(Messages::ok([number(1), number(u64::MAX), number(3)]))
        .unwrap();
    assert_eq!(failing.next().unwrap().unwrap().value, 1);
    let error = failing.next().unwrap().unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
    assert_eq!(error.message(), "Echo refuses u64::MAX");
    assert!(failing.next().is_none());

    let stats = plugin.stats();
    let count = stats.methods.iter().find(|m| m.method == COUNT).unwrap();
    // Each Number of value 1–3 and 5 bytes of payload is 9 bytes encoded.
    assert_eq!((count.calls, count.bytes_out), (1, 3 * 9));
    assert_eq!(stats.calls(), 4, "{stats:?}");

    // One stream as another's requests, and a stream read on another thread.
    let ten = client
        .count(CountRequest {
            n: 10,
            payload_bytes: 0,
        })
        .unwrap();
    assert_eq!(client.sum(ten).unwrap().sum, 55);
    let elsewhere = client
        .echo(Messages::ok((1..=3).map(number).collect::<Vec<_>>()))
        .unwrap();
    let read = std::thread::spawn(move || values(elsewhere))
        .join()
        .unwrap();
    assert_eq!(read.unwrap(), [1, 2, 3]);
    plugin.shutdown().unwrap();
}

#[test]
fn a_stream_dropped_midway_stops_and_an_endless_one_meets_its_deadline_and_cancel() {
    for (mechanism, artifact) in plugins() {
        a_stream_dropped_midway_stops_and_an_endless_one_meets_its_deadline_and_cancel_on((
            mechanism, &artifact,
        ));
    }
}

fn a_stream_dropped_midway_stops_and_an_endless_one_meets_its_deadline_and_cancel_on(
    numbers: (&str, &Path),
) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = host()
        .load(numbers_manifest(dir.path(), "endless", numbers, ""))
        .unwrap();
    let endless = CountRequest {
        n: u64::MAX,
        payload_bytes: 0,
    };
    let client: NumbersClient<Plugin> = plugin.client().unwrap();
    // Read three, then drop: nothing runs on, and the stream counts as
    // cancelled.
    let read: Vec<_> = client.count(endless).unwrap().take(3).collect();
    assert_eq!(read.len(), 3);
    let stats = plugin.stats();
    let count = stats.methods.iter().find(|m| m.method == COUNT).unwrap();
    assert_eq!(count.errors, [(Code::Cancelled, 1)]);

    let late = client.clone().with_timeout(Duration::from_millis(30));
    let started = Instant::now();
    let error = late.count(endless).unwrap().find_map(Result::err).unwrap();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");
    assert!(error.message().contains("plugin `endless`"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A reload meanwhile: an open stream reads on from the instance it was
    // opened on, which goes when the stream does.
    let mut open = client
        .count(CountRequest {
            n: 4,
            payload_bytes: 0,
        })
        .unwrap();
    assert_eq!(open.next().unwrap().unwrap().value, 1);
    plugin.reload().unwrap();
    assert_eq!(values(open).unwrap(), [2, 3, 4]);

    // Requests too: an endless client stream ends at its deadline.
    let endless_requests = Messages::ok(std::iter::repeat_with(|| number(1)));
    let error = late.sum(endless_requests).unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");

    let cancel = Cancel::new();
    let mut cancelled = client.clone().with_cancel(&cancel).count(endless).unwrap();
    assert!(cancelled.next().unwrap().is_ok());
    cancel.cancel();
    let error = cancelled.next().unwrap().unwrap_err();
    assert_eq!(error.code(), Code::Cancelled, "{error}");
    assert!(cancelled.next().is_none());
    plugin.shutdown().unwrap();
}

#[test]
fn a_message_over_the_limit_ends_the_stream_naming_the_plugin() {
    for (mechanism, artifact) in plugins() {
        a_message_over_the_limit_ends_the_stream_naming_the_plugin_on((mechanism, &artifact));
    }
}

fn a_message_over_the_limit_ends_the_stream_naming_the_plugin_on(numbers: (&str, &Path)) {
    let dir = tempfile::tempdir().unwrap();
    let plugin = host()
        .load(numbers_manifest(
            dir.path(),
            "small",
            numbers,
            "[limits]\nmax_message_bytes = 1024\n",
        ))
        .unwrap();
    let client: NumbersClient<Plugin> = plugin.client().unwrap();
    let mut large = client
        .count(CountRequest {
            n: 2,
            payload_bytes: 4096,
        })
        .unwrap();
    let error = large.next().unwrap().unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error}");
    assert!(
        error.message().contains("plugin `small`") && error.message().contains("max_message_bytes"),
        "{error}"
    );
    assert!(large.next().is_none());
    // Requests too, and the plugin is unharmed.
    let big = Number {
        value: 1,
        payload: vec![0; 4096],
    };
    let error = client.sum(Messages::ok([big])).unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error}");
    let summed = client.sum(Messages::ok([number(2), number(3)])).unwrap();
    assert_eq!(summed.sum, 5);
    // The caller's own iterator panics while the plugin pulls it: contained
    // in the host, the stream fails, the plugin is unharmed.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicking = (1..=3).map(|value| {
        assert!(value < 3, "the caller's iterator broke");
        number(value)
    });
    let error = client.sum(Messages::ok(panicking)).unwrap_err();
    std::panic::set_hook(quiet);
    assert_eq!(error.code(), Code::Internal, "{error}");
    assert!(
        error.message().contains("the caller's iterator broke")
            && error.message().contains("plugin `small`"),
        "{error}"
    );
    assert_eq!(client.sum(Messages::ok([number(4)])).unwrap().sum, 4);

    // And one that panics as the plugin's code drops it, when the plugin
    // gives up on the stream midway.
    struct Breaking(std::vec::IntoIter<Number>);
    impl Iterator for Breaking {
        type Item = Number;
        fn next(&mut self) -> Option<Number> {
            self.0.next()
        }
    }
    impl Drop for Breaking {
        fn drop(&mut self) {
            panic!("the caller's iterator broke as it was dropped");
        }
    }
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let breaking = Breaking(vec![number(1), number(u64::MAX), number(3)].into_iter());
    let echoed: Vec<_> = client.echo(Messages::ok(breaking)).unwrap().collect();
    std::panic::set_hook(quiet);
    assert_eq!(echoed.len(), 2, "{echoed:?}");
    assert_eq!(
        echoed[1].as_ref().unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(client.sum(Messages::ok([number(5)])).unwrap().sum, 5);
    plugin.shutdown().unwrap();
}

#[test]
fn a_stream_path_called_unary_or_a_plugin_that_cannot_stream_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = host()
        .load(numbers_manifest(
            dir.path(),
            "numbers-unary",
            ("native", &library("libnumbers_native.so")),
            "",
        ))
        .unwrap();
    let error = plugin.call(COUNT, &[]).unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error}");
    assert!(error.message().contains("opened as a stream"), "{error}");
    plugin.shutdown().unwrap();

    // An rpc plugin without the method says so, as its first message.
    let rpc = crate::support::rpc_fixture("no-streams-rpc", "", "");
    let plugin = host().load(&rpc.manifest).unwrap();
    let mut opened = plugin.open(COUNT, Messages::ok([Vec::new()])).unwrap();
    let error = opened.next().unwrap().unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error}");
    assert!(opened.next().is_none());
    let greeted = plugin.call(GREET, &[]);
    assert!(greeted.is_ok(), "the plugin still serves: {greeted:?}");
    plugin.shutdown().unwrap();

    // A wasm module of an older guest ABI, which has no streams.
    let wat = crate::support::manifest(
        dir.path(),
        "wasm",
        "no-streams-wasm",
        &root().join("examples/greeter/wat/greeter.wat"),
        "",
    );
    let plugin = host().load(&wat).unwrap();
    let error = plugin.open(COUNT, Messages::empty()).unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error}");
    assert!(
        error.message().contains("plugin `no-streams-wasm`: ")
            && error
                .message()
                .contains("its module has none (guest ABI version"),
        "{error}"
    );
    plugin.shutdown().unwrap();

    // A C plugin whose table has no streams.
    let cabi = crate::support::manifest(
        dir.path(),
        "cabi",
        "no-streams-cabi",
        &library("libgreeter_c.so"),
        "",
    );
    let plugin = host().load(&cabi).unwrap();
    let error = plugin.open(COUNT, Messages::empty()).unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error}");
    assert!(
        error.message().contains("plugin `no-streams-cabi`: ")
            && error.message().contains("its table has no streams"),
        "{error}"
    );
    // Counted as a call refused.
    let stats = plugin.stats();
    let refused = stats.methods.iter().find(|m| m.method == COUNT).unwrap();
    assert_eq!(refused.errors, [(Code::Unimplemented, 1)]);
    plugin.shutdown().unwrap();
}

#[test]
fn a_go_plugin_host_drives_an_outlet_plugins_streams() {
    let Some(go_host) = go_program("numbers-go-host") else {
        return;
    };
    let output = std::process::Command::new(go_host)
        .args([library("numbers-rpc").to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "count 1,2,3 payload nnnnn\n\
         sum 5050 count 100\n\
         echo 7,8\n\
         echo 1 then InvalidArgument: Echo refuses u64::MAX\n\
         endless cancelled: Canceled\n",
        "{stderr}"
    );
}

/// The rpc test plugin's misbehaving counts (`tests/src/bin/test-rpc.rs`).
const HOSTILE_GROWS: u64 = 1_000_001;
const HOSTILE_STALLS: u64 = 1_000_002;
const HOSTILE_DIES: u64 = 1_000_003;
const HOSTILE_FLOODS: u64 = 1_000_004;
const HOSTILE_MADE: u64 = 1_000_005;

#[test]
fn a_hostile_plugin_ends_its_own_stream_with_a_clear_status_and_serves_on() {
    let programs = [
        ("rpc", crate::support::rpc_plugin()),
        ("exec", crate::support::test_plugin()),
    ];
    for (mechanism, program) in programs {
        a_hostile_plugin_ends_its_own_stream_on(mechanism, &program);
    }
}

fn a_hostile_plugin_ends_its_own_stream_on(mechanism: &str, program: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = numbers_manifest(
        dir.path(),
        "hostile",
        (mechanism, program),
        "[limits]\nmax_message_bytes = 8192\ntimeout_ms = 300\nrestarts = 3\n\
         [permissions]\nenv = { OUTLET_TEST_MODE = \"numbers\" }\n",
    );
    let plugin = host().load(manifest).unwrap();
    let client: NumbersClient<Plugin> = plugin.client().unwrap();
    let count = |n| {
        client
            .count(CountRequest {
                n,
                payload_bytes: 0,
            })
            .unwrap()
    };
    let serves_on = || assert_eq!(values(count(3)).unwrap(), [1, 2, 3], "{mechanism}");

    // A message over the limit midway: 1, 2 and 4 KiB pass, 8 KiB does not.
    let grown: Vec<_> = count(HOSTILE_GROWS).collect();
    assert_eq!(grown.len(), 4, "{mechanism}: {grown:?}");
    let error = grown[3].as_ref().unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "{error}");
    assert!(
        error.message().contains("plugin `hostile`")
            && error.message().contains("max_message_bytes"),
        "{error}"
    );
    serves_on();

    // A stream that stalls ends at limits.timeout_ms.
    let started = Instant::now();
    let stalled: Vec<_> = count(HOSTILE_STALLS).collect();
    assert_eq!(stalled.len(), 2, "{mechanism}: {stalled:?}");
    let error = stalled[1].as_ref().unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error}");
    assert!(
        error.message().contains("plugin `hostile`")
            && error.message().contains("had no message for 300 ms"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    serves_on();

    // (An exec plugin's process, and its counts, go with its stream.)
    if mechanism == "rpc" {
        flood_is_held_back_and_cancelled(&count);
    }

    // A plugin that dies midway: the stream says so; an rpc plugin is
    // restarted. (Its first number may die with it, unsent.)
    let died: Vec<_> = count(HOSTILE_DIES).collect();
    assert!(matches!(died.len(), 1 | 2), "{mechanism}: {died:?}");
    let error = died.last().unwrap().as_ref().unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error}");
    let said = match mechanism {
        "rpc" => "plugin `hostile` died during",
        _ => "without ending the stream of",
    };
    assert!(error.message().contains(said), "{error}");
    serves_on();
    plugin.shutdown().unwrap();
}

/// A flood of 4 KiB numbers read slowly is held back by the connection and
/// the plugin's buffer; dropped, its code sees the cancel and stops.
fn flood_is_held_back_and_cancelled(count: &dyn Fn(u64) -> Messages<Number>) {
    let mut flood = count(HOSTILE_FLOODS);
    for _ in 0..100 {
        assert!(flood.next().unwrap().is_ok());
        std::thread::sleep(Duration::from_micros(200));
    }
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(5);
    let made = loop {
        let made = count(HOSTILE_MADE).next().unwrap().unwrap();
        if made.payload == b"cancelled" || Instant::now() > deadline {
            break made;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(made.payload, b"cancelled", "the flood saw no cancel");
    // 100 read, 8 buffered, and what HTTP/2's windows (2 MiB a stream) and
    // the socket hold: about 550 numbers of 4 KiB.
    assert!(
        made.value < 100 + 1000,
        "the flood made {} numbers",
        made.value
    );
}

#[test]
fn a_caller_that_waits_for_each_response_and_a_slow_caller_are_served_on_every_mechanism() {
    for (mechanism, artifact) in plugins() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = numbers_manifest(
            dir.path(),
            "patient",
            (mechanism, &artifact),
            "[limits]\ntimeout_ms = 300\n",
        );
        let plugin = host().load(manifest).unwrap();
        let client: NumbersClient<Plugin> = plugin.client().unwrap();
        let client = client.with_timeout(Duration::from_secs(20));

        // Ping-pong: each request is made once the last one's echo is read.
        let (send, receive) = std::sync::mpsc::channel::<Number>();
        send.send(number(1)).unwrap();
        let mut echoed = client.echo(Messages::ok(receive)).unwrap();
        for value in 1..=5 {
            let echo = echoed.next().unwrap().unwrap();
            assert_eq!(echo.value, value, "{mechanism}");
            if value < 5 {
                send.send(number(value + 1)).unwrap();
            }
        }
        drop(send);
        assert!(echoed.next().is_none(), "{mechanism}");

        // A caller slower than limits.timeout_ms in all, but not between
        // two requests: the plugin's time starts again with each.
        let slow = (1..=5).map(|value| {
            std::thread::sleep(Duration::from_millis(120));
            number(value)
        });
        let summed = client.sum(Messages::ok(slow));
        assert_eq!(summed.unwrap().sum, 15, "{mechanism}");
        plugin.shutdown().unwrap();
    }
}
