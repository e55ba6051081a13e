//! `blight_socket`: the socket layer of oxide's `libblight_protocol`, as a Rust `cdylib`.
//!
//! Calls go one way (docs/ARCHITECTURE.md draws it): C caller → [`ffi`] (argument
//! checks, panic and errno boundary) → safe Rust ([`io`] for the blocking send/receive
//! loops, [`zerocopy`] for the zero-copy paths and their bookkeeping) → [`sys`] (one small
//! wrapper per system call) → kernel. `io` never calls up into `zerocopy`: the waits take
//! a hook for `POLLERR`, which the exports fill with [`zerocopy::drain_for_wait`].
//!
//! Zero-copy sends take one of two kernel paths, chosen per socket:
//! - `MSG_ZEROCOPY` on TCP and UDP (IPv4 and IPv6): the kernel pins the caller's pages and
//!   reports on the socket's error queue when it no longer needs them;
//! - `vmsplice` + `splice` on `AF_UNIX` stream sockets (where `MSG_ZEROCOPY` is refused):
//!   the caller's pages are moved into the socket, and they are known to be free once the
//!   socket's unread byte count (`SIOCOUTQ`) says the peer has consumed them.
//!
//! Either way the buffer table keeps every buffer alive until the kernel is done.
//!
//! Tests: `cargo test` runs the unit and property tests of the pure logic and
//! `tests/sockets.rs`, a smoke test of every path over real sockets. The full suite of
//! socket tests (GoogleTest, through the installed header) runs under ctest:
//! `./scripts/test-all.sh`.

mod fallible_alloc;
mod ffi;
mod io;
mod logging;
mod sys;
mod zerocopy;
