# tether_add_gtest(NAME SOURCES... LIBS... LABELS...): a GoogleTest binary as one
# ctest entry. Labels: the kind (unit/pcap/lab/fuzz) and every module exercised.
# tether_add_eal_gtest(NAME SOURCES... LIBS... LABELS...): the same for tests
# that need an EAL (DPDK memory, rings, hashes, rte_acl): its main brings up
# a small EAL without hugepages on lcores 0-1 (tests/support/eal_main.cc).
function(tether_add_eal_gtest name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${CMAKE_SOURCE_DIR}/tests/support/eal_main.cc ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
endfunction()

function(tether_add_gtest name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
endfunction()
