//! `outlet call`: one call, JSON in and out.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use outlet_host::Host;
use outlet_manifest::Manifest;
use outlet_protocol::Transport;

use crate::dynamic;

pub fn run(host: Host, manifest: &Path, method: &str, json: &str) -> anyhow::Result<ExitCode> {
    // Admitted before anything it names is read.
    let manifest = host.policy().admit(Manifest::load(manifest)?)?;
    let service = dynamic::service(&manifest)?;
    let method = dynamic::method(&service, method)?;
    anyhow::ensure!(
        !method.is_client_streaming() && !method.is_server_streaming(),
        "plugin `{}`: {} streams, and `outlet call` calls unary methods only so far; call it \
         from host code (see docs/streams.md)",
        manifest.name,
        method.name()
    );
    let json = if json == "-" {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .context("reading the request from stdin")?;
        input
    } else {
        json.to_owned()
    };
    let request = dynamic::encode(&method, &json)?;
    let plugin = host.load_manifest(manifest)?;
    let response = plugin.call(&dynamic::path(&method), &request);
    let _ = plugin.shutdown();
    println!("{:#}", dynamic::decode(&method, &response?)?);
    Ok(ExitCode::SUCCESS)
}
