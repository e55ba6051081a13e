# reMarkable 1 and 2: 32-bit ARMv7, hard float (Rust: armv7-unknown-linux-gnueabihf).
# Debian's cross compiler (arm-linux-gnueabihf-gcc, arm-linux-gnueabihf-g++: scripts/setup.sh all) and the target's
# libraries from multiarch packages (libgtest-dev:armhf in /usr/lib/arm-linux-gnueabihf).
#   cmake -S . -B build-armv7 --toolchain cmake/toolchains/armv7-linux-gnueabihf.cmake
# (cmake < 3.21: -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armv7-linux-gnueabihf.cmake). The Rust target follows
# from CMAKE_SYSTEM_PROCESSOR (cmake/BlightRust.cmake); tests run through
# CMAKE_CROSSCOMPILING_EMULATOR (qemu-arm).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
# GCC notes that std::vector<64-bit> arguments are passed as GCC 7.1 changed it: irrelevant
# unless mixing with code built by GCC < 7.1.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
# The cross toolchain's own tree, then / for the multiarch directories (/usr/lib/arm-linux-gnueabihf).
set(CMAKE_FIND_ROOT_PATH /usr/arm-linux-gnueabihf /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Test programs run under qemu-user with Debian's multiarch runtime (libc6:armhf,
# libstdc++6:armhf: scripts/setup.sh all) as the target's root: `-L /`, so the loader is
# /lib/ld-linux-armhf.so.3 and the libraries come from /usr/lib/arm-linux-gnueabihf. (The cross runtime in
# /usr/arm-linux-gnueabihf, libc6-armhf-cross, crashes or hangs in pthread_create under qemu-user.)
# What ctest leaves out under the emulator, and why: cpp_tests/emulated.cmake.
find_program(BLIGHT_QEMU qemu-arm)
if(BLIGHT_QEMU)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${BLIGHT_QEMU};-L;/")
  if(NOT EXISTS "/lib/ld-linux-armhf.so.3")
    message(WARNING "/lib/ld-linux-armhf.so.3 is missing: the tests cannot run under qemu-arm -L / without libc6:armhf "
                    "(scripts/setup.sh all installs it)")
  endif()
endif()
