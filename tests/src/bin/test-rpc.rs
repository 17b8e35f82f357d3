//! An rpc greeter that misbehaves on request, for the integration tests.
//!
//! `OUTLET_TEST_MODE` picks what it does before serving (or instead: a
//! handshake line that names someone else's address); the name in a
//! Greet picks what that call does (`die`, `hang`, `big`, `fork`, `pid`,
//! `host:<name>`, which asks the host's own Greeter, `intrude:<socket>`,
//! which has a child of its own connect to a socket, `swap:<socket>`, which
//! renames a link to that socket over its own, and `relay`, which starts a
//! child of its own serving as it does and links its own socket to the
//! child's). Without either, it
//! greets, logs to stderr and prints to stdout; in mode `intrude:<socket>`,
//! it connects to the socket, prints whether anything answered, and exits.
//! A Greet named `probe:…` makes an attack on the OS sandbox instead, and
//! answers how it went (`tests/src/probe.rs`).
//!
//! In mode `numbers` it serves the numbers as well, whose `Count` of one
//! of the `HOSTILE_*` counts misbehaves (`tests/src/hostile.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use greeter::{GreetRequest, GreetResponse, Greeter, GreeterServer};
use outlet_guest::{Plugin, Status};
use outlet_protocol::Code;

#[path = "../hostile.rs"]
mod hostile;
#[path = "../probe.rs"]
mod probe;

fn main() -> ExitCode {
    let mode = std::env::var("OUTLET_TEST_MODE").unwrap_or_default();
    // `fail-if:PATH`: while the file exists, every start fails.
    if let Some(flag) = mode.strip_prefix("fail-if:")
        && std::path::Path::new(flag).exists()
    {
        eprintln!("refusing to start: {flag} exists");
        return ExitCode::from(4);
    }
    // `intrude:PATH`: connect to the Unix socket PATH as an HTTP/2 client
    // would, and say whether anything answered.
    if let Some(socket) = mode.strip_prefix("intrude:") {
        println!("{}", intrude(socket));
        return ExitCode::SUCCESS;
    }
    match mode.as_str() {
        "silent" => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        "garbage" | "netrpc" => {
            let socket = std::env::var("PLUGIN_UNIX_SOCKET_DIR").unwrap_or_default();
            match mode.as_str() {
                "garbage" => println!("Hello, world! This is not a handshake."),
                _ => println!("1|1|unix|{socket}/none|netrpc|"),
            }
            std::io::stdout().flush().unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        // `line:TEXT`: TEXT as the handshake line, `{dir}` standing for
        // PLUGIN_UNIX_SOCKET_DIR; `symlink:TARGET`: a link in that folder to
        // TARGET, named as the socket. Then nothing else.
        _ if mode.starts_with("line:") || mode.starts_with("symlink:") => {
            let dir = std::env::var("PLUGIN_UNIX_SOCKET_DIR").unwrap_or_default();
            match mode.split_once(':') {
                Some(("line", line)) => println!("{}", line.replace("{dir}", &dir)),
                Some((_, target)) => {
                    let link = format!("{dir}/plugin.sock");
                    std::os::unix::fs::symlink(target, &link).unwrap();
                    println!("1|1|unix|{link}|grpc|");
                }
                None => {}
            }
            std::io::stdout().flush().unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        "flood-stderr" => {
            std::thread::spawn(|| {
                let mut line = vec![b'e'; 200];
                line.push(b'\n');
                loop {
                    let _ = std::io::stderr().write_all(&line);
                }
            });
        }
        _ => {}
    }
    let versions: &[u32] = if mode == "version7" { &[7] } else { &[1] };
    let plugin = Plugin::new("test-rpc", "0.0.1").versions(versions);
    // `numbers`: the numbers too, with streams that misbehave on request.
    let plugin = match mode.as_str() {
        "numbers" => plugin.service(numbers::NumbersServer::new(hostile::Hostile)),
        _ => plugin,
    };
    let plugin = plugin
        .service(GreeterServer::new(Misbehaving))
        .on_health(|| match SICK.load(std::sync::atomic::Ordering::Relaxed) {
            true => Err("asked to be sick".into()),
            false => Ok(()),
        });
    if mode == "other-cookie" {
        return outlet_guest::rpc::serve_with_cookie(plugin, "SOME_OTHER_PLUGIN", "yes");
    }
    outlet_guest::rpc::serve(plugin)
}

/// Connects to `socket`, sends HTTP/2's preface, and says what came back:
/// `answered N` (bytes), or `closed`.
fn intrude(socket: &str) -> String {
    use std::io::Read;
    let mut stream = match std::os::unix::net::UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(e) => return format!("cannot connect: {e}"),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let mut answer = [0; 64];
    match stream.read(&mut answer) {
        Ok(0) => "closed".into(),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "closed".into(),
        Ok(n) => format!("answered {n}"),
        Err(e) => format!("neither answered nor closed: {e}"),
    }
}

/// Renames a link to `target` over this process's own socket, in
/// `PLUGIN_UNIX_SOCKET_DIR`: the host's next connection goes to `target`.
fn swap(target: &Path) -> std::io::Result<()> {
    let dir = PathBuf::from(std::env::var_os("PLUGIN_UNIX_SOCKET_DIR").unwrap_or_default());
    let own = format!("-{}-", std::process::id());
    let socket = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with("plugin-") && name.contains(&own))
        .ok_or_else(|| std::io::Error::other(format!("no socket of mine in {}", dir.display())))?;
    let link = dir.join("swap.tmp");
    std::os::unix::fs::symlink(target, &link)?;
    std::fs::rename(&link, dir.join(socket))
}

/// Starts a child of this process's, serving as it does on a socket of its
/// own in the same folder, and links this process's socket to the child's;
/// the child's process id. The child is in this process's group, so it goes
/// when the plugin is stopped.
#[allow(clippy::zombie_processes)]
fn relay() -> std::io::Result<String> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env("OUTLET_TEST_MODE", "")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let address = line
        .split('|')
        .nth(3)
        .ok_or_else(|| std::io::Error::other(format!("not a handshake line: {line:?}")))?;
    swap(Path::new(address))?;
    // Whatever else it prints is drained, so that it never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Ok(child.id().to_string())
}

struct Misbehaving;

/// Whether its Health answers NOT_SERVING: from a Greet of "sick" on.
static SICK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Greeter for Misbehaving {
    fn greet(&self, request: GreetRequest) -> Result<GreetResponse, Status> {
        // `probe:…` names an attack on the sandbox, in any mode.
        if let Some(outcome) = probe::run(&request.name) {
            return Ok(GreetResponse { message: outcome });
        }
        let message = match request.name.as_str() {
            "die" => {
                eprintln!("dying on purpose");
                std::process::abort();
            }
            "hang" => {
                std::thread::sleep(Duration::from_secs(3600));
                String::new()
            }
            "big" => "x".repeat(2 << 20),
            "fork" => {
                // A child of our own, in our process group, that outlives
                // this call; not waiting for it is the point.
                #[allow(clippy::zombie_processes)]
                let child = std::process::Command::new("sleep")
                    .arg("3600")
                    .spawn()
                    .map_err(|e| Status::internal(e.to_string()))?;
                format!("forked {}", child.id())
            }
            "pid" => std::process::id().to_string(),
            "sick" => {
                SICK.store(true, std::sync::atomic::Ordering::Relaxed);
                "sick".into()
            }
            // Its process id, after a while.
            name if name.starts_with("sleep:") => {
                let ms = name["sleep:".len()..].parse().unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                std::process::id().to_string()
            }
            // What a plugin can do after its address was checked: its folder
            // is its own.
            name if name.starts_with("swap:") => {
                swap(Path::new(&name["swap:".len()..]))
                    .map_err(|e| Status::internal(e.to_string()))?;
                "swapped".into()
            }
            "relay" => relay().map_err(|e| Status::internal(e.to_string()))?,
            // A child of ours connects to the socket, and says what came back.
            name if name.starts_with("intrude:") => {
                let out = std::process::Command::new(
                    std::env::current_exe().map_err(|e| Status::internal(e.to_string()))?,
                )
                .env("OUTLET_TEST_MODE", name)
                .output()
                .map_err(|e| Status::internal(e.to_string()))?;
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
            "fds" => {
                let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
                    .map(|dir| {
                        dir.filter_map(Result::ok)
                            .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                            .map(|target| target.display().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                fds.sort();
                fds.join(" ")
            }
            // Many calls to the host at once, from threads of its own:
            // how many were answered, and how many refused as too many.
            name if name.starts_with("flood:") => {
                let threads: Vec<_> = (0..name["flood:".len()..].parse().unwrap_or(0))
                    .map(|_| {
                        std::thread::spawn(|| {
                            let host = greeter::GreeterClient::new(outlet_guest::rpc::Host);
                            host.greet(GreetRequest { name: "x".into() })
                        })
                    })
                    .collect();
                let (mut ok, mut refused, mut other) = (0, 0, 0);
                for thread in threads {
                    match thread.join() {
                        Ok(Ok(_)) => ok += 1,
                        Ok(Err(status)) if status.code() == Code::ResourceExhausted => refused += 1,
                        _ => other += 1,
                    }
                }
                format!("ok={ok} refused={refused} other={other}")
            }
            name if name.starts_with("host:") => {
                let host = greeter::GreeterClient::new(outlet_guest::rpc::Host);
                let reply = host.greet(GreetRequest {
                    name: name["host:".len()..].into(),
                })?;
                format!("the host says: {}", reply.message)
            }
            name => {
                eprintln!("greeting {name}");
                println!("this line goes to the log, not into the reply");
                format!("Hello, {name}!")
            }
        };
        Ok(GreetResponse { message })
    }
}
