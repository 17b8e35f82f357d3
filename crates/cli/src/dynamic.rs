//! Calls described at run time: the interface's `.proto` is compiled when
//! the command runs, and requests and responses go through protobuf's JSON
//! mapping, as grpcurl does for gRPC.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use outlet_manifest::Manifest;
use outlet_manifest::policy::Policy;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, ServiceDescriptor};

/// The most a `.proto` file may hold.
const MOST: u64 = 16 << 20;

/// The `.proto` files beside the interface's, each read only if it lies,
/// links resolved, inside the manifest's folder or a root the policy
/// approves, and is a regular file of at most 16 MiB. The file is first
/// opened as a path only (`O_PATH`: nothing is read, no FIFO or device is
/// woken), where it leads is checked on that descriptor, and only then is
/// the same file opened for reading, through the descriptor: no link
/// swapped in between is followed.
struct Bounded {
    include: PathBuf,
    names: protox::file::IncludeFileResolver,
    /// The manifest, and the policy whose roots it may reach.
    manifest: PathBuf,
    policy: Policy,
}

impl Bounded {
    fn new(include: &Path, manifest: &Path, policy: &Policy) -> Bounded {
        Bounded {
            include: include.to_owned(),
            names: protox::file::IncludeFileResolver::new(include.to_owned()),
            manifest: manifest.to_owned(),
            policy: policy.clone(),
        }
    }
}

impl protox::file::FileResolver for Bounded {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.names.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.include.join(name);
        let handle = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(&path)
        {
            Ok(handle) => handle,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(protox::Error::file_not_found(name));
            }
            Err(error) => return Err(protox::Error::new(format!("{}: {error}", path.display()))),
        };
        // Where the descriptor leads, links resolved.
        let at = format!("/proc/self/fd/{}", handle.as_raw_fd());
        let opened = std::fs::read_link(&at).map_err(|error| {
            protox::Error::new(format!(
                "cannot tell where {} leads ({at}: {error}); the command needs /proc to keep \
                 the .proto files it reads inside the manifest's folder",
                path.display()
            ))
        })?;
        if !self.policy.within_reach(&self.manifest, &opened) {
            return Err(protox::Error::new(format!(
                "{} is {}, outside the folder of the manifest {}; move it into that folder, \
                 or approve a root that holds it (`--approve-root FOLDER`)",
                path.display(),
                opened.display(),
                self.manifest.display()
            )));
        }
        let meta = handle.metadata().map_err(protox::Error::new)?;
        if !meta.is_file() || meta.len() > MOST {
            return Err(protox::Error::new(format!(
                "{} is not a regular file of at most 16 MiB",
                path.display()
            )));
        }
        // The file checked, opened again for reading: the descriptor's
        // link in /proc leads to it, whatever its path now names.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&at)
            .map_err(|error| protox::Error::new(format!("{}: {error}", path.display())))?;
        let mut text = String::new();
        file.take(MOST)
            .read_to_string(&mut text)
            .map_err(protox::Error::new)?;
        protox::file::File::from_source(name, &text)
    }
}

/// The service a manifest names, from the `.proto` it names, which with
/// its imports must lie inside the manifest's folder or a root `policy`
/// approves (the well-known `google/protobuf` files are built in).
pub fn service(manifest: &Manifest, policy: &Policy) -> anyhow::Result<ServiceDescriptor> {
    let Some(proto) = &manifest.proto else {
        bail!(
            "{}: plugin `{}` names no `proto`; add `proto = \"path/to/interface.proto\"` \
             so that requests can be encoded from JSON",
            manifest.file.display(),
            manifest.name
        );
    };
    let include = proto.parent().unwrap_or(Path::new("."));
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(Bounded::new(include, &manifest.file, policy));
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
            // The first few it declares, not thousands.
            let mut found: Vec<String> = pool
                .services()
                .take(8)
                .map(|s| format!("`{}`", s.full_name()))
                .collect();
            if pool.services().len() > found.len() {
                found.push(format!("{} more", pool.services().len() - found.len()));
            }
            let found = if found.is_empty() {
                "none".to_owned()
            } else {
                found.join(", ")
            };
            format!(
                "plugin `{}`: {} declares no service `{}` (it declares {found}); fix `interface` \
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// The service `Deep` of `proto`, written beside its manifest in `dir`.
    fn compiled(dir: &Path, proto: &str, interface: &str) -> anyhow::Result<ServiceDescriptor> {
        std::fs::write(dir.join("deep.proto"), proto)?;
        let text = format!(
            "name = \"deep\"\nmechanism = \"exec\"\npath = \"deep\"\ninterface = \"{interface}\"\n\
             proto = \"deep.proto\"\ntrust = \"in-process\"\n"
        );
        let manifest = Manifest::parse(&text, &dir.join("deep.toml"))?;
        service(&manifest, &Policy::default())
    }

    const DEEP: &str = "syntax = \"proto3\";\npackage d;\nmessage Deep { Deep next = 1; }\n\
                        service S { rpc M(Deep) returns (Deep); }\n";

    #[test]
    fn messages_nested_without_end_are_refused_not_recursed_into() {
        let dir = tempfile::tempdir().unwrap();
        let method = method(&compiled(dir.path(), DEEP, "d.S").unwrap(), "m").unwrap();
        // An answer nested 100 000 deep, each level a `next` holding the last.
        let mut answer = Vec::new();
        for _ in 0..100_000 {
            let mut outer = vec![0x0a];
            let mut len = answer.len();
            while len >= 0x80 {
                outer.push((len as u8) | 0x80);
                len >>= 7;
            }
            outer.push(len as u8);
            outer.extend_from_slice(&answer);
            answer = outer;
        }
        let error = decode(&method, &answer).unwrap_err();
        assert!(
            format!("{error:#}").contains("is not a d.Deep"),
            "{error:#}"
        );
        // And a request so nested in JSON.
        let json = format!("{}{}", "{\"next\":".repeat(100_000), "}".repeat(100_000));
        let error = encode(&method, &json).unwrap_err();
        assert!(
            format!("{error:#}").contains("not a d.Deep in JSON"),
            "{error:#}"
        );
    }

    #[test]
    fn a_proto_of_thousands_of_services_compiles_in_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut proto = String::from("syntax = \"proto3\";\npackage d;\nmessage E {}\n");
        for i in 0..5000 {
            proto.push_str(&format!("service S{i} {{ rpc M(E) returns (E); }}\n"));
        }
        let started = Instant::now();
        let found = compiled(dir.path(), &proto, "d.S4999").unwrap();
        assert_eq!(found.full_name(), "d.S4999");
        assert!(started.elapsed() < Duration::from_secs(20));
        // A service it lacks is named, with a list of those it has, cut.
        let error = compiled(dir.path(), &proto, "d.Missing").unwrap_err();
        let error = format!("{error:#}");
        assert!(
            error.contains("declares no service `d.Missing`"),
            "{error:.300}"
        );
        assert!(error.len() < 4096, "{} bytes: {error:.300}", error.len());
    }

    #[test]
    fn a_proto_or_an_import_outside_the_manifest_folder_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (plugin, shared) = (root.path().join("plugin"), root.path().join("shared"));
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::write(shared.join("deep.proto"), DEEP).unwrap();
        let manifest = |proto: &str| {
            let interface = match proto {
                "importer.proto" => "d.Imports",
                _ => "d.S",
            };
            let text = format!(
                "name = \"far\"\nmechanism = \"exec\"\npath = \"far\"\n\
                 interface = \"{interface}\"\nproto = \"{proto}\"\ntrust = \"in-process\"\n"
            );
            Manifest::parse(&text, &plugin.join("far.toml")).unwrap()
        };
        let refused = |manifest: &Manifest, policy: &Policy| {
            format!("{:#}", service(manifest, policy).unwrap_err())
        };

        // By a path that climbs out, and by a link that leads out.
        let climbs = manifest("../shared/deep.proto");
        let error = refused(&climbs, &Policy::default());
        assert!(
            error.contains("plugin `far`") && error.contains("outside the folder of the manifest"),
            "{error}"
        );
        assert!(error.contains("--approve-root"), "{error}");
        std::os::unix::fs::symlink(shared.join("deep.proto"), plugin.join("link.proto")).unwrap();
        let error = refused(&manifest("link.proto"), &Policy::default());
        assert!(
            error.contains("outside the folder of the manifest"),
            "{error}"
        );

        // An import through a folder linked from outside, by a .proto inside.
        std::os::unix::fs::symlink(&shared, plugin.join("linked")).unwrap();
        std::fs::write(
            plugin.join("importer.proto"),
            "syntax = \"proto3\";\npackage d;\nimport \"linked/deep.proto\";\n\
             service Imports { rpc M(d.Deep) returns (d.Deep); }\n",
        )
        .unwrap();
        let error = refused(&manifest("importer.proto"), &Policy::default());
        assert!(
            error.contains("linked/deep.proto") && error.contains("outside the folder"),
            "{error}"
        );

        // The host approves the shared folder: all three compile.
        let approved = Policy::default().approve_root(&shared);
        assert!(service(&climbs, &approved).is_ok());
        assert!(service(&manifest("link.proto"), &approved).is_ok());
        let imports = service(&manifest("importer.proto"), &approved).unwrap();
        assert_eq!(imports.full_name(), "d.Imports");
    }
}
