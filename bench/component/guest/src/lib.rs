//! The greeter as a component: `greet(name)` answers `Hello, {name}!`,
//! the work Outlet's greeter does, behind the canonical ABI instead of
//! protobuf.

wit_bindgen::generate!({
    path: "../wit",
    world: "greeter-component",
});

struct Greeter;

impl exports::outlet::bench::greeter::Guest for Greeter {
    fn greet(name: String) -> String {
        format!("Hello, {name}!")
    }
}

export!(Greeter);
