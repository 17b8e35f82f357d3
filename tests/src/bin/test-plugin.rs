//! A greeter plugin that misbehaves on request, for the integration tests.
//!
//! `OUTLET_TEST_MODE` (passed by the test's manifest) picks the behaviour;
//! without it, this is a well-behaved greeter that also logs to stderr and
//! prints to stdout by mistake.
//!
//! In any mode, a Greet named `probe:…` makes an attack on the OS sandbox
//! instead, and answers how it went (`tests/src/probe.rs`). In mode
//! `numbers` it serves the numbers as well, whose streams misbehave on
//! request (`tests/src/hostile.rs`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use greeter::{GreetRequest, GreetResponse, Greeter, GreeterServer};
use outlet_guest::{Plugin, Status};

#[allow(dead_code)] // the flood's counts are the rpc plugin's
#[path = "../hostile.rs"]
mod hostile;
#[path = "../probe.rs"]
mod probe;

fn main() -> ExitCode {
    let mode = std::env::var("OUTLET_TEST_MODE").unwrap_or_default();
    match mode.as_str() {
        "exit" => {
            eprintln!("giving up before reading the call");
            return ExitCode::from(3);
        }
        "garbage" => {
            print!("Hello, world! This is not an Outlet frame.");
            return ExitCode::SUCCESS;
        }
        "hang" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "flood" => return flood(&mut std::io::stdout().lock(), None),
        "flood-frame" => return flood(&mut std::io::stdout().lock(), Some(1 << 30)),
        "frame-max" => return flood(&mut std::io::stdout().lock(), Some(u32::MAX)),
        "tiny-frames" => {
            // A million empty frames, as fast as the pipe takes them.
            let frames = b"OUTL\0\0\0\0".repeat(1 << 17);
            let mut out = std::io::stdout().lock();
            for _ in 0..8 {
                if out.write_all(&frames).is_err() {
                    return ExitCode::from(2);
                }
            }
            return ExitCode::SUCCESS;
        }
        "fork-hang" => {
            // A child of our own that holds stdout and stderr open forever;
            // not waiting for it is the point.
            #[allow(clippy::zombie_processes)]
            let child = std::process::Command::new(std::env::current_exe().unwrap())
                .env("OUTLET_TEST_MODE", "hang")
                .spawn()
                .unwrap();
            eprintln!("grandchild {}", child.id());
        }
        _ => {}
    }
    let versions: &[u32] = if mode == "version7" { &[7] } else { &[1] };
    let linger = mode == "linger";
    let plugin = Plugin::new("test-plugin", "0.0.1").versions(versions);
    // `numbers`: the numbers too, with streams that misbehave on request.
    let plugin = match mode.as_str() {
        "numbers" => plugin.service(numbers::NumbersServer::new(hostile::Hostile)),
        _ => plugin,
    };
    let plugin = plugin.service(GreeterServer::new(Misbehaving(mode)));
    let code = outlet_guest::exec::serve(&plugin);
    if linger {
        // Replied, and now never exits.
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    code
}

/// Writes a gigabyte to stdout, after a frame header if one is given.
fn flood(out: &mut impl Write, header: Option<u32>) -> ExitCode {
    if let Some(len) = header {
        let _ = out.write_all(b"OUTL");
        let _ = out.write_all(&len.to_le_bytes());
    }
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..1024 {
        if out.write_all(&chunk).is_err() {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

struct Misbehaving(String);

impl Greeter for Misbehaving {
    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {
        // `probe:…` names an attack on the sandbox, in any mode.
        if let Some(outcome) = probe::run(&request.name) {
            return Ok(GreetResponse { message: outcome });
        }
        let message = match self.0.as_str() {
            "env" => {
                let mut vars: Vec<String> =
                    std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
                vars.sort();
                vars.join(" ")
            }
            "fds" => open_descriptors(),
            "limits" => {
                let show = |resource| {
                    let limit = rustix::process::getrlimit(resource);
                    format!("{:?}/{:?}", limit.current, limit.maximum)
                };
                use rustix::process::Resource;
                format!(
                    "as={} cpu={} nofile={}",
                    show(Resource::As),
                    show(Resource::Cpu),
                    show(Resource::Nofile)
                )
            }
            "alloc" => {
                // Touch every page, so the memory is really used.
                let big = vec![1u8; 1 << 30];
                format!(
                    "allocated {} bytes",
                    big.iter().map(|b| *b as usize).sum::<usize>()
                )
            }
            "deaf" => {
                // Asks once, so that SIGTERM only sets a flag, then never
                // looks again: the host must kill it.
                let _ = outlet_guest::context::cancelled();
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            "spin" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "files" => {
                let mut files = Vec::new();
                for _ in 0..256 {
                    match std::fs::File::open("/dev/null") {
                        Ok(file) => files.push(file),
                        Err(error) => {
                            return Err(Status::resource_exhausted(format!(
                                "opened {} files, then: {error}",
                                files.len()
                            )));
                        }
                    }
                }
                format!("opened {} files", files.len())
            }
            "panic" => panic!("the test plugin panics on purpose"),
            "refuse" => return Err(Status::invalid_argument("names are not accepted today")),
            "sleep" => {
                std::thread::sleep(Duration::from_millis(200));
                format!("Hello, {}!", request.name)
            }
            "nap" => {
                std::thread::sleep(Duration::from_millis(50));
                format!("Hello, {}!", request.name)
            }
            "flood-stderr" => {
                let line = vec![b'e'; 1023];
                let mut err = std::io::stderr().lock();
                for _ in 0..(256 << 10) {
                    let _ = err.write_all(&line);
                    let _ = err.write_all(b"\n");
                }
                format!("Hello, {}!", request.name)
            }
            _ => {
                eprintln!("greeting {}", request.name);
                println!("this line goes to stderr, not into the reply");
                format!("Hello, {}!", request.name)
            }
        };
        Ok(GreetResponse { message })
    }
}

/// What this process's open descriptors point at, as `fd=target` pairs.
fn open_descriptors() -> String {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| {
                    let target = std::fs::read_link(entry.path()).unwrap_or_default();
                    format!(
                        "{}={}",
                        entry.file_name().to_string_lossy(),
                        target.display()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    fds.sort();
    fds.join(" ")
}
