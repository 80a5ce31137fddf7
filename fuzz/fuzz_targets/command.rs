//! Command lines: never a panic, and an accepted command printed for a shell reads back to the
//! same words (what `cm` shows can be pasted back).
#![no_main]

use cm_core::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(command) = Command::parse(text) {
        let printed = command.to_string();
        let again = Command::parse(&printed).expect("a printed command parses");
        assert_eq!(again.args(), command.args(), "{printed}");
    }
});
