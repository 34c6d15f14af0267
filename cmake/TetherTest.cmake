# tether_add_gtest(NAME SOURCES... LIBS... LABELS...): a GoogleTest binary as one
# ctest entry. Labels: the kind (unit/pcap/lab/fuzz) and every module exercised.
function(tether_add_gtest name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
endfunction()
