//! Links the release `conch` on Linux as a position-dependent executable (`-no-pie`).
//!
//! A PIE of this size carries ~43 000 relative relocations: at every start the loader
//! reads 1 MiB of them and writes 1.2 MiB of `.data.rel.ro` (vtables, string tables),
//! private copies in each process, the wrapper and its shim alike (07-performance B6).
//! Linked at a fixed address the linker resolves them once, and those pages stay shared
//! and clean, faulted in only where used. The cost is ASLR of the binary's own image
//! (libraries, heap and stacks stay randomised). Debug builds (what the tests run) stay
//! PIE.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if release && linux {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
