include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS optimi EXPORT optimiTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(dir include core/include nn/include optim/include utils/include)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endforeach()
install(EXPORT optimiTargets NAMESPACE optimi:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/optimi)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/optimiConfig.cmake.in
  ${PROJECT_BINARY_DIR}/optimiConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/optimi)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/optimiConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/optimiConfig.cmake ${PROJECT_BINARY_DIR}/optimiConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/optimi)
