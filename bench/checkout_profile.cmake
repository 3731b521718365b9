# ctest -S script: tests/support/harness.sh BUILD -S "$PWD/bench/checkout_profile.cmake"
# runs bench/checkout_profile.sh inside the harness's private stack (see there).
# no classic dashboard run after this script (it needs CTEST_SOURCE_DIRECTORY etc.)
set(CTEST_RUN_CURRENT_SCRIPT 0)
execute_process(COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/checkout_profile.sh RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "checkout_profile.sh failed (${rc})")
endif()
