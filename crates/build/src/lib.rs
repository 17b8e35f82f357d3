//! Code generation for Outlet interfaces, used from a `build.rs`.
//!
//! A protobuf `service` becomes, beside prost's message types:
//!
//! - a trait (`Greeter`) with one method per rpc, which a plugin implements;
//! - a typed client (`GreeterClient<T: Transport>`) that sends calls through
//!   any mechanism, and implements the trait itself, so host code can hold a
//!   `dyn Greeter` without caring where it runs;
//! - the serving glue (`GreeterServer<T: Greeter>`), an `outlet_protocol::Service`
//!   that every mechanism's guest side can serve.
//!
//! `.proto` files are parsed with `protox`, in Rust: no `protoc` needed.
//!
//! ```no_run
//! // in build.rs's `fn main`:
//! outlet_build::compile(&["greeter.proto"], &["."]).expect("generate the interface");
//! ```
//!
//! and in the crate:
//!
//! ```text
//! include!(concat!(env!("OUT_DIR"), "/outlet.examples.greeter.v1.rs"));
//! ```
//!
//! The generated code names the protocol crate as `::outlet_protocol`, so the
//! crate that includes it depends on `outlet-protocol` (see
//! [`Builder::protocol_crate`] to change that).
//!
//! A streaming method takes or returns `outlet_protocol::Messages`, an
//! iterator of messages: `Count(CountRequest) returns (stream Number)`
//! becomes `fn count(&self, request: CountRequest) -> Result<Messages<Number>, Status>`,
//! a client stream `fn sum(&self, requests: Messages<Number>) -> Result<SumReply, Status>`,
//! and a bidirectional one takes and returns `Messages`. Streams are
//! carried by `Transport::open` (see `docs/streams.md`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt::Write;
use std::path::Path;

/// Compiles `.proto` files into `OUT_DIR` with the default [`Builder`].
///
/// # Errors
/// The `.proto` files' parse errors (with file, line and column).
pub fn compile(
    files: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
) -> Result<(), Box<dyn std::error::Error>> {
    Builder::new().compile(files, includes)
}

/// Code generation settings.
#[derive(Debug, Clone)]
pub struct Builder {
    protocol_crate: String,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// The defaults: generated code names the protocol crate `::outlet_protocol`.
    pub fn new() -> Builder {
        Builder {
            protocol_crate: "::outlet_protocol".into(),
        }
    }

    /// The path through which generated code reaches `outlet-protocol`, for a
    /// crate that has it under another name.
    pub fn protocol_crate(mut self, path: impl Into<String>) -> Builder {
        self.protocol_crate = path.into();
        self
    }

    /// Compiles `.proto` files into `OUT_DIR` (one `<package>.rs` per package)
    /// and tells cargo to rerun when they change.
    ///
    /// # Errors
    /// As [`compile`].
    pub fn compile(
        &self,
        files: &[impl AsRef<Path>],
        includes: &[impl AsRef<Path>],
    ) -> Result<(), Box<dyn std::error::Error>> {
        for file in files {
            println!("cargo:rerun-if-changed={}", file.as_ref().display());
        }
        let descriptors = protox::compile(files, includes)?;
        prost_build::Config::new()
            .service_generator(Box::new(Generator {
                protocol: self.protocol_crate.clone(),
                proto_sha256: proto_sha256(files)?,
            }))
            .compile_fds(descriptors)?;
        Ok(())
    }
}

struct Generator {
    protocol: String,
    /// The SHA-256 of the `.proto` files, in the order given.
    proto_sha256: String,
}

impl prost_build::ServiceGenerator for Generator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        let full = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let fill = |template: &str, method: Option<&prost_build::Method>| {
            // A method's signature first: it holds placeholders of its own.
            let mut out = match method {
                Some(m) => {
                    let (sig, arg) = signature(m);
                    template.replace("%SIG%", sig).replace("%ARG%", arg)
                }
                None => template.to_owned(),
            };
            out = out
                .replace("%P%", &self.protocol)
                .replace("%Trait%", &service.name)
                .replace("%FULL%", &full)
                .replace("%SHA%", &self.proto_sha256)
                .replace("%UPPER%", &upper_snake(&service.name));
            if let Some(m) = method {
                out = out
                    .replace("%method%", &m.name)
                    .replace("%Method%", &m.proto_name)
                    .replace("%In%", &m.input_type)
                    .replace("%Out%", &m.output_type)
                    .replace("%PATH%", &format!("/{full}/{}", m.proto_name));
            }
            out
        };
        // Each method's code, from the template for its shape: unary,
        // server, client or both streaming.
        let each_shaped = |templates: [&str; 4]| -> String {
            service
                .methods
                .iter()
                .map(|m| {
                    let mut docs = String::new();
                    doc(&mut docs, "    ", &m.comments.leading);
                    if docs.is_empty() {
                        docs = format!("    /// Calls `{}`.\n", m.proto_name);
                    }
                    let shape =
                        usize::from(m.server_streaming) + 2 * usize::from(m.client_streaming);
                    fill(templates[shape], Some(m)).replace("%DOCS%", &docs)
                })
                .collect()
        };
        let each = |template: &str| each_shaped([template; 4]);
        let streams = service
            .methods
            .iter()
            .any(|m| m.client_streaming || m.server_streaming);
        let mut docs = String::new();
        doc(&mut docs, "", &service.comments.leading);

        // Each unary method has an async twin, `<method>_async`: a method
        // already of that name stops the build, naming both (and the twin
        // is not made, so that the error stands alone).
        let mut twinless = Vec::new();
        for unary in service
            .methods
            .iter()
            .filter(|m| !m.client_streaming && !m.server_streaming)
        {
            let twin = format!("{}_async", unary.name);
            if let Some(clash) = service.methods.iter().find(|m| m.name == twin) {
                buf.push_str(&format!(
                    "::core::compile_error!(\"{full}: the async twin of {} would be named as \
                     {} is (`{twin}`); rename one of them in the .proto\");\n",
                    unary.proto_name, clash.proto_name
                ));
                twinless.push(unary.name.clone());
            }
        }
        buf.push('\n');
        buf.push_str(&fill(SERVICE_TOP, None).replace("%DOCS%", &docs));
        buf.push_str(&each(TRAIT_METHOD));
        buf.push_str(&fill(ARC_TOP, None));
        buf.push_str(&each(ARC_METHOD));
        buf.push_str(&fill(CLIENT_TOP, None));
        buf.push_str(&each_shaped(CLIENT_METHOD));
        for unary in service
            .methods
            .iter()
            .filter(|m| !m.client_streaming && !m.server_streaming && !twinless.contains(&m.name))
        {
            buf.push_str(&fill(CLIENT_ASYNC_METHOD, Some(unary)));
        }
        buf.push_str(&fill(CLIENT_TRAIT_TOP, None));
        buf.push_str(&each(CLIENT_TRAIT_METHOD));
        buf.push_str(&fill(GUARD_TOP, None));
        buf.push_str(&each_shaped(GUARD_METHOD));
        buf.push_str(&fill(SERVER_TOP, None));
        buf.push_str(&each_shaped(SERVER_METHOD));
        buf.push_str(&fill(SERVER_MIDDLE, None));
        if streams {
            buf.push_str(&fill(SERVER_OPEN_TOP, None));
            buf.push_str(&each_shaped(SERVER_OPEN_METHOD));
            buf.push_str(&fill(SERVER_OPEN_BOTTOM, None));
            let paths: Vec<String> = service
                .methods
                .iter()
                .filter(|m| m.client_streaming || m.server_streaming)
                .map(|m| fill("\"%PATH%\"", Some(m)))
                .collect();
            buf.push_str(&SERVER_STREAMS_WHICH.replace("%PATHS%", &paths.join(" | ")));
        }
        buf.push_str(&fill(SERVER_BOTTOM, None));
    }
}

/// A method's parameters and return type, by its shape, and the name of
/// its argument.
fn signature(method: &prost_build::Method) -> (&'static str, &'static str) {
    match (method.client_streaming, method.server_streaming) {
        (false, false) => (
            "(&self, request: %In%) -> ::core::result::Result<%Out%, %P%::Status>",
            "request",
        ),
        (false, true) => (
            "(&self, request: %In%) -> ::core::result::Result<%P%::Messages<%Out%>, %P%::Status>",
            "request",
        ),
        (true, false) => (
            "(&self, requests: %P%::Messages<%In%>) -> ::core::result::Result<%Out%, %P%::Status>",
            "requests",
        ),
        (true, true) => (
            "(&self, requests: %P%::Messages<%In%>) -> \
             ::core::result::Result<%P%::Messages<%Out%>, %P%::Status>",
            "requests",
        ),
    }
}

fn upper_snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

const SERVICE_TOP: &str = r#"/// The SHA-256 of the `.proto` files `%FULL%` was generated from.
pub const %UPPER%_PROTO_SHA256: &str = "%SHA%";

%DOCS%pub trait %Trait%: Send + Sync + 'static {
"#;

const TRAIT_METHOD: &str = r#"%DOCS%    fn %method%%SIG%;
"#;

const ARC_TOP: &str = r#"}

impl<T: %Trait% + ?Sized> %Trait% for ::std::sync::Arc<T> {
"#;

const ARC_METHOD: &str = r#"    fn %method%%SIG% {
        (**self).%method%(%ARG%)
    }
"#;

const CLIENT_TOP: &str = r#"}

/// A typed client of `%FULL%`: its calls go through any transport, or
/// straight to the implementation when the plugin is native to this build.
#[derive(Debug, Clone)]
pub struct %Trait%Client<T> {
    transport: T,
    options: %P%::context::CallOptions,
}

impl<T: %P%::Transport> %Trait%Client<T> {
    /// The protobuf service's full name.
    pub const SERVICE: &'static str = "%FULL%";

    /// A client whose calls go through `transport`.
    pub fn new(transport: T) -> Self {
        Self { transport, options: %P%::context::CallOptions::new() }
    }

    /// This client, its calls each held to `timeout` (or the plugin's own
    /// limit, if shorter); a late call fails with `DeadlineExceeded`.
    pub fn with_timeout(mut self, timeout: ::std::time::Duration) -> Self {
        self.options = self.options.timeout(timeout);
        self
    }

    /// This client, its calls held to `deadline`.
    pub fn with_deadline(mut self, deadline: ::std::time::Instant) -> Self {
        self.options = self.options.deadline(deadline);
        self
    }

    /// This client, its calls stopped when `cancel` is cancelled; they
    /// then fail with `Cancelled`.
    pub fn with_cancel(mut self, cancel: &%P%::context::Cancel) -> Self {
        self.options = self.options.cancel(cancel);
        self
    }

    /// The transport underneath.
    pub fn transport(&self) -> &T {
        &self.transport
    }
"#;

const CLIENT_METHOD: [&str; 4] = [
    r#"
%DOCS%    pub fn %method%%SIG% {
        %P%::context::with(&self.options, || match %P%::native::<dyn %Trait%, _, _>(&self.transport, "%FULL%", "%PATH%", request, |native, request| native.%method%(request)) {
            ::core::result::Result::Ok(answer) => answer,
            ::core::result::Result::Err(request) => %P%::unary(&self.transport, "%PATH%", &request),
        })
    }
"#,
    r#"
%DOCS%    pub fn %method%%SIG% {
        %P%::stream::open::<%In%, %Out%>(&self.transport, &self.options, "%PATH%", %P%::Messages::ok([request]))
    }
"#,
    r#"
%DOCS%    pub fn %method%%SIG% {
        %P%::stream::open::<%In%, %Out%>(&self.transport, &self.options, "%PATH%", requests)?.single("the answer of %PATH%")
    }
"#,
    r#"
%DOCS%    pub fn %method%%SIG% {
        %P%::stream::open::<%In%, %Out%>(&self.transport, &self.options, "%PATH%", requests)
    }
"#,
];

const CLIENT_ASYNC_METHOD: &str = r#"
    /// `%Method%` from async code (`Transport::call_async`). Through a host's
    /// `Plugin`, a plugin in another process is waited for without blocking
    /// the runtime's thread, and an in-process plugin's call runs inline, as
    /// the function call it is; other transports run it inline unless they
    /// say otherwise.
    pub async fn %method%_async(&self, request: %In%) -> ::core::result::Result<%Out%, %P%::Status> {
        let direct = %P%::context::with(&self.options, || %P%::native::<dyn %Trait%, _, _>(&self.transport, "%FULL%", "%PATH%", request, |native, request| native.%method%(request)));
        match direct {
            ::core::result::Result::Ok(answer) => answer,
            ::core::result::Result::Err(request) => %P%::unary_async(&self.transport, &self.options, "%PATH%", &request).await,
        }
    }
"#;

const CLIENT_TRAIT_TOP: &str = r#"}

impl<T: %P%::Transport + 'static> %Trait% for %Trait%Client<T> {
"#;

const CLIENT_TRAIT_METHOD: &str = r#"    fn %method%%SIG% {
        %Trait%Client::%method%(self, %ARG%)
    }
"#;

const GUARD_TOP: &str = r#"}

impl<T: %P%::Transport> %P%::Client for %Trait%Client<T> {
    type Transport = T;
    const SERVICE: &'static str = "%FULL%";
    fn from_transport(transport: T) -> Self {
        Self::new(transport)
    }
}

/// Catches panics in an implementation, in the plugin's own code: a call
/// that panics fails with `Internal` and poisons the server.
struct %Trait%Guard<T> {
    inner: T,
    poisoned: ::std::sync::Arc<::std::sync::atomic::AtomicBool>,
}

impl<T: %Trait%> %Trait% for %Trait%Guard<T> {
"#;

const GUARD_METHOD: [&str; 4] = [GUARD_ONE, GUARD_STREAM, GUARD_ONE, GUARD_STREAM];

const GUARD_ONE: &str = r#"    fn %method%%SIG% {
        %P%::guard(&self.poisoned, "%PATH%", || self.inner.%method%(%ARG%))
    }
"#;

/// Each response of a stream is made inside the guard too.
const GUARD_STREAM: &str = r#"    fn %method%%SIG% {
        %P%::guard(&self.poisoned, "%PATH%", || self.inner.%method%(%ARG%))
            .map(|responses| responses.guarded(::std::sync::Arc::clone(&self.poisoned), "%PATH%"))
    }
"#;

const SERVER_TOP: &str = r#"}

/// Serves a [`%Trait%`] implementation from any mechanism. A panic in the
/// implementation fails that call with `Internal` and poisons the server:
/// later calls fail with `Unavailable` (its state may be corrupt).
#[derive(Clone)]
pub struct %Trait%Server {
    inner: ::std::sync::Arc<dyn %Trait%>,
    poisoned: ::std::sync::Arc<::std::sync::atomic::AtomicBool>,
}

impl %Trait%Server {
    /// Wraps an implementation for serving.
    pub fn new(implementation: impl %Trait%) -> Self {
        let poisoned = ::std::sync::Arc::new(::std::sync::atomic::AtomicBool::new(false));
        let inner = ::std::sync::Arc::new(%Trait%Guard {
            inner: implementation,
            poisoned: poisoned.clone(),
        });
        Self { inner, poisoned }
    }
}

impl %P%::Service for %Trait%Server {
    fn name(&self) -> &'static str {
        "%FULL%"
    }

    fn call(&self, method: &str, request: &[u8], response: &mut ::std::vec::Vec<u8>) -> ::core::result::Result<(), %P%::Status> {
        match method {
"#;

const SERVER_METHOD: [&str; 4] = [
    r#"            "%PATH%" => %P%::handle(method, request, response, |request| self.inner.%method%(request)),
"#,
    SERVER_STREAMS,
    SERVER_STREAMS,
    SERVER_STREAMS,
];

const SERVER_STREAMS: &str = r#"            "%PATH%" => {
                let _ = (request, response);
                ::core::result::Result::Err(%P%::Status::unimplemented(
                    "%PATH% streams: it is opened as a stream (Transport::open), not called"
                ))
            }
"#;

const SERVER_MIDDLE: &str = r#"            _ => {
                // Read by no method (a service of none reads them nowhere).
                let _ = (request, response);
                ::core::result::Result::Err(%P%::Status::unimplemented(::std::format!(
                    "%FULL% has no method {method}"
                )))
            }
        }
    }
"#;

const SERVER_OPEN_TOP: &str = r#"
    fn open(&self, method: &str, requests: %P%::Messages<::std::vec::Vec<u8>>) -> ::core::result::Result<%P%::Messages<::std::vec::Vec<u8>>, %P%::Status> {
        match method {
"#;

const SERVER_OPEN_METHOD: [&str; 4] = [
    r#"            "%PATH%" => ::core::result::Result::Err(%P%::Status::unimplemented(
                "%PATH% does not stream: it is called (Transport::call), not opened"
            )),
"#,
    r#"            "%PATH%" => %P%::stream::serve_server("%PATH%", requests, |request| self.inner.%method%(request)),
"#,
    r#"            "%PATH%" => %P%::stream::serve_client("%PATH%", requests, |requests| self.inner.%method%(requests)),
"#,
    r#"            "%PATH%" => %P%::stream::serve_both("%PATH%", requests, |requests| self.inner.%method%(requests)),
"#,
];

const SERVER_OPEN_BOTTOM: &str = r#"            _ => ::core::result::Result::Err(%P%::Status::unimplemented(::std::format!(
                "%FULL% has no method {method}"
            ))),
        }
    }
"#;

const SERVER_STREAMS_WHICH: &str = r#"
    fn streams(&self, method: &str) -> bool {
        ::core::matches!(method, %PATHS%)
    }
"#;

const SERVER_BOTTOM: &str = r#"
    fn as_any(&self) -> ::core::option::Option<&(dyn ::core::any::Any + Send + Sync)> {
        ::core::option::Option::Some(&self.inner)
    }

    fn shared(&self) -> ::core::option::Option<%P%::Shared> {
        ::core::option::Option::Some(%P%::Shared {
            implementation: ::std::boxed::Box::new(::std::sync::Arc::clone(&self.inner)),
            poisoned: ::std::sync::Arc::clone(&self.poisoned),
        })
    }

    fn poisoned(&self) -> bool {
        self.poisoned.load(::std::sync::atomic::Ordering::Relaxed)
    }

    fn proto_sha256(&self) -> &'static str {
        %UPPER%_PROTO_SHA256
    }
}
"#;

/// The SHA-256 of the files' bytes, one after the other, in lowercase hex.
fn proto_sha256(files: &[impl AsRef<Path>]) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for file in files {
        hash.update(std::fs::read(file)?);
    }
    Ok(hash
        .finalize()
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        }))
}

fn doc(buf: &mut String, indent: &str, comments: &[String]) {
    for line in comments.iter().flat_map(|c| c.lines()) {
        let _ = writeln!(buf, "{indent}///{line}");
    }
}

#[cfg(test)]
mod tests {
    use prost_build::ServiceGenerator;

    use super::*;

    fn method(name: &str, proto_name: &str) -> prost_build::Method {
        prost_build::Method {
            name: name.into(),
            proto_name: proto_name.into(),
            comments: Default::default(),
            input_type: "Request".into(),
            output_type: "Reply".into(),
            input_proto_type: ".demo.Request".into(),
            output_proto_type: ".demo.Reply".into(),
            options: Default::default(),
            client_streaming: false,
            server_streaming: false,
        }
    }

    #[test]
    fn a_method_named_as_another_ones_async_twin_stops_the_build_naming_both() {
        let service = |methods| prost_build::Service {
            name: "Greeter".into(),
            proto_name: "Greeter".into(),
            package: "demo".into(),
            comments: Default::default(),
            methods,
            options: Default::default(),
        };
        let generate = |service| {
            let mut generator = Generator {
                protocol: "::outlet_protocol".into(),
                proto_sha256: String::new(),
            };
            let mut out = String::new();
            generator.generate(service, &mut out);
            out
        };
        let clashing = generate(service(vec![
            method("greet", "Greet"),
            method("greet_async", "GreetAsync"),
        ]));
        assert!(
            clashing.contains(
                "compile_error!(\"demo.Greeter: the async twin of Greet would be named as \
                 GreetAsync is (`greet_async`)"
            ),
            "{clashing}"
        );
        // Only the error: no second `greet_async` beside it.
        assert!(
            !clashing.contains("pub async fn greet_async("),
            "{clashing}"
        );
        let fine = generate(service(vec![method("greet", "Greet")]));
        assert!(!fine.contains("compile_error!"));
        assert!(fine.contains("pub async fn greet_async("), "{fine}");
    }
}
