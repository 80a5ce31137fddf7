//! User ids, type names, container names, images and sizes: never a panic, and what is accepted
//! prints back to the same value (it reaches nginx, Docker and file paths as printed).
#![no_main]

use cm_core::{ContainerName, CpuLimit, DiskSize, ImageRef, MemoryLimit, TypeName, UserId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(user) = UserId::parse(text) {
        assert_eq!(UserId::parse(user.as_str()).unwrap(), user);
        assert!(
            user.as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
    }
    if let Ok(kind) = TypeName::parse(text) {
        assert_eq!(TypeName::parse(kind.as_str()).unwrap(), kind);
    }
    if let Ok(name) = ContainerName::parse(text) {
        assert_eq!(ContainerName::parse(name.as_str()).unwrap(), name);
    }
    if let Ok(image) = ImageRef::parse(text) {
        assert_eq!(ImageRef::parse(&image.to_string()).unwrap(), image);
    }
    if let Ok(memory) = MemoryLimit::parse(text) {
        assert_eq!(MemoryLimit::parse(&memory.to_string()).unwrap(), memory);
    }
    if let Ok(disk) = DiskSize::parse(text) {
        assert_eq!(DiskSize::parse(&disk.to_string()).unwrap(), disk);
    }
    let _ = CpuLimit::parse(text);
});
