//! An rpc plugin in Go with HashiCorp go-plugin (gRPC), built offline in
//! GOPATH mode against the Go libraries Debian packages in /usr/share/gocode,
//! as `tests/go/build.sh` builds the interop plugins. gRPC's registration is
//! written out by hand (`grpc.ServiceDesc`): protoc-gen-go-grpc is not
//! needed.

use std::fmt::Write as _;

use super::plan::{File, Method, Plan, Project};
use super::test_script;

/// go-plugin's side: the handshake, the plugin, `main`.
const MAIN: &str = include_str!("go/main.go");
/// The greeter's service, and its messages as protoc-gen-go 1.3 (Debian's
/// protoc-gen-go-1-3) made them from examples/greeter/manifests/greeter.proto:
/// `protoc --go_out=import_path=main:. greeter.proto`.
const GREETER: &str = include_str!("go/greeter.go");
const GREETER_PB: &str = include_str!("go/greeter.pb.go");
const BUILD: &str = include_str!("go/build.sh");

/// Where the service is: the file the plugin's author edits.
const SERVICE_FILE: &str = "service.go";
/// go-plugin's magic cookie, which main.go expects and the host sets: the
/// defaults of a manifest's `[handshake]`.
const COOKIE_KEY: &str = outlet_manifest::Handshake::DEFAULT_KEY;
const COOKIE_VALUE: &str = outlet_manifest::Handshake::DEFAULT_VALUE;

pub fn plan(project: &Project) -> Plan {
    let fill = |template: &str| {
        template
            .replace("{{name}}", &project.name)
            .replace("{{service}}", &project.service.full_name)
            .replace("{{proto}}", &project.proto)
            .replace("{{service_file}}", SERVICE_FILE)
            .replace("{{cookie_key}}", COOKIE_KEY)
            .replace("{{cookie_value}}", COOKIE_VALUE)
    };
    let mut files = vec![
        File::new("main.go", fill(MAIN)),
        File::script("build.sh", fill(BUILD)),
        File::new(".gitignore", "/.gocache/\n/bin/\n"),
        test_script::file(project, None),
    ];
    if project.greeter {
        files.push(File::new(SERVICE_FILE, fill(GREETER)));
        files.push(File::new("greeter.pb.go", GREETER_PB));
    } else {
        files.push(File::new(SERVICE_FILE, stubs(project)));
    }
    Plan {
        files,
        build: "./build.sh".into(),
        test: "./test.sh".into(),
        artifact: format!("bin/{}", project.name),
    }
}

/// The manifest's `[handshake]`, which main.go's `handshake` matches. These
/// are its defaults: written out so that the two are seen side by side.
pub fn handshake() -> String {
    format!(
        "\n# go-plugin's handshake, as main.go says it: the host sets {COOKIE_KEY}={COOKIE_VALUE}\n\
         # in the plugin's environment, and main.go's ProtocolVersion (1) is one of\n\
         # `versions`.\n\
         [handshake]\n\
         magic_cookie_key = \"{COOKIE_KEY}\"\n\
         magic_cookie_value = \"{COOKIE_VALUE}\"\n"
    )
}

/// Every method answers Unimplemented, naming itself, without decoding its
/// request: no message types are needed until the author writes it.
fn stubs(project: &Project) -> String {
    let (proto, service) = (&project.proto, &project.service.full_name);
    let methods = &project.service.methods;
    let unary = methods.iter().any(|m| !m.streams());
    let mut imports = String::new();
    if unary {
        imports.push_str("\t\"context\"\n\n");
    }
    imports.push_str("\t\"google.golang.org/grpc\"\n");
    if !methods.is_empty() {
        imports
            .push_str("\t\"google.golang.org/grpc/codes\"\n\t\"google.golang.org/grpc/status\"\n");
    }
    let (mut handlers, mut unary_descs, mut stream_descs) =
        (String::new(), String::new(), String::new());
    for method in methods {
        handlers.push('\n');
        handlers.push_str(&handler(&project.name, method));
        let name = &method.name;
        if method.streams() {
            let _ = writeln!(
                stream_descs,
                "\t{{StreamName: \"{name}\", Handler: handle{name}, ServerStreams: {}, \
                 ClientStreams: {}}},",
                method.server_streaming, method.client_streaming
            );
        } else {
            let _ = writeln!(
                unary_descs,
                "\t{{MethodName: \"{name}\", Handler: handle{name}}},"
            );
        }
    }
    format!(
        "package main\n\
         \n\
         import (\n\
         {imports}\
         )\n\
         \n\
         // server holds what the service's methods share: each handler below\n\
         // gets it as srv (srv.(*server)).\n\
         type server struct{{}}\n\
         \n\
         func newServer() interface{{}} {{\n\
         \treturn &server{{}}\n\
         }}\n\
         \n\
         // Every method answers Unimplemented until you write it: look for TODO.\n\
         // To decode requests and encode responses, generate the Go types of\n\
         // {proto} into this folder with protoc-gen-go 1.3 (Debian's\n\
         // protoc-gen-go-1-3, which matches the libraries build.sh uses):\n\
         //\n\
         //\tprotoc --go_out=import_path=main:. {proto}\n\
         {handlers}\
         \n\
         // serviceDesc is the service as gRPC serves it: its name and its methods.\n\
         var serviceDesc = grpc.ServiceDesc{{\n\
         \tServiceName: \"{service}\",\n\
         \tHandlerType: (*interface{{}})(nil),\n\
         \tMethods:     unaryMethods,\n\
         \tStreams:     streamMethods,\n\
         \tMetadata:    \"{proto}\",\n\
         }}\n\
         \n\
         // unaryMethods take one request and answer one response.\n\
         var unaryMethods = []grpc.MethodDesc{{{}}}\n\
         \n\
         // streamMethods are those whose requests or responses stream.\n\
         var streamMethods = []grpc.StreamDesc{{{}}}\n",
        block(&unary_descs),
        block(&stream_descs),
    )
}

/// The elements of a Go slice literal, one a line, as gofmt writes them.
fn block(lines: &str) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n{lines}")
    }
}

/// One method's gRPC handler, with what to fill in.
fn handler(plugin: &str, method: &Method) -> String {
    let name = &method.name;
    let error =
        format!("status.Error(codes.Unimplemented, \"{plugin}: {name} is not implemented yet\")");
    let todo = match (method.client_streaming, method.server_streaming) {
        (false, false) => {
            return format!(
                "// handle{name} serves {name}. TODO: decode the request with\n\
                 //\n\
                 //\tin := new(<its request type>)\n\
                 //\tif err := dec(in); err != nil {{\n\
                 //\t\treturn nil, err\n\
                 //\t}}\n\
                 //\n\
                 // and return a pointer to its response, or a status.Error.\n\
                 func handle{name}(srv interface{{}}, ctx context.Context, dec func(interface{{}}) error, \
                 interceptor grpc.UnaryServerInterceptor) (interface{{}}, error) {{\n\
                 \treturn nil, {error}\n\
                 }}\n"
            );
        }
        (false, true) => {
            "whose responses stream. TODO: read the request with\n\
             // stream.RecvMsg(in), send each response with stream.SendMsg(out), and\n\
             // return nil after the last."
        }
        (true, false) => {
            "whose requests stream. TODO: read each request with\n\
             // stream.RecvMsg(in) until it returns io.EOF, then send the one response\n\
             // with stream.SendMsg(out) and return nil."
        }
        (true, true) => {
            "whose requests and responses stream. TODO: read\n\
             // requests with stream.RecvMsg(in) (io.EOF: there are no more) and send\n\
             // responses with stream.SendMsg(out) as you go; return nil when done."
        }
    };
    format!(
        "// handle{name} serves {name}, {todo}\n\
         func handle{name}(srv interface{{}}, stream grpc.ServerStream) error {{\n\
         \treturn {error}\n\
         }}\n"
    )
}
