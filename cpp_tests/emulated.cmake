# Under an emulator (CMAKE_CROSSCOMPILING_EMULATOR, set by the armv7 and aarch64 toolchain
# files to qemu-user), ctest runs only the single-threaded tests: every test named in
# emulation_skips.txt is registered but Disabled, and its reason is printed whenever ctest
# loads the tests; the others get the label `qemu`. Natively (x86-64, i686) this file does
# nothing. BLIGHT_EMULATOR_RUNS_THREADS=ON runs everything (for an emulator that can).
option(BLIGHT_EMULATOR_RUNS_THREADS "The test emulator runs threaded programs" OFF)
if(NOT CMAKE_CROSSCOMPILING_EMULATOR OR BLIGHT_EMULATOR_RUNS_THREADS)
  return()
endif()

# The skip list as two parallel lists: regular expressions and reasons.
file(STRINGS "${CMAKE_CURRENT_SOURCE_DIR}/emulation_skips.txt" _lines)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/emulation_skips.txt")
set(_reason "")
set(_script "# Generated from cpp_tests/emulation_skips.txt by cpp_tests/emulated.cmake.\n")
string(APPEND _script "set(_skips \"\")\nset(_reasons \"\")\n")
foreach(_line IN LISTS _lines)
  string(STRIP "${_line}" _line)
  if(_line STREQUAL "" OR _line MATCHES "^#")
    continue()
  elseif(_line MATCHES "^reason: (.*)$")
    set(_reason "${CMAKE_MATCH_1}")
  else()
    if(_reason STREQUAL "")
      message(FATAL_ERROR "emulation_skips.txt: '${_line}' has no reason above it")
    endif()
    string(REGEX REPLACE "([][.+?^$()|\\\\])" "\\\\\\1" _re "${_line}")
    string(REPLACE "*" ".*" _re "${_re}")
    string(APPEND _script "list(APPEND _skips [==[^${_re}(  # GetParam.*)?$]==])\nlist(APPEND _reasons [==[${_reason}]==])\n")
  endif()
endforeach()

# At ctest time, after the gtest_discover_tests include files (they set <target>_TESTS;
# parameterized tests are named "Suite/Test.Name/Param  # GetParam() = ..."): disable and
# report each match on stderr, label the rest.
string(APPEND _script [=[
set(_skipped 0)
foreach(_list blight_tests_TESTS blight_panic_tests_TESTS blight_fault_tests_TESTS)
  foreach(_t IN LISTS ${_list})
    set(_why "")
    set(_i 0)
    foreach(_re IN LISTS _skips)
      if(_t MATCHES "${_re}")
        list(GET _reasons ${_i} _why)
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
message(NOTICE "skipped under emulation: stress (blight_stress): runs many threads for its whole length")
message(NOTICE "skipped under emulation: ${_skipped} gtest tests and the stress test; the rest are labelled qemu")
]=])
file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/emulation_skips.cmake" "${_script}")
set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${CMAKE_CURRENT_BINARY_DIR}/emulation_skips.cmake")
set_tests_properties(stress PROPERTIES DISABLED TRUE)
set_tests_properties(c_api_test c_compat_test PROPERTIES LABELS qemu)
