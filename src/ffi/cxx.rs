//! Upstream's five `BlightProtocol::` C++ functions, exported under upstream's mangled
//! names. cxx/blight_protocol_abi.cpp defines them (compiled by build.rs with the target's
//! C++ compiler, which decides how `std::optional<unsigned char*>` is returned) under
//! hidden internal names; each export here is a single branch to one of them, leaving
//! arguments, return registers and the stack untouched. The export is Rust's so that it
//! is in rustc's version script (a second script cannot be merged into it by GNU ld).
//! `ssize_t` mangles as `l` on 64-bit targets and `i` on 32-bit ones.
#![allow(non_snake_case)]
extern "C" {
    fn blight_socket_cxx_recv();
    fn blight_socket_cxx_recv_blocking();
    fn blight_socket_cxx_send_blocking();
    fn blight_socket_cxx_wait_for_send();
    fn blight_socket_cxx_wait_for_read();
}

// Each trampoline starts with the landing pad that an indirect call needs where the CPU
// enforces them (x86 IBT: `endbr64`/`endbr32`; aarch64 BTI: `bti c`, written as its hint
// encoding, `hint #34`, which assemblers accept without the BTI feature): the exports are
// reached through the PLT, an indirect branch. Both are no-ops on CPUs without the
// feature. The branch to the C++ function is direct and needs no pad there. 32-bit Arm
// (armv7) has no BTI. scripts/check-exports.sh checks the pads in the built library.
#[cfg(target_arch = "x86_64")]
macro_rules! branch {
    () => {
        "endbr64\n jmp {}"
    };
}
#[cfg(target_arch = "x86")]
macro_rules! branch {
    () => {
        "endbr32\n jmp {}"
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! branch {
    () => {
        "hint #34\n b {}"
    };
}
#[cfg(target_arch = "arm")]
macro_rules! branch {
    () => {
        "b {}"
    };
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64", target_arch = "arm")))]
compile_error!(
    "src/ffi/cxx.rs: no trampoline for this architecture. Add a `branch!` (the landing pad \
     indirect calls need, then a direct branch that leaves arguments, return registers and \
     the stack untouched) and its mangled names, and teach scripts/check-exports.sh its pad."
);

macro_rules! trampoline {
    ($rust:ident, $name64:literal, $name32:literal, $target:ident) => {
        #[unsafe(naked)]
        #[cfg_attr(target_pointer_width = "64", export_name = $name64)]
        #[cfg_attr(target_pointer_width = "32", export_name = $name32)]
        pub unsafe extern "C" fn $rust() {
            core::arch::naked_asm!(branch!(), sym $target)
        }
    };
}

trampoline!(recv, "_ZN14BlightProtocol4recvEiljj", "_ZN14BlightProtocol4recvEiijj", blight_socket_cxx_recv);
trampoline!(
    recv_blocking,
    "_ZN14BlightProtocol13recv_blockingEil",
    "_ZN14BlightProtocol13recv_blockingEii",
    blight_socket_cxx_recv_blocking
);
trampoline!(
    send_blocking,
    "_ZN14BlightProtocol13send_blockingEiPhl",
    "_ZN14BlightProtocol13send_blockingEiPhi",
    blight_socket_cxx_send_blocking
);
trampoline!(
    wait_for_send,
    "_ZN14BlightProtocol13wait_for_sendEii",
    "_ZN14BlightProtocol13wait_for_sendEii",
    blight_socket_cxx_wait_for_send
);
trampoline!(
    wait_for_read,
    "_ZN14BlightProtocol13wait_for_readEii",
    "_ZN14BlightProtocol13wait_for_readEii",
    blight_socket_cxx_wait_for_read
);
