# sx_add_library(NAME DIR DEPS...): one static library per top-level folder.
# Every *.cpp under DIR is compiled, except *_cuda.cpp (host code of a CUDA backend, e.g. the
# cuDNN calls of conv2d); those and every *.cu only when the CUDA backend is on. A CPU-only build
# needs no stubs for them: see tensor/dispatch.h. Files are globbed with CONFIGURE_DEPENDS so that
# adding a kernel folder needs no CMake edit.
function(sx_add_library name dir)
  file(GLOB_RECURSE _cpp CONFIGURE_DEPENDS ${dir}/*.cpp)
  set(_src ${_cpp})
  if(NOT SX_WITH_CUDA)
    list(FILTER _src EXCLUDE REGEX "_cuda\\.cpp$")
  endif()
  if(SX_WITH_CUDA)
    file(GLOB_RECURSE _cu CONFIGURE_DEPENDS ${dir}/*.cu)
    list(APPEND _src ${_cu})
  endif()
  # The CLI's sources (any folder named cli/) belong to the spinexr program, not the library.
  list(FILTER _src EXCLUDE REGEX "/cli/")
  if(NOT _src)
    # A layer with no sources yet is a header-only interface library.
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${PROJECT_SOURCE_DIR})
    target_link_libraries(${name} INTERFACE ${ARGN})
    return()
  endif()
  if(SX_SHARED_LIBS)
    add_library(${name} SHARED ${_src})
    # No <target>_EXPORTS define: the objects compile exactly as in the static build (ccache hits).
    set_target_properties(${name} PROPERTIES DEFINE_SYMBOL "")
  else()
    add_library(${name} STATIC ${_src})
  endif()
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARGN})
  if(SX_WITH_CUDA)
    target_link_libraries(${name} PUBLIC sx_cuda_deps)
  endif()
endfunction()

# sx_add_test(NAME SOURCES... LIBS ...): one GoogleTest program, registered with CTest.
function(sx_add_gtest name)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_LIBS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE SX_TEST_DATA_DIR="${SX_TEST_DATA_DIR}")
  add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive")
endfunction()
