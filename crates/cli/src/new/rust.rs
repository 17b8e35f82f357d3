//! A plugin in Rust, for any mechanism: one crate of its own (its own
//! workspace), depending on the Outlet checkout's crates by path, with the
//! checkout's `Cargo.lock` so that it builds with the versions Outlet does.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use outlet_manifest::Mechanism;

use super::plan::{File, Method, Plan, Project, Service};

/// The service `full_name` of `set`, with the Rust names prost gives its
/// methods and types (what `outlet-build` generates the trait from).
pub fn service(set: prost_types::FileDescriptorSet, full_name: &str) -> anyhow::Result<Service> {
    let found: Arc<Mutex<Vec<prost_build::Service>>> = Arc::default();
    let requests = (set.file.into_iter())
        .map(|file| {
            let module = prost_build::Module::from_protobuf_package_name(file.package());
            (module, file)
        })
        .collect();
    prost_build::Config::new()
        .service_generator(Box::new(Collect(found.clone())))
        .generate(requests)
        .context("prost cannot generate Rust for it")?;
    let services = found.lock().unwrap_or_else(|e| e.into_inner());
    let Some(service) = services.iter().find(|s| {
        let full = if s.package.is_empty() {
            s.proto_name.clone()
        } else {
            format!("{}.{}", s.package, s.proto_name)
        };
        full == full_name
    }) else {
        bail!("prost generated no service {full_name}");
    };
    let methods = (service.methods.iter())
        .map(|m| Method {
            name: m.proto_name.clone(),
            rust: m.name.clone(),
            input_rust: m.input_type.clone(),
            output_rust: m.output_type.clone(),
            client_streaming: m.client_streaming,
            server_streaming: m.server_streaming,
        })
        .collect::<Vec<_>>();
    Ok(Service {
        full_name: full_name.to_owned(),
        name: service.name.clone(),
        methods,
    })
}

/// Collects the services prost meets.
struct Collect(Arc<Mutex<Vec<prost_build::Service>>>);

impl prost_build::ServiceGenerator for Collect {
    fn generate(&mut self, service: prost_build::Service, _buf: &mut String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(service);
    }
}

/// The crate: manifest, build script, source with its test, and for wasm
/// the target to build for.
pub fn plan(project: &Project, mechanism: Mechanism) -> Plan {
    let crate_name = project.name.replace('-', "_");
    let library = mechanism != Mechanism::Exec && mechanism != Mechanism::Rpc;
    let artifact = match mechanism {
        Mechanism::Exec | Mechanism::Rpc => format!("target/release/{}", project.name),
        Mechanism::Wasm => format!("target/wasm32-unknown-unknown/release/{crate_name}.wasm"),
        Mechanism::Native | Mechanism::Cabi => format!("target/release/lib{crate_name}.so"),
    };
    let source = if library { "src/lib.rs" } else { "src/main.rs" };
    let mut files = vec![
        File::new("Cargo.toml", cargo_toml(project, mechanism, library)),
        File::new(
            "build.rs",
            format!(
                "//! Generates the interface from `{proto}`: its messages, the `{name}`\n\
                 //! trait the plugin implements, and the glue that serves it.\n\n\
                 fn main() {{\n    \
                     outlet_build::compile(&[\"{proto}\"], &[\".\"]).expect(\"generate the interface\");\n\
                 }}\n",
                proto = project.proto,
                name = project.service.name
            ),
        ),
        File::new(source, source_rs(project, mechanism)),
        File::new(".gitignore", "/target\n"),
    ];
    // The versions Outlet builds with; cargo drops what this crate does not use.
    if let Ok(lock) = std::fs::read_to_string(project.outlet.join("Cargo.lock")) {
        files.push(File::new("Cargo.lock", lock));
    }
    let mut test = "cargo test".to_owned();
    if mechanism == Mechanism::Wasm {
        files.push(File::new(
            ".cargo/config.toml",
            "# A wasm plugin is built for WebAssembly: `cargo build` makes the module.\n\
             # Its tests run on this machine: `cargo test --target host-tuple`.\n\
             [build]\ntarget = \"wasm32-unknown-unknown\"\n",
        ));
        test = "cargo test --target host-tuple".into();
    }
    Plan {
        files,
        build: "cargo build --release".into(),
        test,
        artifact,
    }
}

fn cargo_toml(project: &Project, mechanism: Mechanism, library: bool) -> String {
    // Paths as TOML strings, quoted and escaped.
    let crate_path = |name: &str| {
        toml::Value::String(
            project
                .outlet
                .join("crates")
                .join(name)
                .display()
                .to_string(),
        )
    };
    let guest = if mechanism == Mechanism::Rpc {
        format!("{{ path = {}, features = [\"rpc\"] }}", crate_path("guest"))
    } else {
        format!("{{ path = {} }}", crate_path("guest"))
    };
    let mut text = format!(
        "[package]\n\
         name = \"{name}\"\n\
         version = \"0.1.0\"\n\
         edition = \"2024\"\n\
         publish = false\n\n",
        name = project.name
    );
    if library {
        let kind = match mechanism {
            Mechanism::Native => "a native plugin: loaded into a host of the same build",
            Mechanism::Cabi => {
                "a cabi plugin: loaded into the host's process, called through the C ABI"
            }
            _ => "a wasm module, run in the host's wasmtime sandbox",
        };
        let _ = write!(
            text,
            "# A shared library: {kind}.\n[lib]\ncrate-type = [\"cdylib\"]\n\n"
        );
    }
    let _ = write!(
        text,
        "# Outlet's crates are not published: these paths point into the Outlet\n\
         # checkout this project was made from. Cargo.lock holds the versions that\n\
         # checkout builds with.\n\
         [dependencies]\n\
         outlet-guest = {guest}\n\
         outlet-protocol = {{ path = {protocol} }}\n\
         prost = \"0.14\"\n\
         # protobuf's well-known types (google.protobuf.Timestamp, …), if the\n\
         # interface uses them.\n\
         prost-types = \"0.14\"\n",
        protocol = crate_path("protocol"),
    );
    let _ = write!(
        text,
        "\n[build-dependencies]\n\
         outlet-build = {{ path = {} }}\n",
        crate_path("build")
    );
    if mechanism == Mechanism::Wasm {
        text += "\n# A module is read and hashed on every load: small, and optimized whole.\n\
                 [profile.release]\nlto = true\ncodegen-units = 1\nstrip = true\n";
    }
    text += "\n# A workspace of its own, wherever the folder is.\n[workspace]\n";
    text
}

/// The plugin's source: the interface, its implementation, the mechanism's
/// entry point, and a test of the implementation.
fn source_rs(project: &Project, mechanism: Mechanism) -> String {
    let service = &project.service;
    let module = service
        .full_name
        .rsplit_once('.')
        .map_or("", |(package, _)| package);
    let generated = if module.is_empty() {
        "_".to_owned()
    } else {
        module.to_owned()
    };
    let how = match mechanism {
        Mechanism::Exec => "an exec plugin (the host runs it once per call)",
        Mechanism::Rpc => "an rpc plugin (a process serving gRPC as long as the host keeps it)",
        Mechanism::Native => "a native plugin (the host calls it directly, in its own process)",
        Mechanism::Cabi => "a cabi plugin (the host calls it through the C ABI of outlet.h)",
        Mechanism::Wasm => "a wasm plugin (the host runs it in a wasmtime sandbox)",
    };
    let mut out = format!(
        "//! {name}, {how}, serving `{full}`.\n\n\
         /// The interface, generated from `{proto}` by build.rs.\n\
         #[allow(dead_code)]\n\
         mod interface {{\n    \
             include!(concat!(env!(\"OUT_DIR\"), \"/{generated}.rs\"));\n\
         }}\n\n\
         use interface::*;\n{uses}\n",
        uses = if project.greeter {
            "use outlet_guest::Status;\n"
        } else {
            // The interface's own names (a message `Status`, say) come first.
            ""
        },
        name = project.name,
        full = service.full_name,
        proto = project.proto,
    );
    let trait_name = &service.name;
    if project.greeter {
        out += "/// The plugin's implementation of the interface.\n\
                #[derive(Default)]\n\
                struct Greetings;\n\n\
                impl Greeter for Greetings {\n    \
                    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {\n        \
                        let message = format!(\"Hello, {}!\", request.name);\n        \
                        Ok(GreetResponse { message })\n    \
                    }\n\
                }\n\n";
    } else {
        let _ = write!(
            out,
            "/// The plugin's implementation of the interface.\n\
             #[derive(Default)]\n\
             struct {trait_name}Impl;\n\n\
             impl {trait_name} for {trait_name}Impl {{\n"
        );
        for (index, method) in service.methods.iter().enumerate() {
            if index > 0 {
                out.push('\n');
            }
            out += &stub(
                project,
                method,
                if mechanism.is_process() {
                    "src/main.rs"
                } else {
                    "src/lib.rs"
                },
            );
        }
        out += "}\n\n";
    }
    let implementation = if project.greeter {
        "Greetings".to_owned()
    } else {
        format!("{trait_name}Impl")
    };
    let _ = write!(
        out,
        "/// The plugin: its name and version (what it says in Hello), and the\n\
         /// services it serves.\n\
         fn plugin() -> ::outlet_guest::Plugin {{\n    \
             ::outlet_guest::Plugin::new(\"{name}\", env!(\"CARGO_PKG_VERSION\"))\n        \
                 .service({trait_name}Server::new({implementation}))\n\
         }}\n\n",
        name = project.name
    );
    out += match mechanism {
        Mechanism::Exec => {
            "fn main() -> std::process::ExitCode {\n    outlet_guest::exec::serve(&plugin())\n}\n"
        }
        Mechanism::Rpc => {
            "fn main() -> std::process::ExitCode {\n    outlet_guest::rpc::serve(plugin())\n}\n"
        }
        Mechanism::Native => "outlet_guest::export_native!(plugin);\n",
        Mechanism::Cabi => "outlet_guest::export_cabi!(plugin);\n",
        Mechanism::Wasm => {
            "outlet_guest::export_wasm!(plugin);\n\n\
             /// Small blocks reused from free lists: a call's strings cost a few\n\
             /// instructions each.\n\
             #[cfg(all(target_arch = \"wasm32\", not(target_feature = \"atomics\")))]\n\
             #[global_allocator]\n\
             static ALLOC: outlet_guest::wasm::Allocator = outlet_guest::wasm::Allocator::new();\n"
        }
    };
    out += &test_rs(project, &implementation);
    out
}

/// A method that answers Unimplemented, and says what to write.
fn stub(project: &Project, method: &Method, source: &str) -> String {
    let (input, output) = (&method.input_rust, &method.output_rust);
    let (arg, takes) = if method.client_streaming {
        ("requests", format!("::outlet_guest::Messages<{input}>"))
    } else {
        ("request", input.clone())
    };
    let gives = if method.server_streaming {
        format!("::outlet_guest::Messages<{output}>")
    } else {
        output.clone()
    };
    let todo = match (method.client_streaming, method.server_streaming) {
        (false, false) if output == "()" => "read `request` and answer `Ok(())`".to_owned(),
        // A well-known wrapper maps to a Rust type of its own (String, bool, …).
        (false, false) if output.contains("::") || output.starts_with(char::is_lowercase) => {
            format!("read `request` and answer `Ok(…)`, a {output}")
        }
        (false, false) => format!("read `request` and answer `Ok({output} {{ .. }})`"),
        (false, true) => format!(
            "read `request` and answer `Ok(Messages::ok(…))` with the {output}s, or a \
             `Messages` that makes them as it is read"
        ),
        (true, false) => {
            format!("read the {input}s from `requests` (an iterator) and answer one {output}")
        }
        (true, true) => {
            format!("read the {input}s from `requests` and answer a `Messages` of {output}s")
        }
    };
    format!(
        "    // TODO: {name}: {todo}.\n    \
         fn {rust}(\n        &self,\n        {arg}: {takes},\n    \
         ) -> ::core::result::Result<{gives}, ::outlet_guest::Status> {{\n        \
             let _ = {arg};\n        \
             Err(::outlet_guest::Status::unimplemented(\n            \
                 \"{plugin}: {name} is not implemented yet; write it in {source}\",\n        \
             ))\n    \
         }}\n",
        name = method.name,
        rust = method.rust,
        plugin = project.name,
    )
}

/// A test of the implementation, run on this machine by `cargo test`.
fn test_rs(project: &Project, implementation: &str) -> String {
    let body = match project.service.methods.first() {
        _ if project.greeter => "    #[test]\n    \
             fn greet_says_hello() {\n        \
                 let reply = Greetings.greet(GreetRequest { name: \"world\".into() }).unwrap();\n        \
                 assert_eq!(reply.message, \"Hello, world!\");\n    \
             }\n"
            .to_owned(),
        Some(method) => {
            let request = if method.client_streaming {
                format!(
                    "::outlet_guest::Messages::ok(::std::vec::Vec::<{}>::new())",
                    method.input_rust
                )
            } else {
                format!("<{}>::default()", method.input_rust)
            };
            format!(
                "    /// Until it is written: then test what it answers.\n    \
                 #[test]\n    \
                 fn {rust}_is_not_written_yet() {{\n        \
                     let Err(status) = {implementation}.{rust}({request}) else {{\n            \
                         panic!(\"{name} answered\");\n        \
                     }};\n        \
                     assert_eq!(status.code(), outlet_protocol::Code::Unimplemented);\n    \
                 }}\n",
                rust = method.rust,
                name = method.name,
            )
        }
        None => "    #[test]\n    \
             fn the_plugin_is_made() {\n        \
                 let _ = plugin();\n    \
             }\n"
            .to_owned(),
    };
    format!("\n#[cfg(test)]\nmod tests {{\n    use super::*;\n\n{body}}}\n")
}
