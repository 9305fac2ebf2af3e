# Runs `nabla check` on every .nn file in DIRS (a ;-list); fails on the first
# file it rejects, and when a directory holds no .nn file at all.
foreach(dir ${DIRS})
  file(GLOB models ${dir}/*.nn)
  if(NOT models)
    message(FATAL_ERROR "no .nn files in ${dir}")
  endif()
  foreach(model ${models})
    execute_process(COMMAND ${NABLA} check ${model} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                    ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "nabla check ${model} failed (${rc}):\n${err}")
    endif()
    message(STATUS "${out}")
  endforeach()
endforeach()
