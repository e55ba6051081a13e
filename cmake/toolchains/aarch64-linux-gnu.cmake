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
# Test programs run under qemu-user with the cross libc (-L). Threads do not run under
# qemu-user on every host: see cpp_tests/emulated.cmake for what ctest runs emulated.
find_program(BLIGHT_QEMU qemu-aarch64)
if(BLIGHT_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${BLIGHT_QEMU};-L;/usr/aarch64-linux-gnu")
endif()
