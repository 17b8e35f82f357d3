//! A native greeter that panics when asked to greet "panic".

use greeter::{GreetRequest, GreetResponse, Greeter, GreeterServer};
use outlet_guest::{Plugin, Status};

struct Fragile;

impl Greeter for Fragile {
    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {
        if request.name == "panic" {
            panic!("asked to panic");
        }
        Ok(GreetResponse {
            message: format!("Hello, {}!", request.name),
        })
    }
}

fn plugin() -> Plugin {
    Plugin::new("fragile", "0.0.1").service(GreeterServer::new(Fragile))
}

outlet_guest::export_native!(plugin);
