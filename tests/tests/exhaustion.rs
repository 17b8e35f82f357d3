//! Resource exhaustion, tried on purpose: plugins that answer with lengths
//! at the top of `u32` and `usize`, with a million tiny frames, or with
//! many small messages read slowly. Each ends in a clear error or the
//! right answer, in bounded time and memory, with nothing left running.

use std::path::Path;
use std::time::{Duration, Instant};

use numbers::{CountRequest, NumbersClient};
use outlet_host::Plugin;
use outlet_protocol::Code;

use crate::support::{
    compile_c, fixture, greet, host, library, load, manifest, peak_rss, root, wat_guest_of,
};

/// How much the host may grow while it refuses what a hostile plugin sends.
const GROWTH: u64 = 256 << 20;

#[test]
fn an_exec_reply_announcing_4_gib_is_refused_before_anything_is_sized_by_it() {
    let before = peak_rss();
    let started = Instant::now();
    let f = fixture("frame-max", "frame-max", "");
    let error = f.load_err();
    assert!(
        error.contains("plugin `frame-max`") && error.contains("4294967295 bytes"),
        "{error}"
    );
    assert!(error.contains("limits.max_message_bytes"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < GROWTH, "the host grew by {grown} bytes");
    f.assert_no_leftovers();
}

#[test]
fn a_million_tiny_frames_are_one_reply_and_the_rest_is_never_read() {
    let before = peak_rss();
    let started = Instant::now();
    let f = fixture("tiny", "tiny-frames", "");
    // The first empty frame is Hello's reply: an empty HelloResponse, which
    // speaks no version of the core protocol.
    let error = f.load_err();
    assert!(
        error.contains("plugin `tiny`") && error.contains("no common core protocol version"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < GROWTH, "the host grew by {grown} bytes");
    f.assert_no_leftovers();
}

/// A WAT greeter whose answer slot holds `ptr` and `len`.
fn slot_guest(dir: &Path, name: &str, ptr: u32, len: u32) -> std::path::PathBuf {
    wat_guest_of(
        dir,
        name,
        "outlet.examples.greeter.v1.Greeter",
        "",
        &format!(
            "(i32.store (local.get $out) (i32.const {})) \
             (i32.store offset=4 (local.get $out) (i32.const {})) (i32.const 0)",
            ptr as i32, len as i32
        ),
    )
}

#[test]
fn a_wasm_answer_at_the_top_of_u32_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // A length of 4 GiB - 1: over any limit.
        (
            "len-max",
            0,
            u32::MAX,
            Code::ResourceExhausted,
            "4294967295 bytes",
        ),
        // A pointer whose end overflows 32 bits.
        (
            "ptr-max",
            u32::MAX,
            16,
            Code::Internal,
            "lies outside its memory",
        ),
        // Both.
        (
            "both-max",
            u32::MAX,
            u32::MAX,
            Code::ResourceExhausted,
            "over the limit",
        ),
    ];
    for (name, ptr, len, code, says) in cases {
        let guest = slot_guest(dir.path(), name, ptr, len);
        let plugin = load(&manifest(dir.path(), "wasm", name, &guest, "")).unwrap();
        let error = greet(&plugin, "x").unwrap_err();
        assert_eq!(error.code(), code, "{name}: {error}");
        assert!(error.message().contains(says), "{name}: {error}");
        // The guest is still there for the next call, which fails the same.
        assert_eq!(greet(&plugin, "y").unwrap_err().code(), code);
    }
}

#[test]
fn a_cabi_answer_of_usize_max_bytes_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("NULL_MAX_ANSWER", Code::Internal, "a null pointer"),
        ("MAX_ANSWER", Code::ResourceExhausted, "over the limit"),
    ];
    for (define, code, says) in cases {
        let library = dir.path().join(format!("lib{define}.so"));
        compile_c(&root().join("tests/c/bad_plugins.c"), &[define], &library);
        let plugin = load(&manifest(dir.path(), "cabi", "liar", &library, "")).unwrap();
        let error = greet(&plugin, "x").unwrap_err();
        assert_eq!(error.code(), code, "{define}: {error}");
        assert!(
            error.message().contains("plugin `liar`")
                && error.message().contains(says)
                && error.message().contains(&usize::MAX.to_string()),
            "{define}: {error}"
        );
        // The host stays up, and so does the plugin.
        assert_eq!(greet(&plugin, "y").unwrap_err().code(), code);
    }
}

#[test]
fn many_small_messages_read_slowly_keep_the_host_small() {
    const N: u64 = 200_000;
    for (mechanism, artifact) in [
        ("exec", library("numbers-exec")),
        ("rpc", library("numbers-rpc")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("numbers.toml");
        std::fs::write(
            &file,
            format!(
                "name = \"numbers\"\nmechanism = \"{mechanism}\"\npath = \"{}\"\n\
                 interface = \"outlet.examples.numbers.v1.Numbers\"\ntrust = \"in-process\"\n",
                artifact.display()
            ),
        )
        .unwrap();
        let plugin = host().load(&file).unwrap();
        let client: NumbersClient<Plugin> = plugin.client().unwrap();
        let before = peak_rss();
        let mut numbers = client
            .count(CountRequest {
                n: N,
                payload_bytes: 0,
            })
            .unwrap();
        // The plugin makes them far faster than they are read at first.
        std::thread::sleep(Duration::from_millis(300));
        let mut last = 0;
        for number in numbers.by_ref() {
            last = number.unwrap().value;
        }
        assert_eq!(last, N, "{mechanism}");
        let grown = peak_rss().saturating_sub(before);
        assert!(
            grown < GROWTH,
            "{mechanism}: the host grew by {grown} bytes"
        );
    }
}
