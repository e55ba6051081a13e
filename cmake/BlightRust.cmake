# Which Rust target, which cargo and rustc, and what cargo is told, for the library that
# CMakeLists.txt builds through cargo. A cross build needs nothing but an ordinary CMake
# toolchain file (CMAKE_SYSTEM_PROCESSOR and the compilers; see cmake/toolchains/):
#
#   BLIGHT_RUST_TARGET  the Rust target triple. Default: none for a native build (cargo's
#                       host target), else mapped from CMAKE_SYSTEM_PROCESSOR:
#                       armv7*/arm* -> armv7-unknown-linux-gnueabihf (reMarkable 1 and 2),
#                       aarch64/arm64 -> aarch64-unknown-linux-gnu (Paper Pro),
#                       i?86/x86 -> i686-unknown-linux-gnu, x86_64/amd64 -> x86_64-unknown-linux-gnu.
#   BLIGHT_CARGO        cargo to run. Default: cargo on PATH or in ~/.cargo/bin, else /usr/bin/cargo.
#   BLIGHT_RUSTC        rustc cargo uses (passed as RUSTC). Default: $RUSTC, else the rustc
#                       next to BLIGHT_CARGO, else rustc on PATH.
# When that rustc has no standard library for the target (rustup without `rustup target
# add`), and Debian's /usr/bin/rustc has one (libstd-rust-web-dev:<arch>), Debian's
# cargo and rustc are used instead, with a message.
#
# For a target build cargo gets `--target` and CARGO_TARGET_<TRIPLE>_LINKER (the C compiler;
# a small wrapper when the compiler needs arguments such as --sysroot). Native and target
# builds alike give build scripts that compile C or C++ (the cc crate: build.rs compiles
# cxx/blight_protocol_abi.cpp) CMake's compilers and flags: CC_/CXX_/AR_<triple> and
# CFLAGS_/CXXFLAGS_<triple> (the compiler's own arguments, CMAKE_SYSROOT, and
# CMAKE_C_FLAGS/CMAKE_CXX_FLAGS, which hold the environment's CFLAGS/CXXFLAGS of the first
# configure, as an SDK sets them). The triple of a native build is rustc's host.
#
# Results: BLIGHT_CARGO_COMMAND (cmake -E env ... cargo, a list), BLIGHT_CARGO_TARGET_ARGS
# (--target T or nothing), BLIGHT_CARGO_OUT_SUBDIR (T/release or release).

set(BLIGHT_RUST_TARGET "" CACHE STRING
    "Rust target triple (empty: cargo's host target for a native build, mapped from CMAKE_SYSTEM_PROCESSOR when cross-compiling)")
set(BLIGHT_CARGO "" CACHE FILEPATH "cargo executable (empty: found on PATH, ~/.cargo/bin, /usr/bin)")
set(BLIGHT_RUSTC "" CACHE FILEPATH "rustc that cargo uses (empty: \$RUSTC, else next to cargo, else on PATH)")

function(blight_rust_triple_for processor out)
  string(TOLOWER "${processor}" p)
  if(p MATCHES "^(armv7.*|armv8l|arm|armhf)$")
    set(t armv7-unknown-linux-gnueabihf)
  elseif(p MATCHES "^(aarch64|arm64|armv8.*)$")
    set(t aarch64-unknown-linux-gnu)
  elseif(p MATCHES "^(i[3-6]86|x86)$")
    set(t i686-unknown-linux-gnu)
  elseif(p MATCHES "^(x86_64|amd64)$")
    set(t x86_64-unknown-linux-gnu)
  else()
    message(FATAL_ERROR "blight_socket: no Rust target known for CMAKE_SYSTEM_PROCESSOR '${processor}'; "
                        "set -DBLIGHT_RUST_TARGET=<triple> (rustc --print target-list)")
  endif()
  set(${out} ${t} PARENT_SCOPE)
endfunction()

set(_blight_target "${BLIGHT_RUST_TARGET}")
if(_blight_target STREQUAL "" AND CMAKE_CROSSCOMPILING)
  blight_rust_triple_for("${CMAKE_SYSTEM_PROCESSOR}" _blight_target)
endif()

# --- cargo and rustc ----------------------------------------------------------------
set(_blight_cargo "${BLIGHT_CARGO}")
if(_blight_cargo STREQUAL "")
  find_program(BLIGHT_FOUND_CARGO cargo HINTS "$ENV{HOME}/.cargo/bin" /usr/bin)
  set(_blight_cargo "${BLIGHT_FOUND_CARGO}")
endif()
if(NOT _blight_cargo)
  message(FATAL_ERROR "blight_socket: cargo not found. Install Rust (rustup, or Debian's "
                      "rustc-web cargo-web: scripts/setup.sh host), or set -DBLIGHT_CARGO=/path/to/cargo")
endif()
set(_blight_rustc "${BLIGHT_RUSTC}")
if(_blight_rustc STREQUAL "" AND DEFINED ENV{RUSTC} AND NOT "$ENV{RUSTC}" STREQUAL "")
  set(_blight_rustc "$ENV{RUSTC}")
endif()
if(_blight_rustc STREQUAL "")
  get_filename_component(_blight_cargo_dir "${_blight_cargo}" DIRECTORY)
  find_program(BLIGHT_FOUND_RUSTC rustc HINTS "${_blight_cargo_dir}" NO_DEFAULT_PATH)
  if(NOT BLIGHT_FOUND_RUSTC)
    find_program(BLIGHT_FOUND_RUSTC rustc)
  endif()
  set(_blight_rustc "${BLIGHT_FOUND_RUSTC}")
endif()

# Does this rustc have a standard library for the target? (rustup's proxies answer for
# the selected toolchain; a missing target's libdir exists but holds no libstd.)
function(blight_rustc_has_std rustc target out)
  set(${out} FALSE PARENT_SCOPE)
  if(NOT rustc)
    return()
  endif()
  if(target STREQUAL "")
    set(args --print target-libdir)
  else()
    set(args --print target-libdir --target ${target})
  endif()
  execute_process(COMMAND "${rustc}" ${args} OUTPUT_VARIABLE libdir ERROR_QUIET
                  RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(rc EQUAL 0 AND IS_DIRECTORY "${libdir}")
    file(GLOB std "${libdir}/libstd-*.rlib")
    if(std)
      set(${out} TRUE PARENT_SCOPE)
    endif()
  endif()
endfunction()

blight_rustc_has_std("${_blight_rustc}" "${_blight_target}" _blight_ok)
if(NOT _blight_ok AND BLIGHT_RUSTC STREQUAL "" AND EXISTS /usr/bin/rustc AND EXISTS /usr/bin/cargo
   AND NOT _blight_rustc STREQUAL "/usr/bin/rustc")
  blight_rustc_has_std(/usr/bin/rustc "${_blight_target}" _blight_ok)
  if(_blight_ok)
    message(STATUS "blight_socket: ${_blight_rustc} has no standard library for "
                   "'${_blight_target}'; using Debian's /usr/bin/cargo and /usr/bin/rustc")
    set(_blight_cargo /usr/bin/cargo)
    set(_blight_rustc /usr/bin/rustc)
  endif()
endif()
if(NOT _blight_ok)
  message(FATAL_ERROR "blight_socket: '${_blight_rustc}' has no Rust standard library for "
    "target '${_blight_target}'. Either `rustup target add ${_blight_target}`, or install "
    "Debian's rustc-web cargo-web and libstd-rust-web-dev:<arch> (scripts/setup.sh all), "
    "or point -DBLIGHT_CARGO/-DBLIGHT_RUSTC at a toolchain that has it.")
endif()
execute_process(COMMAND "${_blight_rustc}" --version OUTPUT_VARIABLE _blight_rustc_version
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(_blight_target STREQUAL "")
  message(STATUS "blight_socket: Rust target: host (${_blight_rustc_version}, ${_blight_cargo})")
else()
  message(STATUS "blight_socket: Rust target: ${_blight_target} (${_blight_rustc_version}, ${_blight_cargo})")
endif()

# --- What cargo is told ---------------------------------------------------------------
set(_blight_env "RUSTC=${_blight_rustc}")
# Arguments the compilers need beyond their path: CC="gcc --sysroot=..." as the
# reMarkable SDK sets it (CMake keeps them in CMAKE_<LANG>_COMPILER_ARG1), CMAKE_SYSROOT
# from a toolchain file, and CMake's flags.
set(_blight_cflags "${CMAKE_C_COMPILER_ARG1}")
set(_blight_cxxflags "${CMAKE_CXX_COMPILER_ARG1}")
if(CMAKE_SYSROOT)
  string(APPEND _blight_cflags " --sysroot=${CMAKE_SYSROOT}")
  string(APPEND _blight_cxxflags " --sysroot=${CMAKE_SYSROOT}")
endif()
string(STRIP "${_blight_cflags}" _blight_link_args)
string(APPEND _blight_cflags " ${CMAKE_C_FLAGS}")
string(APPEND _blight_cxxflags " ${CMAKE_CXX_FLAGS}")
string(STRIP "${_blight_cflags}" _blight_cflags)
string(STRIP "${_blight_cxxflags}" _blight_cxxflags)
if(_blight_target STREQUAL "")
  set(BLIGHT_CARGO_TARGET_ARGS "")
  set(BLIGHT_CARGO_OUT_SUBDIR release)
  # The cc crate of a native build reads the variables of rustc's host triple.
  execute_process(COMMAND "${_blight_rustc}" -vV OUTPUT_VARIABLE _blight_rustc_vv ERROR_QUIET)
  string(REGEX MATCH "host: ([^\n]+)" _ "${_blight_rustc_vv}")
  set(_blight_cc_triple "${CMAKE_MATCH_1}")
  if(_blight_cc_triple STREQUAL "")
    message(FATAL_ERROR "blight_socket: `${_blight_rustc} -vV` names no host triple")
  endif()
else()
  set(BLIGHT_CARGO_TARGET_ARGS --target ${_blight_target})
  set(BLIGHT_CARGO_OUT_SUBDIR ${_blight_target}/release)
  set(_blight_cc_triple "${_blight_target}")
  string(TOUPPER "${_blight_target}" _blight_upper)
  string(REPLACE "-" "_" _blight_upper "${_blight_upper}")
  set(_blight_linker "${CMAKE_C_COMPILER}")
  if(NOT _blight_link_args STREQUAL "")
    # cargo's linker setting is one program: wrap the compiler and its arguments.
    set(_blight_linker "${CMAKE_BINARY_DIR}/blight-${_blight_target}-linker")
    file(WRITE "${CMAKE_BINARY_DIR}/blight-linker.tmp/blight-${_blight_target}-linker"
         "#!/bin/sh\nexec \"${CMAKE_C_COMPILER}\" ${_blight_link_args} \"$@\"\n")
    file(COPY "${CMAKE_BINARY_DIR}/blight-linker.tmp/blight-${_blight_target}-linker"
         DESTINATION "${CMAKE_BINARY_DIR}"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                          WORLD_READ WORLD_EXECUTE)
  endif()
  list(APPEND _blight_env "CARGO_TARGET_${_blight_upper}_LINKER=${_blight_linker}")
endif()
string(REPLACE "-" "_" _blight_lower "${_blight_cc_triple}")
list(APPEND _blight_env
     "CC_${_blight_lower}=${CMAKE_C_COMPILER}"
     "CXX_${_blight_lower}=${CMAKE_CXX_COMPILER}")
if(CMAKE_AR)
  list(APPEND _blight_env "AR_${_blight_lower}=${CMAKE_AR}")
endif()
# Set even when empty: cc then ignores a CXXFLAGS of the environment that CMake did not take.
list(APPEND _blight_env "CFLAGS_${_blight_lower}=${_blight_cflags}" "CXXFLAGS_${_blight_lower}=${_blight_cxxflags}")
set(BLIGHT_RUST_TARGET_RESOLVED "${_blight_target}")
set(BLIGHT_CARGO_COMMAND ${CMAKE_COMMAND} -E env ${_blight_env} "${_blight_cargo}")
