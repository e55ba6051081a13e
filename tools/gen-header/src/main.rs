//! Generates the C header of `blight_socket` with cbindgen (the version pinned in this
//! package's Cargo.toml), from the crate's exports, their doc comments and cbindgen.toml.
//!
//!     cargo run --locked -p blight_socket_gen_header -- OUTPUT
//!
//! `scripts/gen-header.sh` runs it, and copies OUTPUT to include/blight_socket.h (or, with
//! `--check`, compares them). The library's own build does not run cbindgen: a Rust edit
//! rebuilds the library only.
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(output) = std::env::args_os().nth(1) else {
        eprintln!("usage: blight_socket_gen_header OUTPUT");
        return ExitCode::from(2);
    };
    // This package lives in tools/gen-header of the crate it documents.
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let config = match cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gen-header: cbindgen.toml: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cbindgen::generate_with_config(&crate_dir, config) {
        Ok(bindings) => {
            bindings.write_to_file(&output);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-header: cbindgen could not generate the header: {e}");
            ExitCode::FAILURE
        }
    }
}
