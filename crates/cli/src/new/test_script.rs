//! `test.sh`, for the languages whose project has no test framework of its
//! own: one real call through `outlet call`, and a check of its answer.

use super::plan::{File, Project};

/// The script, run in the project's folder once it is built. `trust`, if
/// given, is the most trust the manifest of this folder may claim (the
/// `outlet` command allows manifests outside its own checkout at most
/// `sandboxed` unless told otherwise).
pub fn file(project: &Project, trust: Option<&str>) -> File {
    let flags = match trust {
        Some(level) => format!(" \\\n    --trust-folder \"$(pwd -P)={level}\""),
        None => String::new(),
    };
    let check = match project.service.methods.first() {
        _ if project.greeter => greeter_check(&flags),
        Some(method) => stub_check(&project.name, &method.name, &flags),
        None => inspect_check(&flags),
    };
    File::script(
        "test.sh",
        format!(
            "#!/bin/sh\n\
             # Calls the built plugin once through Outlet's command line, as a host\n\
             # would: `outlet call` loads plugin.toml, says Hello, makes the call and\n\
             # prints the answer as JSON (or the error, exiting with 1).\n\
             # OUTLET names the `outlet` command to use; the default is the one on PATH.\n\
             set -u\n\
             cd \"$(dirname \"$0\")\"\n\
             outlet=\"${{OUTLET:-outlet}}\"\n\
             \n\
             {check}"
        ),
    )
}

fn greeter_check(flags: &str) -> String {
    format!(
        "if ! out=$(\"$outlet\" call plugin.toml Greet --json '{{\"name\":\"world\"}}'{flags} 2>&1); then\n\
         \x20   printf 'test.sh: FAILED: Greet failed:\\n%s\\n' \"$out\" >&2\n\
         \x20   exit 1\n\
         fi\n\
         case \"$out\" in\n\
         *'Hello, world!'*) printf 'test.sh: ok: Greet answered %s\\n' \"$out\" ;;\n\
         *)\n\
         \x20   printf 'test.sh: FAILED: Greet should answer \"Hello, world!\", and answered:\\n%s\\n' \"$out\" >&2\n\
         \x20   exit 1\n\
         \x20   ;;\n\
         esac\n"
    )
}

/// Until it is written, the first method answers Unimplemented, naming
/// itself, and `outlet call` fails with that status.
fn stub_check(plugin: &str, method: &str, flags: &str) -> String {
    format!(
        "# {method} answers Unimplemented until it is written: then change this\n\
         # test to check what it answers.\n\
         if out=$(\"$outlet\" call plugin.toml {method} --json '{{}}'{flags} 2>&1); then\n\
         \x20   printf 'test.sh: FAILED: {method} should answer Unimplemented, and answered:\\n%s\\n' \"$out\" >&2\n\
         \x20   exit 1\n\
         fi\n\
         if printf '%s\\n' \"$out\" | grep -qi unimplemented &&\n\
         \x20   printf '%s\\n' \"$out\" | grep -q '{plugin}: {method} is not implemented yet'; then\n\
         \x20   printf 'test.sh: ok: %s\\n' \"$out\"\n\
         else\n\
         \x20   printf 'test.sh: FAILED: {method} should answer Unimplemented, and outlet said:\\n%s\\n' \"$out\" >&2\n\
         \x20   exit 1\n\
         fi\n"
    )
}

/// A service without methods: the plugin loads and says Hello.
fn inspect_check(flags: &str) -> String {
    format!(
        "if out=$(\"$outlet\" inspect plugin.toml{flags} 2>&1); then\n\
         \x20   printf 'test.sh: ok: %s\\n' \"$out\"\n\
         else\n\
         \x20   printf 'test.sh: FAILED: the plugin does not load:\\n%s\\n' \"$out\" >&2\n\
         \x20   exit 1\n\
         fi\n"
    )
}
