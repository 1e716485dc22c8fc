# Checks the LINKAGE RULE of src/bitkernels.h on built object files: an instruction-set object
# (kernel_avx2, kernel_avx512, kernel_neon) may define no external symbol but its bk::kImpl*
# table. Any other one, e.g. a weak copy of an inline function (emitted when it is not inlined,
# as in unoptimized builds), could be picked by the linker for calls from generic code.
#   cmake -DNM=<nm> -DOBJECTS=<object;...> -P check_linkage.cmake
# Run by the self-test build after linking bk_selftest (GNU-compatible nm only).
set(_checked 0)
set(_exported "")
foreach(obj IN LISTS OBJECTS)
  if(NOT obj MATCHES "kernel_(avx2|avx512|neon)\\.cpp\\.o(bj)?$")
    continue()
  endif()
  execute_process(COMMAND "${NM}" --defined-only --extern-only --demangle "${obj}"
                  OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_linkage: ${NM} failed on ${obj}")
  endif()
  string(REGEX REPLACE "\n$" "" symbols "${symbols}")
  string(REPLACE "\n" ";" symbols "${symbols}")
  foreach(line IN LISTS symbols)
    if(line AND NOT line MATCHES " bk::kImpl[A-Za-z0-9]+$")
      list(APPEND _exported "${obj}: ${line}")
    endif()
  endforeach()
  math(EXPR _checked "${_checked} + 1")
endforeach()
if(_exported)
  list(JOIN _exported "\n  " _exported)
  message(FATAL_ERROR "check_linkage: external symbols besides the kernel table (see the "
                      "LINKAGE RULE in src/bitkernels.h):\n  ${_exported}")
endif()
message(STATUS "check_linkage: ${_checked} instruction-set object(s) export only their kernel table")
