# reMarkable Paper Pro: 64-bit ARM (Rust: aarch64-unknown-linux-gnu).
# Debian's cross compiler (aarch64-linux-gnu-gcc, aarch64-linux-gnu-g++: scripts/setup.sh all) and the target's
# libraries from multiarch packages (libgtest-dev:arm64 in /usr/lib/aarch64-linux-gnu).
#   cmake -S . -B build-aarch64 --toolchain cmake/toolchains/aarch64-linux-gnu.cmake
# (cmake < 3.21: -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake). The Rust target follows
# from CMAKE_SYSTEM_PROCESSOR (cmake/BlightRust.cmake); tests run through
# CMAKE_CROSSCOMPILING_EMULATOR (qemu-aarch64).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# The cross toolchain's own tree, then / for the multiarch directories (/usr/lib/aarch64-linux-gnu).
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Test programs run under qemu-user with Debian's multiarch runtime (libc6:arm64,
# libstdc++6:arm64: scripts/setup.sh all) as the target's root: `-L /`, so the loader is
# /lib/ld-linux-aarch64.so.1 and the libraries come from /usr/lib/aarch64-linux-gnu. (The cross runtime in
# /usr/aarch64-linux-gnu, libc6-arm64-cross, crashes or hangs in pthread_create under qemu-user.)
# What ctest leaves out under the emulator, and why: cpp_tests/emulated.cmake.
find_program(BLIGHT_QEMU qemu-aarch64)
if(BLIGHT_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${BLIGHT_QEMU};-L;/")
  if(NOT EXISTS "/lib/ld-linux-aarch64.so.1")
    message(WARNING "/lib/ld-linux-aarch64.so.1 is missing: the tests cannot run under qemu-aarch64 -L / without libc6:arm64 "
                    "(scripts/setup.sh all installs it)")
  endif()
endif()
