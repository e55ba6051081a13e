# Under an emulator (CMAKE_CROSSCOMPILING_EMULATOR, set by the armv7 and aarch64 toolchain
# files to qemu-user with Debian's multiarch runtime) ctest runs every test, threads and
# fork() included, except what the emulator cannot do: the tests named in
# emulation_skips.txt are registered but Disabled, with their reason printed whenever ctest
# loads the tests. Each group of that list names a probe (emulation_probe.c) that ctest
# runs under the emulator as the test `emulation_skip_holds.<probe>`: it fails when the
# emulator can do the thing after all (a skip whose test would pass is an error). A
# pattern that matches no test is printed too (scripts/test.d/26-cross-arm.sh fails on
# it). The stress test is registered as natively (label `stress`, BLIGHT_STRESS_SECONDS).
# Natively (x86-64, i686) this file does nothing. BLIGHT_EMULATION_SKIPS=OFF runs
# everything (for an emulator or a device that can).
option(BLIGHT_EMULATION_SKIPS "Under CMAKE_CROSSCOMPILING_EMULATOR, skip the tests of cpp_tests/emulation_skips.txt" ON)
if(NOT CMAKE_CROSSCOMPILING_EMULATOR OR NOT BLIGHT_EMULATION_SKIPS)
  return()
endif()

# The probes, built for the target and run under the emulator.
add_executable(emulation_probe "${CMAKE_CURRENT_SOURCE_DIR}/emulation_probe.c")
target_compile_options(emulation_probe PRIVATE -Wall -Wextra -Werror)

# The skip list as two parallel lists: regular expressions and reasons. A group ("reason:",
# then "check:", optionally "bits:", then names) applies when its `bits` is absent or is
# this target's pointer size in bits.
math(EXPR _bits "${CMAKE_SIZEOF_VOID_P} * 8")
file(READ "${CMAKE_CURRENT_SOURCE_DIR}/emulation_skips.txt" _text)
if(_text MATCHES ";")
  message(FATAL_ERROR "emulation_skips.txt: no ';' please (a CMake list separator)")
endif()
file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/emulation_skips.txt" _lines)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/emulation_skips.txt")
set(_reason "")
set(_check "")
set(_applies TRUE)
set(_probes "")
set(_script "# Generated from cpp_tests/emulation_skips.txt by cpp_tests/emulated.cmake.\n")
string(APPEND _script "set(_skips \"\")\nset(_names \"\")\nset(_reasons \"\")\n")
foreach(_line IN LISTS _lines)
  string(STRIP "${_line}" _line)
  if(_line STREQUAL "" OR _line MATCHES "^#")
    continue()
  elseif(_line MATCHES "^reason: (.*)$")
    set(_reason "${CMAKE_MATCH_1}")
    set(_check "")
    set(_applies TRUE)
  elseif(_line MATCHES "^check: ([a-z_]+)$")
    set(_check "${CMAKE_MATCH_1}")
  elseif(_line MATCHES "^bits: (32|64)$")
    if(NOT CMAKE_MATCH_1 EQUAL _bits)
      set(_applies FALSE)
    endif()
  elseif(_line MATCHES "^[a-z]+:")
    message(FATAL_ERROR "emulation_skips.txt: unknown line '${_line}'")
  else()
    if(_reason STREQUAL "" OR _check STREQUAL "")
      message(FATAL_ERROR "emulation_skips.txt: '${_line}' has no reason and check above it")
    endif()
    if(NOT _applies)
      continue()
    endif()
    list(APPEND _probes "${_check}")
    string(REGEX REPLACE "([][.+?^$()|\\\\])" "\\\\\\1" _re "${_line}")
    string(REPLACE "*" ".*" _re "${_re}")
    string(APPEND _script "list(APPEND _skips [==[^${_re}(  # GetParam.*)?$]==])\n"
                          "list(APPEND _names [==[${_line}]==])\n"
                          "list(APPEND _reasons [==[${_reason} (checked by emulation_skip_holds.${_check})]==])\n")
  endif()
endforeach()
list(REMOVE_DUPLICATES _probes)
foreach(_probe IN LISTS _probes)
  add_test(NAME emulation_skip_holds.${_probe} COMMAND emulation_probe ${_probe})
  set_tests_properties(emulation_skip_holds.${_probe} PROPERTIES LABELS qemu TIMEOUT 60)
endforeach()

# At ctest time, after the gtest_discover_tests include files (they set <target>_TESTS;
# parameterized tests are named "Suite/Test.Name/Param  # GetParam() = ..."): disable and
# report each match on stderr, label the rest.
string(APPEND _script [=[
set(_skipped 0)
set(_used "")
foreach(_list blight_tests_TESTS blight_panic_tests_TESTS blight_fault_tests_TESTS)
  foreach(_t IN LISTS ${_list})
    set(_why "")
    set(_i 0)
    foreach(_re IN LISTS _skips)
      if(_t MATCHES "${_re}")
        list(GET _reasons ${_i} _why)
        list(APPEND _used ${_i})
        break()
      endif()
      math(EXPR _i "${_i} + 1")
    endforeach()
    if(_why STREQUAL "")
      set_tests_properties("${_t}" PROPERTIES LABELS qemu)
    else()
      set_tests_properties("${_t}" PROPERTIES DISABLED TRUE)
      message(NOTICE "skipped under emulation: ${_t}: ${_why}")
      math(EXPR _skipped "${_skipped} + 1")
    endif()
  endforeach()
endforeach()
set(_i 0)
foreach(_name IN LISTS _names)
  list(FIND _used ${_i} _found)
  if(_found EQUAL -1)
    message(NOTICE "emulation_skips.txt: '${_name}' matches no test (remove or fix the entry)")
  endif()
  math(EXPR _i "${_i} + 1")
endforeach()
message(NOTICE "skipped under emulation: ${_skipped} gtest tests; the rest are labelled qemu")
]=])
file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/emulation_skips.cmake" "${_script}")
set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${CMAKE_CURRENT_BINARY_DIR}/emulation_skips.cmake")
set_tests_properties(c_api_test c_compat_test release_ignores_test_panic_switch PROPERTIES LABELS qemu)
