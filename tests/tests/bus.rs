//! Plugins calling plugins through the host: grants, routing across
//! mechanisms, versions side by side, callees that go away, deadlines,
//! cycles, and the audit record of each call.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use outlet_host::audit::{AuditRecord, AuditSink};
use outlet_host::{Host, Plugin};
use outlet_protocol::Code;

use crate::support::{
    GREETER_GRANT, greet, manifest, rpc_fixture, rust_guest, test_library, wat_guest_of,
};

pub(crate) const V1: &str = "outlet.examples.greeter.v1.Greeter";
const V2: &str = "outlet.examples.greeter.v2.Greeter";

/// A sink that keeps what it is given.
#[derive(Default)]
struct Kept(Mutex<Vec<AuditRecord>>);

impl AuditSink for Kept {
    fn record(&self, record: &AuditRecord) {
        self.0.lock().unwrap().push(record.clone());
    }
}

impl Kept {
    fn taken(&self) -> Vec<AuditRecord> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn audited_host(kept: &Arc<Kept>) -> Host {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("module-cache");
    Host::builder()
        .module_cache(Some(cache))
        .audit(kept.clone())
        .build()
}

/// A wasm plugin in WebAssembly text serving `service` (34 bytes long, as
/// the greeter's): its Greet forwards the request to `forward` (a gRPC
/// path) through the host and answers what came back; without `forward`,
/// it answers the GreetResponse `"<tag>"` (two bytes).
pub(crate) fn link(
    dir: &Path,
    name: &str,
    service: &str,
    forward: Option<&str>,
    tag: &str,
) -> PathBuf {
    assert!(forward.is_some() || tag.len() == 2);
    let (imports, greet) = match forward {
        Some(path) => (
            format!(
                r#"(import "outlet" "call" (func $call (param i32 i32 i32 i32) (result i64)))
  (import "outlet" "take" (func $take (param i32)))
  (data (i32.const 200) "{path}")
  (global $answer (mut i64) (i64.const 0))"#
            ),
            format!(
                "(global.set $answer (call $call (i32.const 200) (i32.const {}) (local.get $request) (local.get $request_len)))
    (call $take (i32.const 8192))
    (i32.store (local.get $out) (i32.const 8192))
    (i32.store offset=4 (local.get $out) (i32.wrap_i64 (global.get $answer)))
    (i32.wrap_i64 (i64.shr_u (global.get $answer) (i64.const 32)))",
                path.len()
            ),
        ),
        None => (
            format!(r#"(data (i32.const 300) "\0a\02{tag}")"#),
            "(i32.store (local.get $out) (i32.const 300))
    (i32.store offset=4 (local.get $out) (i32.const 4))
    (i32.const 0)"
                .to_owned(),
        ),
    };
    let module = wat_guest_of(dir, name, service, &imports, &greet);
    let grant = forward
        .map(|path| format!("[permissions]\ncall = [\"{}\"]\n", &path[1..]))
        .unwrap_or_default();
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(
        &file,
        format!(
            "name = \"{name}\"\nmechanism = \"wasm\"\npath = \"{}\"\ninterface = \"{service}\"\n\
             trust = \"in-process\"\n{grant}",
            module.display()
        ),
    )
    .unwrap();
    file
}

fn greet_path(service: &str) -> String {
    format!("/{service}/Greet")
}

/// The GreetResponse a plugin answered with, called by gRPC path.
fn greet_as(plugin: &Plugin, service: &str, name: &str) -> Result<String, outlet_protocol::Status> {
    use outlet_protocol::prost::Message;
    let request = greeter::GreetRequest { name: name.into() }.encode_to_vec();
    let reply = outlet_protocol::Transport::call(plugin, &greet_path(service), &request)?;
    Ok(greeter::GreetResponse::decode(&reply[..]).unwrap().message)
}

#[test]
fn plugins_of_any_mechanism_call_each_other_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let kept = Arc::new(Kept::default());

    // wasm → rpc: the forwarder's Greet reaches the rpc plugin's process.
    let host = audited_host(&kept);
    let rpc = rpc_fixture("callee-rpc", "", "");
    let callee = host.load(&rpc.manifest).unwrap();
    host.offer_plugin(&callee).unwrap();
    let forwarder = host
        .load(link(dir.path(), "forwarder", V1, Some(&greet_path(V1)), ""))
        .unwrap();
    let pid = callee.process_id().unwrap().to_string();
    assert_eq!(greet(&forwarder, "pid").unwrap(), pid);
    let records = kept.taken();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert_eq!(
        (record.caller.as_str(), record.callee.as_str(), record.code),
        ("forwarder", "callee-rpc", Code::Ok)
    );
    assert_eq!(record.chain, ["forwarder"]);
    assert!(
        record.request_bytes > 0 && record.response_bytes > 0,
        "{record:?}"
    );

    // rpc → native: the rpc plugin's "host:" call goes through its broker
    // to the native plugin.
    let host = audited_host(&kept);
    let native = host
        .load(manifest(
            dir.path(),
            "native",
            "callee-native",
            &test_library(),
            "",
        ))
        .unwrap();
    host.offer_plugin(&native).unwrap();
    let rpc = rpc_fixture("caller-rpc", "", GREETER_GRANT);
    let caller = host.load(&rpc.manifest).unwrap();
    assert_eq!(
        greet(&caller, "host:Ada").unwrap(),
        "the host says: Hello, Ada!"
    );
    let records = kept.taken();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].caller.as_str(), records[0].callee.as_str()),
        ("caller-rpc", "callee-native")
    );
    assert_eq!(records[0].chain, ["caller-rpc"]);

    // native → wasm: the native plugin calls through its HostCall.
    let host = audited_host(&kept);
    let wasm = host
        .load(manifest(
            dir.path(),
            "wasm",
            "callee-wasm",
            &rust_guest(),
            "[config]\ngreeting = \"Hi\"\n",
        ))
        .unwrap();
    host.offer_plugin(&wasm).unwrap();
    let native = host
        .load(manifest(
            dir.path(),
            "native",
            "caller-native",
            &test_library(),
            GREETER_GRANT,
        ))
        .unwrap();
    assert_eq!(
        greet(&native, "host:Ada").unwrap(),
        "the host says: Hi, Ada!"
    );
    // Without the grant, refused, naming the caller and the line to add.
    let ungranted = host
        .load(manifest(
            dir.path(),
            "native",
            "ungranted",
            &test_library(),
            "",
        ))
        .unwrap();
    let refused = greet(&ungranted, "host:Ada").unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused}");
    assert!(
        refused
            .message()
            .contains("plugin `ungranted` may not call")
            && refused
                .message()
                .contains(&format!("add \"{V1}/Greet\" (or \"{V1}/*\") to `call`")),
        "{refused}"
    );
    let records = kept.taken();
    let seen: Vec<_> = records
        .iter()
        .map(|r| (r.caller.as_str(), r.callee.as_str(), r.code))
        .collect();
    assert_eq!(
        seen,
        [
            ("caller-native", "callee-wasm", Code::Ok),
            ("ungranted", "callee-wasm", Code::PermissionDenied)
        ]
    );
}

#[test]
fn versions_side_by_side_each_caller_reaches_the_one_its_grant_names() {
    let dir = tempfile::tempdir().unwrap();
    let host = audited_host(&Arc::default());
    let one = host.load(link(dir.path(), "one", V1, None, "v1")).unwrap();
    let two = host.load(link(dir.path(), "two", V2, None, "v2")).unwrap();
    host.offer_plugin(&one).unwrap();
    host.offer_plugin(&two).unwrap();
    assert_eq!(host.services(), [V1, V2]);
    // A second offer of a service on offer is refused, naming who has it.
    let again = host
        .load(link(dir.path(), "again", V1, None, "v1"))
        .unwrap();
    let taken = host.offer_plugin(&again).unwrap_err().to_string();
    assert!(
        taken.contains(&format!("offers service `{V1}` already, from plugin `one`")),
        "{taken}"
    );
    // A plugin of another host is not offered.
    let stranger = audited_host(&Arc::default())
        .load(link(dir.path(), "stranger", V2, None, "v2"))
        .unwrap();
    assert!(
        host.offer_plugin(&stranger)
            .unwrap_err()
            .to_string()
            .contains("not loaded in this host")
    );

    let to_two = host
        .load(link(dir.path(), "to-two", V1, Some(&greet_path(V2)), ""))
        .unwrap();
    let to_one = host
        .load(link(dir.path(), "to-one", V2, Some(&greet_path(V1)), ""))
        .unwrap();
    assert_eq!(greet_as(&to_two, V1, "x").unwrap(), "v2");
    assert_eq!(greet_as(&to_one, V2, "x").unwrap(), "v1");

    // A plugin of the offered one's name but of another interface is not
    // reached by the offer: v1's callers get Unavailable, not v2's answers.
    host.unload("one").unwrap().unwrap();
    host.load(link(dir.path(), "one", V2, None, "v2")).unwrap();
    let gone = greet_as(&to_one, V2, "x").unwrap_err();
    assert_eq!(gone.code(), Code::Unavailable, "{gone}");

    // A grant of a service nobody offers is refused at load.
    let unknown = link(
        dir.path(),
        "to-three",
        V1,
        Some("/outlet.examples.greeter.v3.Greeter/Greet"),
        "",
    );
    let refused = host.load(unknown).unwrap_err().to_string();
    assert!(
        refused.contains("plugin `to-three`")
            && refused.contains("offers no service `outlet.examples.greeter.v3.Greeter`")
            && refused.contains(V2),
        "{refused}"
    );
}

#[test]
fn a_callee_that_goes_away_fails_fast_and_the_next_one_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let host = audited_host(&Arc::default());
    let rpc = rpc_fixture("restartable", "", "");
    let callee = host.load(&rpc.manifest).unwrap();
    host.offer_plugin(&callee).unwrap();
    let forwarder = host
        .load(link(dir.path(), "forwarder", V1, Some(&greet_path(V1)), ""))
        .unwrap();
    let first = greet(&forwarder, "pid").unwrap();

    // Its process dies: the supervisor starts another, which later calls reach.
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first])
        .status()
        .unwrap();
    assert!(killed.success());
    let until = Instant::now() + Duration::from_secs(10);
    let second = loop {
        match greet(&forwarder, "pid") {
            Ok(pid) if pid != first => break pid,
            Ok(_) => {}
            Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status}"),
        }
        assert!(
            Instant::now() < until,
            "the restarted plugin was never reached"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(callee.process_id().unwrap().to_string(), second);

    // A reload: a call in flight finishes in the old instance, and the
    // new one answers the next.
    let in_flight = std::thread::spawn({
        let forwarder = forwarder.clone();
        move || greet(&forwarder, "sleep:500")
    });
    std::thread::sleep(Duration::from_millis(100));
    callee.reload().unwrap();
    assert_eq!(in_flight.join().unwrap().unwrap(), second);
    let third = greet(&forwarder, "pid").unwrap();
    assert_ne!(third, second);

    // A call in flight when it is unloaded finishes too.
    let in_flight = std::thread::spawn({
        let forwarder = forwarder.clone();
        move || greet(&forwarder, "sleep:500")
    });
    std::thread::sleep(Duration::from_millis(100));

    // Unloaded: Unavailable at once, naming the plugin.
    host.unload("restartable").unwrap().unwrap();
    assert_eq!(in_flight.join().unwrap().unwrap(), third);
    let started = Instant::now();
    let gone = greet(&forwarder, "pid").unwrap_err();
    assert_eq!(gone.code(), Code::Unavailable, "{gone}");
    assert!(gone.message().contains("plugin `restartable`"), "{gone}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Loaded again under its name, it is reached without a new offer.
    let again = host.load(&rpc.manifest).unwrap();
    assert_eq!(
        greet(&forwarder, "pid").unwrap(),
        again.process_id().unwrap().to_string()
    );
}

#[test]
fn a_cycle_or_a_chain_too_deep_fails_naming_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let kept = Arc::new(Kept::default());
    let host = audited_host(&kept);
    // a → b → a, across two services. A grant names a service on offer
    // when its plugin loads: `two` stands in for `b` until `b` is loaded.
    let two = host.load(link(dir.path(), "two", V2, None, "v2")).unwrap();
    host.offer_plugin(&two).unwrap();
    let a = host
        .load(link(dir.path(), "a", V1, Some(&greet_path(V2)), ""))
        .unwrap();
    host.offer_plugin(&a).unwrap();
    let b = host
        .load(link(dir.path(), "b", V2, Some(&greet_path(V1)), ""))
        .unwrap();
    assert!(host.withdraw(V2));
    host.offer_plugin(&b).unwrap();
    let cycle = greet_as(&a, V1, "x").unwrap_err();
    assert_eq!(cycle.code(), Code::FailedPrecondition, "{cycle}");
    assert!(
        cycle.message().contains("plugin `b` called")
            && cycle
                .message()
                .contains("already in this chain of calls (a → b → a)"),
        "{cycle}"
    );
    let records = kept.taken();
    let refused = records.iter().find(|r| r.caller == "b").unwrap();
    assert_eq!(
        (refused.callee.as_str(), refused.code),
        ("a", Code::FailedPrecondition)
    );
    assert_eq!(refused.chain, ["a", "b"]);
    let outer = records.iter().find(|r| r.caller == "a").unwrap();
    assert_eq!(
        (outer.callee.as_str(), outer.code),
        ("b", Code::FailedPrecondition)
    );

    // A plugin calling itself is a cycle too: an rpc plugin, whose call
    // comes back over its broker, on another thread.
    let host = audited_host(&kept);
    let stand_in = host.load(link(dir.path(), "one", V1, None, "v1")).unwrap();
    host.offer_plugin(&stand_in).unwrap();
    let rpc = rpc_fixture("itself", "", GREETER_GRANT);
    let itself = host.load(&rpc.manifest).unwrap();
    assert!(host.withdraw(V1));
    host.offer_plugin(&itself).unwrap();
    let own = greet(&itself, "host:x").unwrap_err();
    assert_eq!(own.code(), Code::FailedPrecondition, "{own}");
    assert!(own.message().contains("(itself → itself)"), "{own}");

    // Nine links: the ninth is one too deep.
    let host = audited_host(&kept);
    let service = |i: usize| format!("outlet.examples.greeter.v1.Greet{i:02}");
    for i in (0..9).rev() {
        let next = (i < 8).then(|| greet_path(&service(i + 1)));
        let plugin = host
            .load(link(
                dir.path(),
                &format!("link{i}"),
                &service(i),
                next.as_deref(),
                "ok",
            ))
            .unwrap();
        host.offer_plugin(&plugin).unwrap();
    }
    let first = host.plugin("link0").unwrap();
    let deep = greet_as(&first, &service(0), "x").unwrap_err();
    assert_eq!(deep.code(), Code::FailedPrecondition, "{deep}");
    assert!(
        deep.message().contains("at most 8 plugins")
            && deep.message().contains(
                "(link0 → link1 → link2 → link3 → link4 → link5 → link6 → link7 → link8)"
            ),
        "{deep}"
    );
    // Eight are allowed.
    let second = host.plugin("link1").unwrap();
    assert_eq!(greet_as(&second, &service(1), "x").unwrap(), "ok");
}

#[test]
fn a_call_made_during_a_call_gets_at_most_the_time_left_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let kept = Arc::new(Kept::default());
    let host = audited_host(&kept);
    // The callee hangs on "hang", with all the time in the world.
    let rpc = rpc_fixture("slow", "", "[limits]\ntimeout_ms = 60000\n");
    let callee = host.load(&rpc.manifest).unwrap();
    host.offer_plugin(&callee).unwrap();
    // The caller may take 300 ms.
    let file = link(dir.path(), "hasty", V1, Some(&greet_path(V1)), "");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("[limits]\ntimeout_ms = 300\n");
    std::fs::write(&file, text).unwrap();
    let caller = host.load(&file).unwrap();
    let started = Instant::now();
    let late = greet(&caller, "hang").unwrap_err();
    let took = started.elapsed();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "the caller waited {took:?}, for a limit of 300 ms"
    );
    let records = kept.taken();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].callee.as_str(), records[0].code),
        ("slow", Code::DeadlineExceeded)
    );
    assert!(
        records[0].duration < Duration::from_secs(5),
        "{:?}",
        records[0]
    );
    // The callee still serves.
    assert_eq!(greet(&callee, "Ada").unwrap(), "Hello, Ada!");

    // A plugin that may call, called by host code, runs out of its own
    // limit, and says so.
    let granted = rpc_fixture(
        "granted",
        "",
        &format!("{GREETER_GRANT}[limits]\ntimeout_ms = 300\n"),
    );
    let granted = host.load(&granted.manifest).unwrap();
    let late = greet(&granted, "hang").unwrap_err();
    assert_eq!(late.code(), Code::DeadlineExceeded, "{late}");
    assert!(
        late.message()
            .contains("did not finish within 300 ms (limits.timeout_ms)"),
        "{late}"
    );
}

/// A Greeter that takes its time.
struct Slow;

impl greeter::Greeter for Slow {
    fn greet(
        &self,
        request: greeter::GreetRequest,
    ) -> Result<greeter::GreetResponse, outlet_protocol::Status> {
        std::thread::sleep(Duration::from_millis(1000));
        Ok(greeter::GreetResponse {
            message: request.name,
        })
    }
}

#[test]
fn a_plugin_that_floods_the_host_is_refused_and_recorded() {
    let kept = Arc::new(Kept::default());
    let host = audited_host(&kept);
    host.offer(greeter::GreeterServer::new(Slow)).unwrap();
    let rpc = rpc_fixture("flooder", "", GREETER_GRANT);
    let flooder = host.load(&rpc.manifest).unwrap();
    // 100 calls at once from its own threads: at most 64 in flight.
    let counts = greet(&flooder, "flood:100").unwrap();
    let count = |what: &str| -> usize {
        counts
            .split(' ')
            .find_map(|c| c.strip_prefix(what)?.strip_prefix('='))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        count("ok") >= 1 && count("refused") >= 1 && count("ok") <= 64 && count("other") == 0,
        "{counts}"
    );
    let records = kept.taken();
    let refused: Vec<_> = records
        .iter()
        .filter(|r| r.code == Code::ResourceExhausted)
        .collect();
    assert_eq!(refused.len(), count("refused"), "{records:?}");
    assert!(refused.iter().all(|r| r.caller == "flooder"));
    // The host and the plugin stay up.
    assert_eq!(greet(&flooder, "host:Ada").unwrap(), "the host says: Ada");
}
