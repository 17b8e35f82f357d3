//! A wasm plugin written by hand in WebAssembly text, after
//! examples/greeter/wat/greeter.wat and docs/wasm-abi.md. The wasm
//! mechanism compiles a `.wat` itself: the artifact is the source.
//!
//! Constant answers (Hello's, with lengths inside) are encoded here, in
//! Rust, and written into the module as `data` segments.

use std::fmt::{self, Write as _};

use outlet_protocol::core;

use super::plan::{File, Method, Plan, Project};
use super::test_script;

/// The plugin's version, in its Hello.
const VERSION: &str = "0.1.0";
/// The most bytes the host may write for one call (method and request).
const INPUT: u32 = 16 * 1024;
/// Room for one answer.
const OUTPUT: u32 = 32 * 1024;
/// The greeter's longest greeting: room for it after the answer.
const GREETING: u32 = 1024;
/// The greeter's Greet, with `{{placeholders}}` for where its constants are.
const GREET: &str = include_str!("wat/greet.wat");

pub fn plan(project: &Project) -> Plan {
    let artifact = format!("{}.wat", project.name);
    let text = if project.greeter {
        greeter(project)
    } else {
        stubs(project)
    };
    Plan {
        files: vec![File::new(&artifact, text), test_script::file(project, None)],
        build: ": nothing to build, the host compiles the .wat".into(),
        test: "./test.sh".into(),
        artifact,
    }
}

/// The greeter: Greet answers "<greeting>, <name>!".
fn greeter(project: &Project) -> String {
    let mut data = Data::default();
    let core = Core::new(project, &mut data);
    let greet = data.put(format!("/{}/Greet", project.service.full_name).as_bytes());
    let key = data.put(b"greeting");
    let hello = data.put(b"Hello");
    let bad_request = data.put(b"the GreetRequest is not one this greeter reads");
    let bad_greeting = data.put(b"config key `greeting` must be 1 to 1024 bytes");
    let service = format!(
        "    (if (call $is (local.get $method) (local.get $method_len) {greet})\n\
         \x20     (then (return (call $greet (local.get $request) (local.get $request_len) (local.get $out)))))\n"
    );
    let functions = GREET
        .replace("{{bad_request}}", &bad_request.to_string())
        .replace("{{hello_at}}", &hello.at.to_string())
        .replace("{{hello_len}}", &hello.len.to_string())
        .replace("{{key}}", &key.to_string())
        .replace("{{max_greeting}}", &GREETING.to_string())
        .replace("{{bad_greeting}}", &bad_greeting.to_string());
    module(&Module {
        project,
        intro: "Greet answers \"<greeting>, <name>!\", where the greeting is \"Hello\"\n\
                ;; unless the manifest's config key \"greeting\" says otherwise.",
        imports: "  ;; The config value of a key: its length, or -1 if there is none; the\n\
                  \x20 ;; value itself is then copied out with `take`.\n\
                  \x20 (import \"outlet\" \"config\" (func $config (param i32 i32) (result i64)))\n\
                  \x20 (import \"outlet\" \"take\" (func $take (param i32)))\n",
        configure: "Configure: the config is read when Greet runs.",
        version: 2,
        data,
        core,
        service,
        functions,
    })
}

/// Every method answers Unimplemented, naming itself, with a TODO.
fn stubs(project: &Project) -> String {
    let mut data = Data::default();
    let core = Core::new(project, &mut data);
    let mut service = String::new();
    let mut opens = String::new();
    for method in &project.service.methods {
        let path = data.put(method.path(&project.service).as_bytes());
        let message = format!("{}: {} is not implemented yet", project.name, method.name);
        let message = data.put(message.as_bytes());
        let streams = method.streams();
        let branches = if streams { &mut opens } else { &mut service };
        let _ = write!(
            branches,
            "    (if (call $is (local.get $method) (local.get $method_len) {path})\n\
             \x20     (then\n\
             {}\
             \x20       (call $answer (local.get $out) {message})\n\
             \x20       (return (i32.const 12))))\n",
            todo(method)
        );
    }
    let functions = if opens.is_empty() {
        String::new()
    } else {
        let none = data.put(format!("{} has no such streaming method", project.name).as_bytes());
        format!(
            "\n\
             \x20 ;; Streams (ABI version 4). The host writes the method at $out + 8, as\n\
             \x20 ;; for a call, and calls outlet_open: 0 opens the stream (leaving the\n\
             \x20 ;; slot alone), or a code fails it, with a message in the slot. Each\n\
             \x20 ;; response is then one outlet_next: 0 with it in the slot, or -1 once the\n\
             \x20 ;; stream has ended. outlet_close drops a stream the host stopped reading.\n\
             \x20 ;; Requests are pulled with these imports:\n\
             \x20 ;;   (import \"outlet\" \"next_request\" (func $next_request (result i64)))\n\
             \x20 ;;   (import \"outlet\" \"take\" (func $take (param i32)))\n\
             \x20 (func (export \"outlet_open\") (param $method i32) (param $method_len i32) (param $out i32)\n\
             \x20   (result i32)\n\
             {opens}\
             \x20   (call $answer (local.get $out) {none})\n\
             \x20   (i32.const 12))\n\
             \n\
             \x20 (func (export \"outlet_next\") (param $out i32) (result i32)\n\
             \x20   (i32.const -1))\n\
             \n\
             \x20 (func (export \"outlet_close\"))\n"
        )
    };
    module(&Module {
        project,
        intro: "Every method answers Unimplemented until you write it: look for TODO.",
        imports: "",
        configure: "Configure: the manifest's [config]. TODO: check it here if it may be\n\
                    \x20   ;; wrong; read its values when you need them with the import `config`.",
        version: if functions.is_empty() { 2 } else { 4 },
        data,
        core,
        service,
        functions,
    })
}

/// What to fill in for one method.
fn todo(method: &Method) -> String {
    let name = &method.name;
    if !method.client_streaming && !method.server_streaming {
        return format!(
            "        ;; TODO: {name}. Decode the request ($request_len bytes at\n\
             \x20       ;; $request), write the encoded response at $output, point the slot\n\
             \x20       ;; at it with $answer, and return 0.\n"
        );
    }
    format!(
        "        ;; TODO: {name}. Import next_request to pull its requests, keep the\n\
         \x20       ;; stream's state in memory and return 0; outlet_next then writes\n\
         \x20       ;; each response and points the slot at it.\n"
    )
}

/// What every module has: the core protocol's paths and answers.
struct Core {
    hello_path: Span,
    health_path: Span,
    configure_path: Span,
    shutdown_path: Span,
    hello: Span,
    health: Span,
    ready: Span,
    no_such_method: Span,
}

impl Core {
    fn new(project: &Project, data: &mut Data) -> Core {
        Core {
            hello: data.note(
                &format!(
                    "HelloResponse {{ name: \"{}\", version: \"{VERSION}\", core_versions: [1],\n\
                     \x20 ;;   app_versions: [1], capabilities: [\"configure\"],\n\
                     \x20 ;;   services: [\"{}\"] }}",
                    project.name, project.service.full_name
                ),
                &hello_response(project),
            ),
            health: data.note("HealthResponse { status: SERVING }", b"\x08\x01"),
            hello_path: data.put(core::HELLO.as_bytes()),
            configure_path: data.put(core::CONFIGURE.as_bytes()),
            health_path: data.put(core::HEALTH.as_bytes()),
            shutdown_path: data.put(core::SHUTDOWN.as_bytes()),
            ready: data.put(format!("{} ready", project.name).as_bytes()),
            no_such_method: data.put(format!("{} has no such method", project.name).as_bytes()),
        }
    }
}

/// Hello's answer, as protobuf bytes.
fn hello_response(project: &Project) -> Vec<u8> {
    use outlet_protocol::prost::Message;
    outlet_protocol::core::HelloResponse {
        name: project.name.clone(),
        version: VERSION.into(),
        core_versions: vec![1],
        // The manifest's `versions`.
        app_versions: vec![1],
        capabilities: vec![outlet_protocol::capability::CONFIGURE.into()],
        services: vec![project.service.full_name.clone()],
    }
    .encode_to_vec()
}

/// Bytes placed in the module's memory: where they are and how many.
#[derive(Clone, Copy)]
struct Span {
    at: u32,
    len: u32,
}

/// As two arguments: `(i32.const at) (i32.const len)`.
impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(i32.const {}) (i32.const {})", self.at, self.len)
    }
}

/// The module's constant bytes, laid out from address 0, one `data`
/// segment each.
#[derive(Default)]
struct Data {
    segments: String,
    end: u32,
}

impl Data {
    /// Places `bytes`, with what they are as a comment above them.
    fn note(&mut self, what: &str, bytes: &[u8]) -> Span {
        let _ = writeln!(self.segments, "  ;; {what}: {} bytes.", bytes.len());
        self.put(bytes)
    }

    /// Places `bytes`.
    fn put(&mut self, bytes: &[u8]) -> Span {
        let span = Span {
            at: self.end,
            len: bytes.len() as u32,
        };
        let _ = writeln!(
            self.segments,
            "  (data (i32.const {}) \"{}\")",
            span.at,
            escape(bytes)
        );
        self.end = (span.at + span.len).next_multiple_of(8);
        span
    }
}

/// A WebAssembly text string's contents: printable ASCII as is, the rest
/// as `\hh`.
fn escape(bytes: &[u8]) -> String {
    let mut text = String::new();
    for &byte in bytes {
        if matches!(byte, b' '..=b'~') && byte != b'"' && byte != b'\\' {
            text.push(char::from(byte));
        } else {
            let _ = write!(text, "\\{byte:02x}");
        }
    }
    text
}

/// The parts of a module that differ between the greeter and the stubs.
struct Module<'a> {
    project: &'a Project,
    /// What the plugin does, for the comment at the top.
    intro: &'a str,
    /// Imports besides `log`.
    imports: &'a str,
    /// The comment on Configure.
    configure: &'a str,
    /// The guest ABI version: 4 with streams, else 2.
    version: u32,
    data: Data,
    core: Core,
    /// `outlet_call`'s branches for the service's methods.
    service: String,
    /// Functions after `outlet_call`.
    functions: String,
}

fn module(m: &Module<'_>) -> String {
    let Core {
        hello_path,
        health_path,
        configure_path,
        shutdown_path,
        hello,
        health,
        ready,
        no_such_method,
    } = m.core;
    // The host writes calls after the constants, answers go after that.
    let input = m.data.end.next_multiple_of(1024);
    let output = input + INPUT;
    let scratch = output + OUTPUT;
    let pages = (scratch + GREETING).div_ceil(64 * 1024);
    format!(
        r#";; {name}: an Outlet plugin for the wasm mechanism, written by hand in
;; WebAssembly text, serving {service}.
;; {intro}
;;
;; The host compiles this file and runs it in a sandbox: it reaches nothing
;; but its own memory and the imports below. docs/wasm-abi.md in Outlet's
;; repository says what each export and import does.
(module
  ;; A log line: level (0 trace .. 4 error), then the UTF-8 text's place.
  (import "outlet" "log" (func $log (param i32 i32 i32)))
{imports}  (memory (export "memory") {pages})

  ;; Constant bytes: answers, and the method paths they belong to.
{segments}
  ;; The host writes each call at $input: an 8-byte slot for the answer's
  ;; place, the method's path, the request. Answers are written at $output;
  ;; a value copied out with `take` (up to 1 KiB) at $scratch.
  (global $input i32 (i32.const {input}))
  (global $output i32 (i32.const {output}))
  (global $scratch i32 (i32.const {scratch}))

  (func (export "outlet_abi_version") (result i32) (i32.const {version}))

  ;; Where the host may write a call of `len` bytes: 0 if it does not fit.
  (func (export "outlet_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const {INPUT}))
      (then (global.get $input))
      (else (i32.const 0))))

  ;; Whether `len` bytes at $a equal those at $b.
  (func $eq (param $a i32) (param $b i32) (param $len i32) (result i32)
    (loop $next
      (if (i32.eqz (local.get $len)) (then (return (i32.const 1))))
      (if (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b)))
        (then (return (i32.const 0))))
      (local.set $a (i32.add (local.get $a) (i32.const 1)))
      (local.set $b (i32.add (local.get $b) (i32.const 1)))
      (local.set $len (i32.sub (local.get $len) (i32.const 1)))
      (br $next))
    unreachable)

  ;; Whether the method called is `path`.
  (func $is (param $ptr i32) (param $len i32) (param $path i32) (param $path_len i32) (result i32)
    (if (result i32) (i32.eq (local.get $len) (local.get $path_len))
      (then (call $eq (local.get $ptr) (local.get $path) (local.get $len)))
      (else (i32.const 0))))

  ;; Writes the answer's place into the slot at $out: pointer, then length.
  (func $answer (param $out i32) (param $ptr i32) (param $len i32)
    (i32.store (local.get $out) (local.get $ptr))
    (i32.store offset=4 (local.get $out) (local.get $len)))

  ;; One call: `method` is its gRPC path, `request` the encoded request.
  ;; Returns 0 with the encoded response in the slot, or a gRPC status code
  ;; (12 is Unimplemented) with a message.
  (func (export "outlet_call")
    (param $method i32) (param $method_len i32) (param $request i32) (param $request_len i32)
    (param $out i32) (result i32)
    ;; The core protocol, which every plugin speaks. Hello: who it is.
    (if (call $is (local.get $method) (local.get $method_len) {hello_path})
      (then
        (call $log (i32.const 2) {ready})
        (call $answer (local.get $out) {hello})
        (return (i32.const 0))))
    (if (call $is (local.get $method) (local.get $method_len) {health_path})
      (then
        (call $answer (local.get $out) {health})
        (return (i32.const 0))))
    ;; {configure}
    ;; Shutdown: nothing to release.
    (if (i32.or
          (call $is (local.get $method) (local.get $method_len) {configure_path})
          (call $is (local.get $method) (local.get $method_len) {shutdown_path}))
      (then
        (call $answer (local.get $out) (i32.const 0) (i32.const 0))
        (return (i32.const 0))))
    ;; The service's methods.
{service_branches}    (call $answer (local.get $out) {no_such_method})
    (i32.const 12))
{functions})
"#,
        name = m.project.name,
        service = m.project.service.full_name,
        intro = m.intro,
        imports = m.imports,
        segments = m.data.segments,
        version = m.version,
        service_branches = m.service,
        configure = m.configure,
        functions = m.functions,
    )
}
