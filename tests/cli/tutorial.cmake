# The tutorial's commands run (issue 14): scripts/tutorial.sh extracts every `$ ` command from
# docs/tutorial/NN-*.md and runs them in order in a fresh folder, checks that each chapter drew its
# pictures and that every file and function the chapters name exists, so the docs cannot rot.
# Run by CTest (a few minutes on 2 cores) as
#   cmake -DSOURCE=<repository root> -DSPINEXR=<path to spinexr> -DWORK=<scratch folder> -P tutorial.cmake
# Fails (FATAL_ERROR) with the runner's summary: each failed command with its chapter:line.
find_program(BASH bash REQUIRED)
execute_process(
  COMMAND "${BASH}" "${SOURCE}/scripts/tutorial.sh" --spinexr "${SPINEXR}" --work "${WORK}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE log ERROR_VARIABLE err)
message(STATUS "${log}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "scripts/tutorial.sh failed (${rc}):\n${err}")
endif()
file(REMOVE_RECURSE "${WORK}")
