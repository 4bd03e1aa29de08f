# Proves the configure-time rule of cmake/pure_components.cmake can fail: the fixture project
# configures when its pure component links nothing of I/O, and fails, naming the component and
# the library, when it links libcurl directly or through another target, or libpq as a file.
# cmake -DRULE=cmake/pure_components.cmake -DFIXTURE=fixture -DWORK=scratch -P pure_components_test.cmake
foreach(case none direct transitive file)
  set(build ${WORK}/${case})
  file(REMOVE_RECURSE ${build})
  execute_process(
    COMMAND ${CMAKE_COMMAND} -S ${FIXTURE} -B ${build} -DRULE=${RULE} -DVIOLATION=${case}
    RESULT_VARIABLE result OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(case STREQUAL "none")
    if(NOT result EQUAL 0)
      message(FATAL_ERROR "a pure component without I/O libraries was refused:\n${err}")
    endif()
  else()
    set(library CURL::libcurl)
    if(case STREQUAL "file")
      set(library /usr/lib/x86_64-linux-gnu/libpq.so.5)
    endif()
    if(result EQUAL 0)
      message(FATAL_ERROR "${case}: a pure component linking ${library} configured without error")
    endif()
    string(REGEX REPLACE "[ \n]+" " " err_line "${err}")
    if(NOT err_line MATCHES "pure_component is a pure component but links the I/O library ${library}")
      message(FATAL_ERROR "${case}: configuration failed, but not with the rule's message:\n${err}")
    endif()
  endif()
  message(STATUS "${case}: as expected")
endforeach()
