//! `outlet call`'s JSON → protobuf, with the very code the command runs
//! (`crates/cli/src/dynamic.rs`), for the examples' interfaces and one with
//! every kind of field: a request that encodes decodes again, and its JSON
//! then stays the same; a plugin's answer of any bytes decodes or fails,
//! never panics.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use outlet_fuzz as _;
use outlet_manifest::Manifest;
use outlet_manifest::policy::Policy;
use prost_reflect::{DynamicMessage, MethodDescriptor};

#[path = "../../crates/cli/src/dynamic.rs"]
#[allow(dead_code)]
mod dynamic;

/// Every method of the interfaces, compiled once.
fn methods() -> &'static [MethodDescriptor] {
    static METHODS: OnceLock<Vec<MethodDescriptor>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let interfaces = [
            (
                "examples/greeter/manifests/greeter.proto",
                "outlet.examples.greeter.v1.Greeter",
            ),
            (
                "examples/numbers/manifests/numbers.proto",
                "outlet.examples.numbers.v1.Numbers",
            ),
            ("examples/kv/kv.proto", "proto.KV"),
            ("fuzz/protos/kitchen.proto", "outlet.fuzz.v1.Kitchen"),
        ];
        // The interfaces lie outside the fuzz folder, where its manifests are.
        let checkout = root.parent().expect("the checkout");
        let policy = Policy::default().approve_root(checkout);
        let mut methods = Vec::new();
        for (proto, interface) in interfaces {
            let proto = checkout.join(proto);
            let text = format!(
                "name = \"fuzz\"\nmechanism = \"exec\"\npath = \"fuzz\"\n\
                 interface = \"{interface}\"\nproto = \"{}\"\ntrust = \"in-process\"\n",
                proto.display()
            );
            let manifest = Manifest::parse(&text, &root.join("fuzz.toml")).expect("a manifest");
            let service = dynamic::service(&manifest, &policy).expect("the interface compiles");
            methods.extend(service.methods());
        }
        methods
    })
}

/// An encoded request as JSON, as a plugin that echoes it would answer.
fn as_json(method: &MethodDescriptor, bytes: &[u8]) -> serde_json::Value {
    let message = DynamicMessage::decode(method.input(), bytes).expect("what encoded decodes");
    serde_json::to_value(&message).expect("a message is JSON")
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let methods = methods();
    let method = &methods[usize::from(which >> 1) % methods.len()];
    if which & 1 == 0 {
        let Ok(json) = std::str::from_utf8(rest) else {
            return;
        };
        let Ok(bytes) = dynamic::encode(method, json) else {
            return;
        };
        // As the plugin would answer it.
        let echo = as_json(method, &bytes);
        let again = dynamic::encode(method, &echo.to_string()).expect("its JSON encodes");
        assert_eq!(as_json(method, &again), echo);
    } else if let Ok(json) = dynamic::decode(method, rest) {
        // An answer that decodes prints as JSON that is read back.
        let text = json.to_string();
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
    }
});
