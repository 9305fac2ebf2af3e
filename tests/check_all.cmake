# Runs `nabla CMD` (default: check; a ;-list such as gradcheck;--seed;3) on
# every .nn file in DIRS (a ;-list); fails on the first file it rejects, and
# when a directory holds no .nn file at all.
if(NOT CMD)
  set(CMD check)
endif()
foreach(dir ${DIRS})
  file(GLOB models ${dir}/*.nn)
  if(NOT models)
    message(FATAL_ERROR "no .nn files in ${dir}")
  endif()
  foreach(model ${models})
    execute_process(COMMAND ${NABLA} ${CMD} ${model} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                    ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "nabla ${CMD} ${model} failed (${rc}):\n${out}${err}")
    endif()
    message(STATUS "${out}")
  endforeach()
endforeach()
