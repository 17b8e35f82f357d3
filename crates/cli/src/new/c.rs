//! A cabi plugin in C: one source file, `outlet.h` and `protobuf.h` beside
//! it, and a Makefile that builds the shared library.

use std::fmt::Write as _;

use super::plan::{File, Method, Plan, Project};
use super::test_script;

/// The contract with the host, copied into the project so that it builds
/// without an Outlet checkout.
const OUTLET_H: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../include/outlet.h"
));
const PROTOBUF_H: &str = include_str!("c/protobuf.h");
const GREETER: &str = include_str!("c/greeter.c");
const STUBS: &str = include_str!("c/stubs.c");

pub fn plan(project: &Project) -> Plan {
    let ident = project.name.replace('-', "_");
    let source = format!("{ident}.c");
    let library = format!("lib{ident}.so");
    let code = if project.greeter {
        GREETER.to_owned()
    } else {
        stubs(project)
    };
    let code = code
        .replace("{{name}}", &project.name)
        .replace("{{service}}", &project.service.full_name)
        .replace("{{proto}}", &project.proto);
    Plan {
        files: vec![
            File::new(&source, code),
            File::new("outlet.h", OUTLET_H),
            File::new("protobuf.h", PROTOBUF_H),
            File::new("Makefile", makefile(&source, &library)),
            test_script::file(project, Some("in-process")),
        ],
        build: "make".into(),
        test: "./test.sh".into(),
        artifact: library,
    }
}

fn makefile(source: &str, library: &str) -> String {
    format!(
        "# Builds the plugin: a shared library that the host loads into its own\n\
         # process (the manifest's `path`). `make clean` removes it.\n\
         CC = cc\n\
         CFLAGS = -O2 -Wall -Wextra\n\
         \n\
         {library}: {source} outlet.h protobuf.h\n\
         \t$(CC) -shared -fPIC $(CFLAGS) -o $@ {source}\n\
         \n\
         clean:\n\
         \trm -f {library}\n\
         \n\
         .PHONY: clean\n"
    )
}

/// Every method answers Unimplemented, naming itself, with a TODO.
fn stubs(project: &Project) -> String {
    let (streaming, unary): (Vec<&Method>, Vec<&Method>) =
        project.service.methods.iter().partition(|m| m.streams());
    let mut calls = String::new();
    if unary.is_empty() {
        calls.push_str("    (void)method;\n    (void)method_len;\n");
    }
    for method in unary {
        let name = &method.name;
        let _ = write!(
            calls,
            "    if (is(method, method_len, \"/\" SERVICE \"/{name}\")) {{\n\
             \x20       /* TODO: {name}.\n\
             \x20        * Decode its request from request and request_len (next_field),\n\
             \x20        * write its response into a writer, and return finish(&w, ok, out). */\n\
             \x20       return fail(OUTLET_UNIMPLEMENTED, PLUGIN \": {name} is not implemented yet\", out);\n\
             \x20   }}\n"
        );
    }
    let (streams, table) = if streaming.is_empty() {
        (String::new(), String::new())
    } else {
        (
            streams(&streaming),
            "    .open = open_stream,\n    .next = next_response,\n    .close = close_stream,\n"
                .to_owned(),
        )
    };
    STUBS
        .replace("{{calls}}", &calls)
        .replace("{{streams}}", &streams)
        .replace("{{stream_table}}", &table)
}

/// `open`, `next` and `close`, for the methods that stream.
fn streams(methods: &[&Method]) -> String {
    let mut opens = String::new();
    for method in methods {
        let name = &method.name;
        let todo = match (method.client_streaming, method.server_streaming) {
            (false, _) => {
                "Pull its one request with\n\
                 \x20        * host->next_request(host->host, requests, &request) and decode it;\n\
                 \x20        * keep what `next` needs in a struct of yours, set *stream to it and\n\
                 \x20        * return OUTLET_OK. `next` then encodes one response a call, and\n\
                 \x20        * returns -1 after the last."
            }
            (true, false) => {
                "Keep `requests` in a struct of yours, set *stream to it\n\
                 \x20        * and return OUTLET_OK. `next` then pulls every request with\n\
                 \x20        * host->next_request (-1: there are no more), encodes the one\n\
                 \x20        * response, and returns -1 on its following call."
            }
            (true, true) => {
                "Keep `requests` in a struct of yours, set *stream to it\n\
                 \x20        * and return OUTLET_OK. Each `next` then pulls requests with\n\
                 \x20        * host->next_request (-1: there are no more) as it needs them,\n\
                 \x20        * encodes one response, and returns -1 once the stream is done."
            }
        };
        let _ = write!(
            opens,
            "    if (is(method, method_len, \"/\" SERVICE \"/{name}\")) {{\n\
             \x20       /* TODO: {name}.\n\
             \x20        * {todo} */\n\
             \x20       return fail(OUTLET_UNIMPLEMENTED, PLUGIN \": {name} is not implemented yet\", out);\n\
             \x20   }}\n"
        );
    }
    format!(
        "\n\
         /* Opens a stream of a method whose requests or responses stream. On\n\
         \x20* OUTLET_OK the host calls `next` for each response until it returns -1,\n\
         \x20* then `close`; the stream's requests are pulled with the host table's\n\
         \x20* next_request, passing `requests`. */\n\
         static int32_t open_stream(const uint8_t *method, size_t method_len, void *requests,\n\
         \x20                          void **stream, outlet_buf *out) {{\n\
         \x20   (void)requests;\n\
         \x20   *stream = NULL;\n\
         {opens}\
         \x20   return fail(OUTLET_UNIMPLEMENTED, PLUGIN \" has no such streaming method\", out);\n\
         }}\n\
         \n\
         /* The stream's next response: OUTLET_OK with it in *out, -1 once the\n\
         \x20* stream has ended, or a code and a message. */\n\
         static int32_t next_response(void *stream, outlet_buf *out) {{\n\
         \x20   (void)stream;\n\
         \x20   out->ptr = NULL;\n\
         \x20   out->len = 0;\n\
         \x20   return -1;\n\
         }}\n\
         \n\
         /* Releases what `open_stream` set *stream to, ended or not. */\n\
         static void close_stream(void *stream) {{ free(stream); }}\n"
    )
}
