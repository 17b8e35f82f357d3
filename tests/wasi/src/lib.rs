//! A greeter built for `wasm32-wasip1` whose Greet does what the name says,
//! through WASI, and answers with what it got:
//!
//! | name | answer |
//! |---|---|
//! | `env:KEY` | the variable's value, or `<unset>` |
//! | `read:PATH` | the file's text, or `error: …` |
//! | `write:PATH=TEXT` | `ok`, or `error: …` |
//! | `clock` | seconds since the Unix epoch |
//! | `random` | a hash keyed by fresh random keys |
//! | `print:TEXT` | `printed`, after printing `out:TEXT` on stdout and `err:TEXT` on stderr |
//! | `exit` | never answers: `proc_exit(3)` |
//! | `sleep` | never answers: sleeping traps, as `poll_oneoff` is refused |

use std::hash::BuildHasher;

use greeter::{GreetRequest, GreetResponse, Greeter, GreeterServer};
use outlet_protocol::Status;

struct Wasi;

impl Greeter for Wasi {
    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {
        let name = request.name;
        let (verb, arg) = name.split_once(':').unwrap_or((&name, ""));
        let message = match verb {
            "env" => std::env::var(arg).unwrap_or_else(|_| "<unset>".into()),
            "read" => std::fs::read_to_string(arg).unwrap_or_else(|e| format!("error: {e}")),
            "write" => {
                let (path, text) = arg.split_once('=').unwrap_or((arg, ""));
                match std::fs::write(path, text) {
                    Ok(()) => "ok".into(),
                    Err(e) => format!("error: {e}"),
                }
            }
            "clock" => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs().to_string())
                .unwrap_or_else(|e| format!("error: {e}")),
            "random" => std::collections::hash_map::RandomState::new()
                .hash_one(1u8)
                .to_string(),
            "print" => {
                println!("out:{arg}");
                eprintln!("err:{arg}");
                "printed".into()
            }
            "exit" => std::process::exit(3),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                "slept".into()
            }
            _ => format!("unknown: {name}"),
        };
        Ok(GreetResponse { message })
    }
}

fn plugin() -> outlet_guest::Plugin {
    outlet_guest::Plugin::new("wasi", "1.0.0").service(GreeterServer::new(Wasi))
}

outlet_guest::export_wasm!(plugin);
