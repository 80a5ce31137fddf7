//! Public key lines: never a panic; an accepted key is one plain ed25519 key whose canonical line
//! parses to the same key.
#![no_main]

use cm_core::KeyParser;
use cm_ssh::Ed25519KeyParser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(key) = Ed25519KeyParser.parse(text) {
        let again = Ed25519KeyParser
            .parse(key.line())
            .expect("the canonical line parses");
        assert_eq!(again, key);
    }
});
