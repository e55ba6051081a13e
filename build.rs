//! Build script: the library's SONAME, and upstream's five C++ functions
//! (cxx/blight_protocol_abi.cpp) compiled into it.
//!
//! It writes nothing in the source tree, and reruns only when its own inputs change (a
//! Rust edit rebuilds the library alone). The C header is not made here: it is generated
//! by its own step, `scripts/gen-header.sh` (cbindgen, pinned in tools/gen-header; the
//! CMake target `blight_header`), and CI fails when the checked-in
//! `include/blight_socket.h` differs from what it generates.
use std::{env, path::PathBuf};

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    // A versioned SONAME, so that the installed libblight_socket.so.MAJOR is what programs
    // link against (CMake installs the file and its symlinks).
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libblight_socket.so.{major}");
    cxx_abi(&crate_dir);
}

// ---- Upstream's BlightProtocol:: C++ functions ----------------------------------------
// cxx/blight_protocol_abi.cpp defines the five C++ functions of upstream's socket.h over
// the C exports, under internal names; src/ffi/cxx.rs exports them under upstream's
// mangled names. It is compiled with the target's C++ compiler (the `cc` crate: CXX, or
// CXX_<target> and CXXFLAGS_<target>, which CMake sets to its own compiler and flags, see
// cmake/BlightRust.cmake), so the return of std::optional<unsigned char*> is that
// compiler's; cc links libstdc++. cc itself asks to rerun when those variables change.
fn cxx_abi(crate_dir: &std::path::Path) {
    for input in ["cxx/blight_protocol_abi.cpp", "include/libblight_protocol/socket.h", "include/blight_socket.h"] {
        println!("cargo:rerun-if-changed={input}");
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file(crate_dir.join("cxx/blight_protocol_abi.cpp"))
        .include(crate_dir.join("include"))
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .compile("blight_protocol_abi");
}
