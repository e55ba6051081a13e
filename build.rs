//! Regenerates `include/blight_socket.h` from the exported functions' signatures and doc comments.
//!
//! The header is checked in; CI regenerates it and fails when it differs (`git diff --exit-code`).
use std::{env, path::PathBuf};

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=src");
    // A versioned SONAME, so that the installed libblight_socket.so.MAJOR is what programs
    // link against (CMake installs the file and its symlinks).
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libblight_socket.so.{major}");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => {
            bindings.write_to_file(crate_dir.join("include/blight_socket.h"));
        }
        // A syntax error in src/ is reported by rustc itself, with better messages.
        Err(e) => println!("cargo:warning=cbindgen could not generate the header: {e}"),
    }

    cxx_abi(&crate_dir);
}

// ---- Upstream's BlightProtocol:: C++ functions ----------------------------------------
// Separate from the header generation above on purpose (that may move to its own step).
//
// cxx/blight_protocol_abi.cpp defines the five C++ functions of upstream's socket.h over
// the C exports, under internal names; src/ffi/socket.rs (module cxx_exports) exports them
// under upstream's mangled names. It is compiled with the target's C++ compiler (the `cc`
// crate: CXX, or CXX_<target> for cross builds), so the return of std::optional<unsigned
// char*> is that compiler's; cc links libstdc++.
fn cxx_abi(crate_dir: &std::path::Path) {
    println!("cargo:rerun-if-changed=cxx");
    println!("cargo:rerun-if-changed=include/libblight_protocol/socket.h");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file(crate_dir.join("cxx/blight_protocol_abi.cpp"))
        .include(crate_dir.join("include"))
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile("blight_protocol_abi");
}
