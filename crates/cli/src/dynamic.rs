//! Calls described at run time: the interface's `.proto` is compiled when
//! the command runs, and requests and responses go through protobuf's JSON
//! mapping, as grpcurl does for gRPC.

use anyhow::{Context, bail};
use outlet_manifest::Manifest;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, ServiceDescriptor};

/// The `.proto` files beside the interface's, each read only if it is a
/// regular file of at most 16 MiB, checked on the descriptor opened (a
/// FIFO or a device, by any path, is neither waited on nor read without
/// end).
struct Bounded {
    include: std::path::PathBuf,
    names: protox::file::IncludeFileResolver,
}

impl Bounded {
    fn new(include: &std::path::Path) -> Bounded {
        Bounded {
            include: include.to_owned(),
            names: protox::file::IncludeFileResolver::new(include.to_owned()),
        }
    }
}

impl protox::file::FileResolver for Bounded {
    fn resolve_path(&self, path: &std::path::Path) -> Option<String> {
        self.names.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        const MOST: u64 = 16 << 20;
        let path = self.include.join(name);
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(protox::Error::file_not_found(name));
            }
            Err(error) => return Err(protox::Error::new(format!("{}: {error}", path.display()))),
        };
        let meta = file.metadata().map_err(protox::Error::new)?;
        if !meta.is_file() || meta.len() > MOST {
            return Err(protox::Error::new(format!(
                "{} is not a regular file of at most 16 MiB",
                path.display()
            )));
        }
        let mut text = String::new();
        file.take(MOST)
            .read_to_string(&mut text)
            .map_err(protox::Error::new)?;
        protox::file::File::from_source(name, &text)
    }
}

/// The service a manifest names, from the `.proto` it names.
pub fn service(manifest: &Manifest) -> anyhow::Result<ServiceDescriptor> {
    let Some(proto) = &manifest.proto else {
        bail!(
            "{}: plugin `{}` names no `proto`; add `proto = \"path/to/interface.proto\"` \
             so that requests can be encoded from JSON",
            manifest.file.display(),
            manifest.name
        );
    };
    let include = proto.parent().unwrap_or(std::path::Path::new("."));
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(Bounded::new(include));
    resolver.add(protox::file::GoogleFileResolver::new());
    let files = protox::Compiler::with_file_resolver(resolver)
        .include_imports(true)
        .open_files([proto])
        .map(|compiler| compiler.file_descriptor_set())
        .with_context(|| format!("plugin `{}`: compiling {}", manifest.name, proto.display()))?;
    let pool = DescriptorPool::from_file_descriptor_set(files)
        .with_context(|| format!("plugin `{}`: reading {}", manifest.name, proto.display()))?;
    pool.get_service_by_name(&manifest.interface)
        .with_context(|| {
            let found: Vec<String> = pool.services().map(|s| s.full_name().to_owned()).collect();
            format!(
                "plugin `{}`: {} declares no service `{}` (it declares {found:?}); fix `interface` \
             or `proto` in {}",
                manifest.name,
                proto.display(),
                manifest.interface,
                manifest.file.display()
            )
        })
}

/// The method of that name (`Greet`; case is ignored).
pub fn method(service: &ServiceDescriptor, name: &str) -> anyhow::Result<MethodDescriptor> {
    service
        .methods()
        .find(|m| m.name().eq_ignore_ascii_case(name))
        .with_context(|| {
            let names: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
            format!(
                "`{}` has no method `{name}`; its methods are {}",
                service.full_name(),
                names.join(", ")
            )
        })
}

/// The gRPC path of a method, `/package.Service/Method`.
pub fn path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

/// Encodes a JSON request as the method's input message.
pub fn encode(method: &MethodDescriptor, json: &str) -> anyhow::Result<Vec<u8>> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let message = DynamicMessage::deserialize(method.input(), &mut deserializer)
        .and_then(|m| deserializer.end().map(|()| m))
        .with_context(|| {
            format!(
                "the request is not a {} in JSON: {json}",
                method.input().full_name()
            )
        })?;
    Ok(prost_reflect::prost::Message::encode_to_vec(&message))
}

/// Decodes the method's output message as JSON.
pub fn decode(method: &MethodDescriptor, bytes: &[u8]) -> anyhow::Result<serde_json::Value> {
    let message = DynamicMessage::decode(method.output(), bytes)
        .with_context(|| format!("the response is not a {}", method.output().full_name()))?;
    Ok(serde_json::to_value(&message)?)
}
