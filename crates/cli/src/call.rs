//! `outlet call`: one call, JSON in and out; for a streaming method, one
//! line of JSON per message.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use outlet_host::Host;
use outlet_manifest::Manifest;
use outlet_protocol::{Messages, Status, Transport};
use prost_reflect::MethodDescriptor;

use crate::dynamic;

pub fn run(host: Host, manifest: &Path, method: &str, json: &str) -> anyhow::Result<ExitCode> {
    // Admitted before anything it names is read.
    let manifest = host.policy().admit(Manifest::load(manifest)?)?;
    let service = dynamic::service(&manifest, host.policy())?;
    let method = dynamic::method(&service, method)?;
    if method.is_client_streaming() || method.is_server_streaming() {
        return stream(&host, manifest, &method, json);
    }
    let request = dynamic::encode(&method, &request_json(json)?)?;
    let plugin = host.load_manifest(manifest)?;
    let response = plugin.call(&dynamic::path(&method), &request);
    let _ = plugin.shutdown();
    println!("{:#}", dynamic::decode(&method, &response?)?);
    Ok(ExitCode::SUCCESS)
}

/// The one request's JSON: `json`, or all of stdin for `-`.
fn request_json(json: &str) -> anyhow::Result<String> {
    if json != "-" {
        return Ok(json.to_owned());
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the request from stdin")?;
    Ok(input)
}

/// A streaming method: its requests from `json` (one), or for a client
/// stream given `-`, from stdin, one JSON object a line, read as the plugin
/// asks for them; each response printed as one line of JSON as it comes.
fn stream(
    host: &Host,
    manifest: Manifest,
    method: &MethodDescriptor,
    json: &str,
) -> anyhow::Result<ExitCode> {
    let requests = if method.is_client_streaming() && json == "-" {
        let (method, plugin) = (method.clone(), manifest.name.clone());
        let lines = std::io::BufReader::new(std::io::stdin()).lines();
        Messages::new(lines.enumerate().filter_map(move |(i, line)| {
            let line = match line {
                Ok(line) if line.trim().is_empty() => return None,
                Ok(line) => line,
                Err(e) => return Some(Err(Status::unavailable(format!("reading stdin: {e}")))),
            };
            Some(dynamic::encode(&method, &line).map_err(|e| {
                Status::invalid_argument(format!(
                    "plugin `{plugin}`: line {} of stdin: {e:#}",
                    i + 1
                ))
            }))
        }))
    } else {
        Messages::ok([dynamic::encode(method, &request_json(json)?)?])
    };
    let plugin = host.load_manifest(manifest)?;
    let printed = plugin
        .open(&dynamic::path(method), requests)
        .map_err(anyhow::Error::from)
        .and_then(|responses| {
            let mut out = std::io::stdout().lock();
            for response in responses {
                let json = dynamic::decode(method, &response?)?;
                writeln!(out, "{json}").and_then(|()| out.flush())?;
            }
            Ok(())
        });
    let _ = plugin.shutdown();
    printed.map(|()| ExitCode::SUCCESS)
}
