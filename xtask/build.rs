//! Records the versions that determine numbers (from Cargo.lock and rustc) for run provenance.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=../Cargo.lock");
    let lock = std::fs::read_to_string("../Cargo.lock").unwrap_or_default();
    let mut versions = Vec::new();
    for krate in ["burn", "rhai", "sled"] {
        let needle = format!("name = \"{krate}\"\nversion = \"");
        if let Some(i) = lock.find(&needle) {
            let rest = &lock[i + needle.len()..];
            if let Some(end) = rest.find('"') {
                versions.push(format!("{krate}={}", &rest[..end]));
            }
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Ok(out) = Command::new(rustc).arg("-V").output() {
        let v = String::from_utf8_lossy(&out.stdout);
        if let Some(ver) = v.split_whitespace().nth(1) {
            versions.push(format!("rustc={ver}"));
        }
    }
    println!("cargo:rustc-env=T4V_VERSIONS={}", versions.join(","));
}
