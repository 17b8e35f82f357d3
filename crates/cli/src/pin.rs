//! `outlet pin`: writes the artifact's SHA-256 into its manifest, as
//! `sha256 = "…"`, changing nothing else in the file, its comments
//! included.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

pub fn run(manifests: &[impl AsRef<Path>]) -> anyhow::Result<ExitCode> {
    for file in manifests {
        let file = file.as_ref();
        let (hash, changed) = pin(file)?;
        let what = if changed { "pinned" } else { "already pinned" };
        println!("{what} {}: sha256 = \"{hash}\"", file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Pins `file`'s artifact; returns its hash and whether the file changed.
fn pin(given: &Path) -> anyhow::Result<(String, bool)> {
    // A link is followed: the file it leads to is pinned, and stays a file.
    let file = &given.canonicalize().with_context(|| {
        format!(
            "{}: cannot read the manifest; check the path",
            given.display()
        )
    })?;
    let text = outlet_manifest::read_regular(file, outlet_manifest::MAX_MANIFEST_BYTES)
        .with_context(|| {
            format!(
                "{}: cannot read the manifest; check the path",
                file.display()
            )
        })?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("{}: not a manifest (not TOML)", file.display()))?;
    let name = table
        .get("name")
        .and_then(toml::Value::as_str)
        .unwrap_or("?");
    let path = match table.get("path").and_then(toml::Value::as_str) {
        Some(path) if !path.is_empty() => path,
        _ if table.contains_key("reattach") => bail!(
            "{}: plugin `{name}` has no artifact to pin: the host attaches to it where it runs \
             (`[reattach]`); pin its certificate with `reattach.cert_sha256` instead",
            file.display()
        ),
        _ => bail!(
            "{}: plugin `{name}` names no artifact (`path`); add `path = \"…\"`, relative to the \
             manifest, then pin it",
            file.display()
        ),
    };
    let artifact = given.parent().unwrap_or(Path::new("")).join(path);
    // The file checked is the file hashed.
    let hash = outlet_manifest::open_regular(&artifact, outlet_manifest::MAX_ARTIFACT_BYTES)
        .and_then(outlet_manifest::sha256_read)
        .with_context(|| {
            format!(
                "{}: plugin `{name}`: cannot read its artifact {}; build it first, or fix `path`",
                file.display(),
                artifact.display()
            )
        })?;
    let pinned = with_sha256(&text, &hash);
    // The new text must say what the old one did, but for `sha256`.
    let mut expected = table.clone();
    expected.insert("sha256".into(), toml::Value::String(hash.clone()));
    if toml::from_str::<toml::Table>(&pinned).ok() != Some(expected) {
        bail!(
            "{}: plugin `{name}`: cannot place `sha256` in this manifest without changing \
             something else; add `sha256 = \"{hash}\"` before its first [table] by hand",
            file.display()
        );
    }
    if pinned == text {
        return Ok((hash, false));
    }
    replace(file, &pinned)?;
    Ok((hash, true))
}

/// `text` with its top-level `sha256` set to `hash`: the line replaced if
/// there is one (a comment after it kept), else a line added after `path`.
fn with_sha256(text: &str, hash: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let key = |line: &str, name: &str| {
        let line = line.trim_start();
        line.strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    // Keys before the first table header are the top level's.
    let top = lines
        .iter()
        .position(|line| line.trim_start().starts_with('['))
        .unwrap_or(lines.len());
    let indent = |line: &str| line[..line.len() - line.trim_start().len()].to_owned();
    // The line's own ending: a file written on Windows keeps its CRLF.
    let ending = |line: &str| {
        let tail = line.len() - line.trim_end_matches(['\r', '\n']).len();
        line[line.len() - tail..].to_owned()
    };
    let pinned = |line: &str, comment: &str| {
        format!(
            "{}sha256 = \"{hash}\"{comment}{}",
            indent(line),
            ending(line)
        )
    };
    let mut out: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
    if let Some(at) = (0..top).find(|&i| key(lines[i], "sha256")) {
        let line = lines[at];
        out[at] = pinned(line, comment_after_value(line));
    } else if let Some(at) = (0..top).find(|&i| key(lines[i], "path")) {
        let mut line = pinned(lines[at], "");
        if !lines[at].ends_with('\n') {
            out[at].push('\n');
            line.push('\n');
        }
        out.insert(at + 1, line);
    }
    out.concat()
}

/// What follows a `key = "value"` line's value, from its comment on
/// (without the line's ending): the value is a string, quoted `"` or `'`.
fn comment_after_value(line: &str) -> &str {
    let Some((_, value)) = line.split_once('=') else {
        return "";
    };
    let value = value.trim_start();
    let Some(quote) = value.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return "";
    };
    let Some(close) = value[1..].find(quote) else {
        return "";
    };
    let rest = value[1 + close + 1..].trim_end_matches(['\r', '\n']);
    if rest.trim_start().starts_with('#') {
        rest
    } else {
        ""
    }
}

/// Writes `text` over `file`: into a new file beside it, with its mode,
/// then renamed over it, so that a reader sees the old or the new whole.
fn replace(file: &Path, text: &str) -> anyhow::Result<()> {
    let folder = file
        .parent()
        .filter(|f| !f.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let failed = || format!("{}: cannot write the pinned manifest", file.display());
    let mut new = tempfile::NamedTempFile::new_in(folder).with_context(failed)?;
    new.write_all(text.as_bytes()).with_context(failed)?;
    let mode = std::fs::metadata(file).with_context(failed)?.permissions();
    new.as_file().set_permissions(mode).with_context(failed)?;
    new.as_file().sync_all().with_context(failed)?;
    new.persist(file).with_context(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn the_hash_goes_after_path_and_comments_stay() {
        let text = "# my plugin\nname = \"p\"\n  path = \"bin/p\" # built by cargo\n\
                    trust = \"sandboxed\"\n\n[limits]\n# a comment\nsha256 = \"not this one\"\n";
        let pinned = with_sha256(text, HASH);
        assert_eq!(
            pinned,
            format!(
                "# my plugin\nname = \"p\"\n  path = \"bin/p\" # built by cargo\n  sha256 = \
                 \"{HASH}\"\ntrust = \"sandboxed\"\n\n[limits]\n# a comment\nsha256 = \"not this \
                 one\"\n"
            )
        );
    }

    #[test]
    fn an_old_hash_is_replaced_in_place_with_its_comment() {
        let text = "name = \"p\"\npath = \"p\"\nsha256 = \"abc\"   # pinned by hand\n[config]\n";
        let pinned = with_sha256(text, HASH);
        assert_eq!(
            pinned,
            format!(
                "name = \"p\"\npath = \"p\"\nsha256 = \"{HASH}\"   # pinned by hand\n[config]\n"
            )
        );
        // The last line without a newline.
        assert_eq!(
            with_sha256("path = \"p\"", HASH),
            format!("path = \"p\"\nsha256 = \"{HASH}\"\n")
        );
    }

    #[test]
    fn line_endings_and_comments_with_quotes_are_kept() {
        let text = "name = \"p\"\r\npath = \"p\"\r\nsha256 = 'abc' # the \"right\" one\r\n";
        assert_eq!(
            with_sha256(text, HASH),
            format!("name = \"p\"\r\npath = \"p\"\r\nsha256 = \"{HASH}\" # the \"right\" one\r\n")
        );
        let text = "path = \"p\"\r\n";
        assert_eq!(
            with_sha256(text, HASH),
            format!("path = \"p\"\r\nsha256 = \"{HASH}\"\r\n")
        );
    }

    #[test]
    fn a_link_to_a_manifest_pins_the_file_it_leads_to() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let text = "name = \"p\"\nmechanism = \"wasm\"\npath = \"plugin.wasm\"\n\
                    interface = \"a.B\"\ntrust = \"sandboxed\"\n";
        std::fs::write(real.join("plugin.toml"), text).unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(real.join("plugin.toml"), &link).unwrap();
        // The artifact is found beside the link, as the host finds it.
        std::fs::write(dir.path().join("plugin.wasm"), b"bytes").unwrap();
        assert!(pin(&link).unwrap().1);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let pinned = std::fs::read_to_string(real.join("plugin.toml")).unwrap();
        assert!(
            pinned.contains(&outlet_manifest::sha256_hex(b"bytes")),
            "{pinned}"
        );
    }

    #[test]
    fn a_fifo_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("plugin.toml");
        let mode = rustix::fs::Mode::from_bits_truncate(0o600);
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, mode).unwrap();
        let refused = format!("{:#}", pin(&fifo).unwrap_err());
        assert!(refused.contains("not a regular file"), "{refused}");
    }

    #[test]
    fn pinning_a_real_manifest_writes_the_hash_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plugin.wasm"), b"bytes").unwrap();
        let file = dir.path().join("plugin.toml");
        let text = "# keep me\nname = \"p\"\nmechanism = \"wasm\"\npath = \"plugin.wasm\"\n\
                    interface = \"a.B\"\ntrust = \"sandboxed\"\n";
        std::fs::write(&file, text).unwrap();
        let (hash, changed) = pin(&file).unwrap();
        assert!(changed);
        assert_eq!(hash, outlet_manifest::sha256_hex(b"bytes"));
        let manifest = outlet_manifest::Manifest::load(&file).unwrap();
        assert_eq!(manifest.sha256.as_deref(), Some(hash.as_str()));
        manifest.verify_artifact().unwrap();
        assert!(
            std::fs::read_to_string(&file)
                .unwrap()
                .starts_with("# keep me\n")
        );
        assert!(!pin(&file).unwrap().1, "pinned twice");
        // A rebuilt artifact: the hash is replaced.
        std::fs::write(dir.path().join("plugin.wasm"), b"new bytes").unwrap();
        assert_eq!(
            pin(&file).unwrap().0,
            outlet_manifest::sha256_hex(b"new bytes")
        );
        // Nothing half-written is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_manifest_without_an_artifact_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("attached.toml");
        let text = "name = \"attached\"\nmechanism = \"rpc\"\ninterface = \"a.B\"\n\
                    trust = \"in-process\"\n[reattach]\naddress = \"/tmp/x.sock\"\npid = 1\n";
        std::fs::write(&file, text).unwrap();
        let refused = format!("{:#}", pin(&file).unwrap_err());
        assert!(
            refused.contains("plugin `attached` has no artifact to pin"),
            "{refused}"
        );
        let no_path = dir.path().join("nopath.toml");
        std::fs::write(&no_path, "name = \"n\"\n").unwrap();
        let refused = format!("{:#}", pin(&no_path).unwrap_err());
        assert!(refused.contains("names no artifact (`path`)"), "{refused}");
        let missing = dir.path().join("missing.toml");
        std::fs::write(&missing, "name = \"m\"\npath = \"nowhere\"\n").unwrap();
        let refused = format!("{:#}", pin(&missing).unwrap_err());
        assert!(
            refused.contains("cannot read its artifact") && refused.contains("build it first"),
            "{refused}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[test]
    fn a_path_inside_a_multi_line_string_is_not_taken_for_the_key() {
        let text = "name = \"p\"\ndescription = \"\"\"\npath = \"x\"\n\"\"\"\npath = \"p\"\n";
        // The line-wise edit lands inside the string; the check refuses it.
        let pinned = with_sha256(text, HASH);
        let table: toml::Table = toml::from_str(text).unwrap();
        let mut expected = table;
        expected.insert("sha256".into(), toml::Value::String(HASH.into()));
        assert_ne!(toml::from_str::<toml::Table>(&pinned).ok(), Some(expected));
    }
}
