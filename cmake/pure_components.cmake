# The line between pure components and I/O, checked at configure time: a target declared with
# billing_pure_component() may not link libcurl, libpq/libpqxx or CivetWeb, directly or through
# another target. The check runs when the top-level directory has been processed, so a link added
# anywhere later in the tree is seen too.


# Adds the link dependencies of `target` (resolved through aliases) to the list `out`.
function(_billing_link_closure target out)
  set(seen ${${out}})
  set(pending ${target})
  while(pending)
    list(POP_FRONT pending current)
    if(current IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${current})
    if(NOT TARGET ${current})
      continue()
    endif()
    get_target_property(aliased ${current} ALIASED_TARGET)
    if(aliased)
      list(APPEND pending ${aliased})
      continue()
    endif()
    set(links "")
    get_target_property(direct ${current} LINK_LIBRARIES)
    if(direct)
      list(APPEND links ${direct})
    endif()
    get_target_property(interface ${current} INTERFACE_LINK_LIBRARIES)
    if(interface)
      list(APPEND links ${interface})
    endif()
    foreach(link IN LISTS links)
      # $<LINK_ONLY:x> is how a PRIVATE dependency of a static library appears in its interface.
      string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" link "${link}")
      list(APPEND pending ${link})
    endforeach()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

function(_billing_check_pure target)
  set(closure "")
  _billing_link_closure(${target} closure)
  # What counts as an I/O library: the imported targets, and library files or -l names.
  set(io_targets CURL::libcurl PkgConfig::PQ PkgConfig::PQXX civetweb::civetweb
                 civetweb::civetweb-cpp)
  set(io_names curl pq pqxx civetweb civetweb-cpp)
  foreach(library IN LISTS closure)
    string(REGEX REPLACE "^-l" "" file "${library}")
    get_filename_component(name "${file}" NAME_WE)
    string(REGEX REPLACE "^lib" "" name "${name}")
    if(library IN_LIST io_targets OR (NOT TARGET ${library} AND name IN_LIST io_names))
      message(FATAL_ERROR
        "${target} is a pure component but links the I/O library ${library}. Pure components "
        "(chart values, status, usage arithmetic, identity) may not link libcurl, libpq/libpqxx "
        "or CivetWeb: move the code that needs ${library} into an I/O component (kube, store, "
        "api, service) and pass its results in.")
    endif()
  endforeach()
endfunction()

# Declares `target` pure; checked once the whole tree has been configured.
function(billing_pure_component target)
  set_property(GLOBAL APPEND PROPERTY BILLING_PURE_COMPONENTS ${target})
  get_property(scheduled GLOBAL PROPERTY BILLING_PURE_CHECK_SCHEDULED)
  if(NOT scheduled)
    set_property(GLOBAL PROPERTY BILLING_PURE_CHECK_SCHEDULED TRUE)
    cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _billing_check_pure_components)
  endif()
endfunction()

function(_billing_check_pure_components)
  get_property(targets GLOBAL PROPERTY BILLING_PURE_COMPONENTS)
  foreach(target IN LISTS targets)
    _billing_check_pure(${target})
  endforeach()
endfunction()
