//! The trust policy, checked on every manifest at parse time.

use crate::error::mechanism_rule;
use crate::{Manifest, ManifestError, Trust};

/// Refuses a manifest whose trust does not allow its mechanism, or that has no
/// `sha256` while its trust is not `in-process` (unless the host attaches to it).
///
/// # Errors
/// [`ManifestError::Policy`] naming the rule and the fix.
pub fn check(manifest: &Manifest) -> Result<(), ManifestError> {
    let (trust, mechanism) = (manifest.trust, manifest.mechanism);
    if !trust.allows(mechanism) {
        let fix = if mechanism.in_process() {
            "run it out of process (`wasm`, `exec`, or `rpc` for trust = \"out-of-process\"), \
             or raise trust to \"in-process\" if you build and ship this code yourself"
        } else {
            "run it as `wasm` or `exec`, or raise trust to \"out-of-process\" if you know its \
             author"
        };
        return Err(ManifestError::policy(
            manifest,
            mechanism_rule(trust, mechanism),
            fix.into(),
        ));
    }
    // An attached plugin has no artifact here: it is checked by its process.
    if manifest.sha256.is_none() && trust != Trust::InProcess && manifest.reattach.is_none() {
        return Err(ManifestError::policy(
            manifest,
            format!("a plugin with trust = \"{trust}\" must pin its artifact with `sha256`"),
            format!(
                "add `sha256 = \"…\"` with the output of `sha256sum {}`",
                manifest.path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Mechanism;
    use crate::testing::{GOOD, error, parse};

    #[test]
    fn the_trust_policy_is_checked_at_parse() {
        let native = GOOD
            .replace("\"exec\"", "\"native\"")
            .replace("\"in-process\"", "\"sandboxed\"");
        let text = error(&native);
        assert!(
            text.contains("plugin `greeter` is refused by the trust policy"),
            "{text}"
        );
        assert!(
            text.contains("allows only wasm, exec, not `native`"),
            "{text}"
        );

        let rpc = GOOD
            .replace("\"exec\"", "\"rpc\"")
            .replace("\"in-process\"", "\"sandboxed\"");
        assert!(error(&rpc).contains("not `rpc`"));

        let own_process = GOOD
            .replace("\"exec\"", "\"rpc\"")
            .replace("\"in-process\"", "\"out-of-process\"");
        let text = error(&own_process);
        assert!(
            text.contains("must pin its artifact with `sha256`"),
            "{text}"
        );
        assert!(text.contains("sha256sum plugins/bin/greeter"), "{text}");

        let pinned = own_process.replace(
            "[limits]",
            &format!("sha256 = \"{}\"\n[limits]", "ab".repeat(32)),
        );
        assert_eq!(parse(&pinned).unwrap().mechanism, Mechanism::Rpc);
    }
}
