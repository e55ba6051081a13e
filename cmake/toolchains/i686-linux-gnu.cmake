# 32-bit x86 (Rust: i686-unknown-linux-gnu): the 32-bit build that runs natively, threads included.
# Debian's cross compiler (i686-linux-gnu-gcc, i686-linux-gnu-g++: scripts/setup.sh all) and the target's
# libraries from multiarch packages (libgtest-dev:i386 in /usr/lib/i386-linux-gnu).
#   cmake -S . -B build-i686 --toolchain cmake/toolchains/i686-linux-gnu.cmake
# (cmake < 3.21: -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/i686-linux-gnu.cmake). The Rust target follows
# from CMAKE_SYSTEM_PROCESSOR (cmake/BlightRust.cmake).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR i686)
set(CMAKE_C_COMPILER i686-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER i686-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE i386-linux-gnu)
# The cross toolchain's own tree, then / for the multiarch directories (/usr/lib/i386-linux-gnu).
set(CMAKE_FIND_ROOT_PATH /usr/i686-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# 32-bit x86 programs run natively on an x86-64 Linux kernel (libc6:i386), threads included.
