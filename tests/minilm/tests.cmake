# End-to-end tests of the minilm sample (included from samples/minilm when OPTIMI_BUILD_TESTS).
find_package(Catch2 2 REQUIRED)
include(Catch)

set(MINILM_TEST_DIR ${CMAKE_CURRENT_BINARY_DIR}/minilm-tests)
add_executable(minilm_tests ${PROJECT_SOURCE_DIR}/tests/minilm/test_minilm.cpp)
target_link_libraries(minilm_tests PRIVATE Catch2::Catch2 nlohmann_json::nlohmann_json
                                           optimi_warnings)
target_compile_definitions(minilm_tests PRIVATE MINILM_EXE="$<TARGET_FILE:minilm>"
                                                MINILM_TEST_DIR="${MINILM_TEST_DIR}")
add_dependencies(minilm_tests minilm)
catch_discover_tests(minilm_tests TEST_PREFIX "minilm: "
  PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 600 LABELS minilm)

# Interoperability with the PyTorch reference: skipped (not passed) without python3-torch.
add_test(NAME "minilm: PyTorch interop"
         COMMAND sh ${PROJECT_SOURCE_DIR}/tests/minilm/run_torch_interop.sh $<TARGET_FILE:minilm>
                 ${PROJECT_SOURCE_DIR}/../shared/reference ${MINILM_TEST_DIR}/torch_interop)
set_tests_properties("minilm: PyTorch interop" PROPERTIES SKIP_RETURN_CODE 77
  ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 600 LABELS minilm)
