//! The TOML configuration: never a panic, whatever the file holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = cm_core::Config::from_toml(text);
});
