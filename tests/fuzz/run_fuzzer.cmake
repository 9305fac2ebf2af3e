# One libFuzzer target run as a test:
#   cmake -DFUZZER=BIN -DSEEDS=DIR -DWORK=DIR [-DSECONDS=30] [-DDICT=FILE] -P run_fuzzer.cmake
# WORK is emptied and gets a copy of the seeds as the corpus the run grows
# (the seeds in the repository stay untouched) and any crashing input. The
# test fails when the fuzzer finds a crash, a sanitizer error, a leak, an
# input slower than 20 s or memory beyond 2 GB.
if(NOT SECONDS)
  set(SECONDS 30)
endif()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus)
if(IS_DIRECTORY ${SEEDS})
  file(GLOB seeds ${SEEDS}/*)
  if(seeds)
    file(COPY ${seeds} DESTINATION ${WORK}/corpus)
  endif()
endif()
set(args -max_total_time=${SECONDS} -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix=${WORK}/)
if(DICT)
  list(APPEND args -dict=${DICT})
endif()
execute_process(COMMAND ${FUZZER} ${args} ${WORK}/corpus RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  file(GLOB found ${WORK}/crash-* ${WORK}/leak-* ${WORK}/timeout-* ${WORK}/oom-*)
  message(FATAL_ERROR "${FUZZER} failed (${status}): ${found}")
endif()
