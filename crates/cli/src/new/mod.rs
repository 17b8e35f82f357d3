//! `outlet new`: a plugin project that builds and works as written, for a
//! mechanism and a language, serving the greeter or stubs of any service.
//!
//! Everything is checked before anything is written (the folder, the pair
//! of mechanism and language, the `.proto` and its service, the Outlet
//! checkout), and the project is written into a hidden folder, then
//! renamed into place: a failure leaves nothing of the project behind.

mod c;
mod go;
mod plan;
mod rust;
mod test_script;
mod wat;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use outlet_manifest::Mechanism;

pub use plan::{File, Method, Plan, Project, Service};

/// The greeter's interface, which a new plugin serves unless told otherwise.
const GREETER_PROTO: &str = include_str!("../../../../examples/greeter/manifests/greeter.proto");

/// The languages `outlet new` writes, and the mechanisms each serves.
const LANGUAGES: [(&str, &[Mechanism]); 4] = [
    ("rust", &Mechanism::ALL),
    ("c", &[Mechanism::Cabi]),
    ("go", &[Mechanism::Rpc]),
    ("wat", &[Mechanism::Wasm]),
];

/// `.proto` files to write into the project: name, text.
type Protos = Vec<(String, String)>;

/// What the command line asks for.
pub struct Request<'a> {
    pub dir: &'a Path,
    pub mechanism: Mechanism,
    pub lang: &'a str,
    pub name: Option<&'a str>,
    pub proto: Option<&'a Path>,
    pub service: Option<&'a str>,
    pub outlet: Option<&'a Path>,
}

pub fn run(request: &Request<'_>) -> anyhow::Result<ExitCode> {
    let (project, protos, dir) = project(request)?;
    let plan = match request.lang {
        "rust" => rust::plan(&project, request.mechanism),
        "c" => c::plan(&project),
        "go" => go::plan(&project),
        _ => wat::plan(&project),
    };
    let mut files = plan.files.clone();
    for (name, text) in protos {
        files.push(File::new(name, text));
    }
    files.push(File::new(
        "plugin.toml",
        manifest(&project, request.mechanism, request.lang, &plan),
    ));
    files.push(File::new(
        "README.md",
        readme(&project, request.mechanism, request.lang, &plan),
    ));
    write(&dir, &files)?;
    println!(
        "wrote {}: plugin `{}` ({}, in {}), serving {}",
        request.dir.display(),
        project.name,
        request.mechanism,
        request.lang,
        project.service.full_name
    );
    println!("next: cd {} && {}", request.dir.display(), plan.build);
    Ok(ExitCode::SUCCESS)
}

/// Checks the request, and reads the interface: the project, the
/// `.proto` files to copy into it, and the project's folder, absolute.
fn project(request: &Request<'_>) -> anyhow::Result<(Project, Protos, PathBuf)> {
    let dir = target(request.dir)?;
    let Some((_, mechanisms)) = LANGUAGES.iter().find(|(lang, _)| *lang == request.lang) else {
        bail!(
            "--lang {}: not a language `outlet new` writes; choose rust (any mechanism), c \
             (cabi), go (rpc) or wat (wasm)",
            request.lang
        );
    };
    if !mechanisms.contains(&request.mechanism) {
        let fitting: Vec<&str> = (LANGUAGES.iter())
            .filter(|(_, ms)| ms.contains(&request.mechanism))
            .map(|(lang, _)| *lang)
            .collect();
        bail!(
            "--lang {} with --mechanism {}: `outlet new` writes {} plugins only for {}; for {} \
             choose --lang {}",
            request.lang,
            request.mechanism,
            request.lang,
            mechanisms
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", "),
            request.mechanism,
            fitting.join(" or ")
        );
    }
    let name = match request.name {
        Some(name) => name.to_owned(),
        None => dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned(),
    };
    let good = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && (name.chars()).all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !good {
        bail!(
            "{name:?} cannot name a plugin: use lowercase letters, digits and `-`, starting with \
             a letter, at most 64 characters (the folder's name is used unless --name gives one)"
        );
    }
    // Names cargo keeps for itself, or that would hide a crate of Rust's own.
    let reserved = [
        "build",
        "deps",
        "examples",
        "incremental",
        "test",
        "core",
        "std",
        "alloc",
    ];
    if request.lang == "rust" && reserved.contains(&name.as_str()) {
        bail!(
            "{name:?} cannot name a Rust plugin: cargo or Rust uses it; choose another name \
             (--name)"
        );
    }
    let outlet = checkout(request.outlet)?;
    let (service, protos, greeter) = match (request.proto, request.service) {
        (None, None) => {
            let protos = vec![("greeter.proto".to_owned(), GREETER_PROTO.to_owned())];
            (greeter(), protos, true)
        }
        (Some(proto), Some(service)) => {
            let (service, protos) = read_interface(proto, service, request.lang == "rust")?;
            (service, protos, false)
        }
        (Some(_), None) => bail!("--proto needs --service NAME: the service the plugin serves"),
        (None, Some(_)) => bail!("--service needs --proto FILE: the `.proto` that declares it"),
    };
    let proto = protos[0].0.clone();
    let project = Project {
        name,
        outlet,
        proto,
        service,
        greeter,
    };
    Ok((project, protos, dir))
}

/// Where the project goes: `dir`, absolute. An existing folder must be
/// empty, and is filled in place; a link is refused (whose folder would be
/// filled is not clear).
fn target(dir: &Path) -> anyhow::Result<PathBuf> {
    let named = || {
        format!(
            "{}: give `outlet new` a new folder, or an empty one",
            dir.display()
        )
    };
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{}: is a link; give `outlet new` the folder itself, or a new one",
            dir.display()
        ),
        Ok(meta) if !meta.is_dir() => bail!("{}: exists and is not a folder", named()),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).with_context(named)?;
            if entries.next().is_some() {
                bail!(
                    "{}: the folder exists and is not empty; give `outlet new` a new folder (or \
                     an empty one), so that nothing of yours is overwritten",
                    dir.display()
                );
            }
            dir.canonicalize().with_context(named)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let absolute = std::path::absolute(dir).with_context(named)?;
            if absolute.file_name().is_none() {
                bail!("{}", named());
            }
            Ok(absolute)
        }
        Err(error) => Err(error).with_context(named),
    }
}

/// The Outlet checkout a project builds against: `--outlet`, or the one
/// this `outlet` was built from.
fn checkout(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = given.unwrap_or(&built_from);
    let found = path
        .canonicalize()
        .ok()
        .filter(|root| root.join("crates/guest/Cargo.toml").is_file());
    let Some(root) = found else {
        bail!(
            "{}: not an Outlet checkout (no crates/guest/Cargo.toml); Outlet's crates are not \
             published, so a plugin builds against a checkout: pass --outlet PATH",
            path.display()
        );
    };
    Ok(root)
}

/// Reads `file` and what it imports from its folder, and finds `service`:
/// the service, and the files (relative to the folder, the main one
/// first) with their text.
fn read_interface(file: &Path, service: &str, rust: bool) -> anyhow::Result<(Service, Protos)> {
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => bail!(
            "--proto {}: not a regular file; give the path of the `.proto` that declares the \
             service (it is copied into the project)",
            file.display()
        ),
        Err(error) => bail!(
            "--proto {}: cannot read it: {error}; give the path of the `.proto` that declares \
             the service",
            file.display()
        ),
    }
    let folder = file
        .parent()
        .filter(|f| !f.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| (n.chars()).all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
        .with_context(|| {
            format!(
                "--proto {}: name it with letters, digits, `.`, `_` and `-` only (the name is \
                 written into the manifest and build.rs)",
                file.display()
            )
        })?;
    let set = protox::compile([name], [folder]).map_err(|error| {
        anyhow::anyhow!(
            "--proto {}: the file does not compile: {error}; fix it (protoc would say the same)",
            file.display()
        )
    })?;
    let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(set.clone())
        .with_context(|| format!("--proto {}", file.display()))?;
    let mut protos = Vec::new();
    for described in pool.files() {
        let path = folder.join(described.name());
        // Well-known types come with protox, not from the folder.
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("--proto {}: cannot read {}", file.display(), path.display())
        })?;
        let entry = (described.name().to_owned(), text);
        if described.name() == name {
            protos.insert(0, entry);
        } else {
            protos.push(entry);
        }
    }
    let Some(found) = (pool.services()).find(|s| {
        s.parent_file().name() == name && (s.name() == service || s.full_name() == service)
    }) else {
        let names: Vec<String> = (pool.services())
            .filter(|s| s.parent_file().name() == name)
            .map(|s| s.full_name().to_owned())
            .collect();
        bail!(
            "--service {service}: {} declares no such service; it declares {}",
            file.display(),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )
    };
    let package = found.package_name();
    if package.is_empty() {
        bail!(
            "--proto {}: declares no `package`, and a host names a service `package.Service`; \
             add a line such as `package {}.v1;`",
            file.display(),
            found.name().to_lowercase()
        );
    }
    // A Rust plugin includes one package's module: another package's
    // messages (but the well-known ones, from prost-types) are not in it.
    let mut seen = std::collections::HashSet::new();
    let foreign = (found.methods())
        .flat_map(|m| [m.input(), m.output()])
        .find_map(|m| foreign(&m, package, &mut seen));
    if let Some(name) = foreign.filter(|_| rust) {
        bail!(
            "--proto {}: {} uses {name}, of another package, which `outlet new` does not wire \
             up in Rust; declare it in package {package}",
            file.display(),
            found.full_name(),
        );
    }
    let service = rust::service(set, found.full_name())
        .with_context(|| format!("--proto {}", file.display()))?;
    Ok((service, protos))
}

/// The first type `message` reaches (itself, its fields' messages and
/// enums, through and through) that is of a package other than `package`
/// and protobuf's well-known types.
fn foreign(
    message: &prost_reflect::MessageDescriptor,
    package: &str,
    seen: &mut std::collections::HashSet<String>,
) -> Option<String> {
    let elsewhere = |theirs: &str| theirs != package && theirs != "google.protobuf";
    if !seen.insert(message.full_name().to_owned()) {
        return None;
    }
    if elsewhere(message.package_name()) {
        return Some(message.full_name().to_owned());
    }
    message.fields().find_map(|field| match field.kind() {
        prost_reflect::Kind::Message(inner) => foreign(&inner, package, seen),
        prost_reflect::Kind::Enum(e) if elsewhere(e.package_name()) => {
            Some(e.full_name().to_owned())
        }
        _ => None,
    })
}

/// The greeter's service, as `greeter.proto` declares it.
fn greeter() -> Service {
    Service {
        full_name: "outlet.examples.greeter.v1.Greeter".into(),
        name: "Greeter".into(),
        methods: vec![Method {
            name: "Greet".into(),
            rust: "greet".into(),
            input_rust: "GreetRequest".into(),
            output_rust: "GreetResponse".into(),
            client_streaming: false,
            server_streaming: false,
        }],
    }
}

/// The manifest: the artifact the build makes, the interface, and the
/// trust the mechanism needs.
fn manifest(project: &Project, mechanism: Mechanism, lang: &str, plan: &Plan) -> String {
    let in_process = mechanism.in_process();
    let trust = if in_process {
        "in-process"
    } else {
        "sandboxed"
    };
    let mut text = format!(
        "# The plugin's manifest: what the host loads, how, and how far it trusts it.\n\
         # `path` is what the build makes ({build}).\n\
         name = \"{name}\"\n\
         mechanism = \"{mechanism}\"\n\
         path = \"{artifact}\"\n\
         interface = \"{interface}\"\n\
         proto = \"{proto}\"\n\
         versions = [1]\n",
        build = plan.build,
        name = project.name,
        artifact = plan.artifact,
        interface = project.service.full_name,
        proto = project.proto,
    );
    if in_process {
        text += "# It runs in the host's process, so it needs the host's full trust: the\n\
                 # host must trust this folder that far (`--trust-folder DIR=in-process`).\n";
    } else {
        text += "# Anybody's code may run sandboxed: the host pins the artifact by its hash\n\
                 # (`outlet pin plugin.toml` writes `sha256` after each build) or checks a\n\
                 # signature of it (docs/signing.md in the Outlet checkout).\n";
    }
    text += &format!("trust = \"{trust}\"\n");
    if lang == "go" {
        text += &go::handshake();
    }
    if !in_process {
        text += "\n[limits]\ntimeout_ms = 2000\n";
    }
    text
}

/// The project's README: what it is, how to build, test and call it.
fn readme(project: &Project, mechanism: Mechanism, lang: &str, plan: &Plan) -> String {
    let pin = if mechanism.in_process() {
        String::new()
    } else {
        "outlet pin plugin.toml     # the new artifact's sha256 into the manifest\n".to_owned()
    };
    let trust = if mechanism.in_process() {
        " --trust-folder \"$PWD=in-process\""
    } else {
        ""
    };
    let call = match project.service.methods.first() {
        _ if project.greeter => {
            format!("outlet call plugin.toml Greet --json '{{\"name\": \"world\"}}'{trust}")
        }
        Some(method) => format!(
            "outlet call plugin.toml {} --json '{{}}'{trust}",
            method.name
        ),
        None => format!("outlet inspect plugin.toml{trust}"),
    };
    let what = if project.greeter {
        "the greeter interface (`greeter.proto`): `Greet` answers \"Hello, <name>!\"".to_owned()
    } else {
        format!(
            "`{}` (`{}`). Every method answers `Unimplemented` until you write it: look for \
             TODO",
            project.service.full_name, project.proto
        )
    };
    let outlet = project.outlet.display();
    let depends = if lang == "rust" {
        format!(
            "\nOutlet's crates are not published: `Cargo.toml` depends on them by path, in the \
             Outlet checkout at `{outlet}`, and `Cargo.lock` holds the versions that checkout \
             builds with. If you move either, change the paths.\n"
        )
    } else {
        String::new()
    };
    let mut notes = String::new();
    if lang == "rust" {
        notes += "- The manifest's `path` is where `cargo build --release` puts the plugin: \
                  under `target/` here, unless `CARGO_TARGET_DIR` or a cargo config moves \
                  it elsewhere.\n";
    }
    if lang == "rust" && mechanism == Mechanism::Wasm {
        notes += "- It is built for WebAssembly (`.cargo/config.toml`): `rustup target add \
                  wasm32-unknown-unknown` once.\n";
    }
    if mechanism == Mechanism::Native {
        notes += &format!(
            "- A native plugin loads only into a host of the very same build: the same \
             compiler, Outlet version and debug assertions. `cargo build --release` here \
             matches a release `outlet` ({outlet}/target/release/outlet) built by the same \
             `rustc`.\n"
        );
    }
    format!(
        "# {name}\n\n\
         An Outlet plugin: {mechanism}, written in {lang}, serving {what}.\n\
         {depends}\n\
         ## Build, test, call\n\n\
         With the Outlet checkout's `outlet` on your PATH (`{outlet}/target/release`, once \
         built there: `cargo build --release -p outlet-cli`):\n\n\
         ```sh\n\
         {build}\n\
         {pin}\
         {test}\n\
         {call}\n\
         ```\n\n\
         `plugin.toml` is the manifest a host loads (`Host::load`, or `Host::load_dir` on a \
         folder of them).\n\
         {notes}",
        name = project.name,
        build = plan.build,
        test = plan.test,
        notes = if notes.is_empty() {
            String::new()
        } else {
            format!("\n{notes}")
        },
    )
}

/// Writes `files` into a hidden folder, then moves them into place: a new
/// `dir` is staged beside it and renamed into place whole; an existing,
/// empty `dir` (perhaps the shell's own) is staged inside itself and each
/// entry renamed up into it, replacing nothing. All of it, or nothing of
/// it but parent folders made for it.
fn write(dir: &Path, files: &[File]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let fill = dir.is_dir();
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let failed = || format!("{}: cannot write the project", dir.display());
    let staging_in = if fill { dir } else { parent };
    std::fs::create_dir_all(staging_in).with_context(failed)?;
    let staging = tempfile::Builder::new()
        .prefix(".outlet-new-")
        .tempdir_in(staging_in)
        .with_context(failed)?;
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
        .with_context(failed)?;
    for file in files {
        let path = staging.path().join(&file.path);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).with_context(failed)?;
        }
        std::fs::write(&path, &file.text).with_context(failed)?;
        let mode = if file.executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .with_context(failed)?;
    }
    if !fill {
        let staged = staging.keep();
        if let Err(error) = std::fs::rename(&staged, dir) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(error).with_context(failed);
        }
        return Ok(());
    }
    // Each entry up into `dir`, never over one that came there meanwhile;
    // if one cannot move, those moved go back (and the staging folder is
    // removed with them).
    let mut moved = Vec::new();
    for entry in std::fs::read_dir(staging.path()).with_context(failed)? {
        let entry = entry.with_context(failed)?;
        let to = dir.join(entry.file_name());
        let flags = rustix::fs::RenameFlags::NOREPLACE;
        let cwd = rustix::fs::CWD;
        if let Err(error) = rustix::fs::renameat_with(cwd, entry.path(), cwd, &to, flags) {
            for (from, to) in moved {
                let _ = std::fs::rename(to, from);
            }
            return Err(std::io::Error::from(error))
                .with_context(|| format!("{}: cannot move it into place", to.display()))
                .with_context(failed);
        }
        moved.push((entry.path(), to));
    }
    Ok(())
}
