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
//! [`Builder::protocol_crate`] to change that). Only unary methods are
//! supported; a streaming method fails the build with a message saying so.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::cell::RefCell;
use std::fmt::Write;
use std::path::Path;
use std::rc::Rc;

/// Compiles `.proto` files into `OUT_DIR` with the default [`Builder`].
///
/// # Errors
/// The `.proto` files' parse errors (with file, line and column), or a
/// streaming method, which Outlet does not support.
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
        let errors = Rc::new(RefCell::new(Vec::new()));
        prost_build::Config::new()
            .service_generator(Box::new(Generator {
                protocol: self.protocol_crate.clone(),
                proto_sha256: proto_sha256(files)?,
                errors: errors.clone(),
            }))
            .compile_fds(descriptors)?;
        let errors = errors.borrow();
        if !errors.is_empty() {
            return Err(errors.join("\n").into());
        }
        Ok(())
    }
}

struct Generator {
    protocol: String,
    /// The SHA-256 of the `.proto` files, in the order given.
    proto_sha256: String,
    /// What could not be generated: prost's hook cannot fail, so errors wait here.
    errors: Rc<RefCell<Vec<String>>>,
}

impl prost_build::ServiceGenerator for Generator {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        if let Some(method) = service
            .methods
            .iter()
            .find(|m| m.client_streaming || m.server_streaming)
        {
            self.errors.borrow_mut().push(format!(
                "{}.{}: method {} streams, and Outlet interfaces support unary methods only; \
                 split the stream into unary calls",
                service.package, service.proto_name, method.proto_name
            ));
            return;
        }
        let full = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let fill = |template: &str, method: Option<&prost_build::Method>| {
            let mut out = template
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
        let each = |template: &str| -> String {
            service
                .methods
                .iter()
                .map(|m| {
                    let mut docs = String::new();
                    doc(&mut docs, "    ", &m.comments.leading);
                    if docs.is_empty() {
                        docs = format!("    /// Calls `{}`.\n", m.proto_name);
                    }
                    fill(template, Some(m)).replace("%DOCS%", &docs)
                })
                .collect()
        };
        let mut docs = String::new();
        doc(&mut docs, "", &service.comments.leading);

        buf.push('\n');
        buf.push_str(&fill(SERVICE_TOP, None).replace("%DOCS%", &docs));
        buf.push_str(&each(TRAIT_METHOD));
        buf.push_str(&fill(ARC_TOP, None));
        buf.push_str(&each(ARC_METHOD));
        buf.push_str(&fill(CLIENT_TOP, None));
        buf.push_str(&each(CLIENT_METHOD));
        buf.push_str(&fill(CLIENT_TRAIT_TOP, None));
        buf.push_str(&each(CLIENT_TRAIT_METHOD));
        buf.push_str(&fill(GUARD_TOP, None));
        buf.push_str(&each(GUARD_METHOD));
        buf.push_str(&fill(SERVER_TOP, None));
        buf.push_str(&each(SERVER_METHOD));
        buf.push_str(&fill(SERVER_BOTTOM, None));
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

const TRAIT_METHOD: &str = r#"%DOCS%    fn %method%(&self, request: %In%) -> ::core::result::Result<%Out%, %P%::Status>;
"#;

const ARC_TOP: &str = r#"}

impl<T: %Trait% + ?Sized> %Trait% for ::std::sync::Arc<T> {
"#;

const ARC_METHOD: &str = r#"    fn %method%(&self, request: %In%) -> ::core::result::Result<%Out%, %P%::Status> {
        (**self).%method%(request)
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

const CLIENT_METHOD: &str = r#"
%DOCS%    pub fn %method%(&self, request: %In%) -> ::core::result::Result<%Out%, %P%::Status> {
        %P%::context::with(&self.options, || match %P%::native::<dyn %Trait%, _, _>(&self.transport, "%FULL%", "%PATH%", request, |native, request| native.%method%(request)) {
            ::core::result::Result::Ok(answer) => answer,
            ::core::result::Result::Err(request) => %P%::unary(&self.transport, "%PATH%", &request),
        })
    }
"#;

const CLIENT_TRAIT_TOP: &str = r#"}

impl<T: %P%::Transport + 'static> %Trait% for %Trait%Client<T> {
"#;

const CLIENT_TRAIT_METHOD: &str = r#"    fn %method%(&self, request: %In%) -> ::core::result::Result<%Out%, %P%::Status> {
        %Trait%Client::%method%(self, request)
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

const GUARD_METHOD: &str = r#"    fn %method%(&self, request: %In%) -> ::core::result::Result<%Out%, %P%::Status> {
        %P%::guard(&self.poisoned, "%PATH%", || self.inner.%method%(request))
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

const SERVER_METHOD: &str = r#"            "%PATH%" => %P%::handle(method, request, response, |request| self.inner.%method%(request)),
"#;

const SERVER_BOTTOM: &str = r#"            _ => ::core::result::Result::Err(%P%::Status::unimplemented(::std::format!(
                "%FULL% has no method {method}"
            ))),
        }
    }

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
