use greeter::{GreetRequest, GreetResponse, Greeter, GreeterServer};
use outlet_guest::{Plugin, Status};

struct Greetings;

impl Greeter for Greetings {
    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {
        let message = format!("Hello, {}!", request.name);
        Ok(GreetResponse { message })
    }
}

fn main() -> std::process::ExitCode {
    let plugin = Plugin::new("greeter", "1.0.0").service(GreeterServer::new(Greetings));
    outlet_guest::exec::serve(&plugin)
}
