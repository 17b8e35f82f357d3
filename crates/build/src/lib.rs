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
        let p = &self.protocol;
        let name = &service.name;
        let full = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let client = format!("{name}Client");
        let server = format!("{name}Server");
        let path = |m: &prost_build::Method| format!("/{full}/{}", m.proto_name);

        // The trait.
        let _ = writeln!(buf);
        doc(buf, "", &service.comments.leading);
        let _ = writeln!(buf, "pub trait {name}: Send + Sync + 'static {{");
        for m in &service.methods {
            doc(buf, "    ", &m.comments.leading);
            let _ = writeln!(
                buf,
                "    fn {}(&self, request: {}) -> ::core::result::Result<{}, {p}::Status>;",
                m.name, m.input_type, m.output_type
            );
        }
        let _ = writeln!(buf, "}}\n");

        let _ = writeln!(
            buf,
            "impl<T: {name} + ?Sized> {name} for ::std::sync::Arc<T> {{"
        );
        for m in &service.methods {
            let _ = writeln!(
                buf,
                "    fn {0}(&self, request: {1}) -> ::core::result::Result<{2}, {p}::Status> {{\n        \
                     (**self).{0}(request)\n    }}",
                m.name, m.input_type, m.output_type
            );
        }
        let _ = writeln!(buf, "}}\n");

        // The client.
        let _ = writeln!(
            buf,
            "/// A typed client of `{full}`: its calls go through any transport.\n\
             #[derive(Debug, Clone)]\n\
             pub struct {client}<T> {{\n    transport: T,\n}}\n\n\
             impl<T: {p}::Transport> {client}<T> {{\n    \
                 /// The protobuf service's full name.\n    \
                 pub const SERVICE: &'static str = \"{full}\";\n\n    \
                 /// A client whose calls go through `transport`.\n    \
                 pub fn new(transport: T) -> Self {{\n        Self {{ transport }}\n    }}\n\n    \
                 /// The transport underneath.\n    \
                 pub fn transport(&self) -> &T {{\n        &self.transport\n    }}"
        );
        for m in &service.methods {
            let _ = writeln!(buf);
            if m.comments.leading.is_empty() {
                let _ = writeln!(buf, "    /// Calls `{}`.", m.proto_name);
            }
            doc(buf, "    ", &m.comments.leading);
            let _ = writeln!(
                buf,
                "    pub fn {}(&self, request: {}) -> ::core::result::Result<{}, {p}::Status> {{\n        \
                     {p}::unary(&self.transport, \"{}\", &request)\n    }}",
                m.name,
                m.input_type,
                m.output_type,
                path(m)
            );
        }
        let _ = writeln!(buf, "}}\n");
        let _ = writeln!(
            buf,
            "impl<T: {p}::Transport + 'static> {name} for {client}<T> {{"
        );
        for m in &service.methods {
            let _ = writeln!(
                buf,
                "    fn {0}(&self, request: {1}) -> ::core::result::Result<{2}, {p}::Status> {{\n        \
                     {client}::{0}(self, request)\n    }}",
                m.name, m.input_type, m.output_type
            );
        }
        let _ = writeln!(buf, "}}\n");
        let _ = writeln!(
            buf,
            "impl<T: {p}::Transport> {p}::Client for {client}<T> {{\n    \
                 type Transport = T;\n    \
                 const SERVICE: &'static str = \"{full}\";\n    \
                 fn from_transport(transport: T) -> Self {{\n        Self::new(transport)\n    }}\n}}\n"
        );

        // The server glue.
        let _ = writeln!(
            buf,
            "/// Serves a [`{name}`] implementation from any mechanism.\n\
             #[derive(Debug, Clone)]\n\
             pub struct {server}<T>(pub T);\n\n\
             impl<T: {name}> {server}<T> {{\n    \
                 /// Wraps an implementation for serving.\n    \
                 pub fn new(implementation: T) -> Self {{\n        Self(implementation)\n    }}\n}}\n\n\
             impl<T: {name}> {p}::Service for {server}<T> {{\n    \
                 fn name(&self) -> &'static str {{\n        \"{full}\"\n    }}\n\n    \
                 fn call(&self, method: &str, request: &[u8], response: &mut ::std::vec::Vec<u8>) -> ::core::result::Result<(), {p}::Status> {{\n        \
                     match method {{"
        );
        for m in &service.methods {
            let _ = writeln!(
                buf,
                "            \"{}\" => {p}::handle(method, request, response, |request| self.0.{}(request)),",
                path(m),
                m.name
            );
        }
        let _ = writeln!(
            buf,
            "            _ => ::core::result::Result::Err({p}::Status::unimplemented(::std::format!(\n                \
                             \"{full} has no method {{method}}\"\n            ))),\n        \
                     }}\n    }}\n}}"
        );
    }
}

fn doc(buf: &mut String, indent: &str, comments: &[String]) {
    for line in comments.iter().flat_map(|c| c.lines()) {
        let _ = writeln!(buf, "{indent}///{line}");
    }
}
