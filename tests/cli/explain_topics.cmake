# CTest script (cmake -P): `spinexr explain` from the command line, as the tutorial calls it.
#   --help lists every topic; each topic, on a tiny synthetic dataset with a fresh small model,
#   exits 0, prints its explanation and writes OUT/<topic>.png (+ the topic's extra pictures) and
#   OUT/<topic>.json; an unknown topic is a one-line error with exit status 1.
# Variables: SPINEXR (the program), WORK (a scratch folder, emptied first).
cmake_minimum_required(VERSION 3.24)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

function(fail msg)
  message(FATAL_ERROR "explain_topics: ${msg}")
endfunction()

execute_process(COMMAND "${SPINEXR}" explain --help RESULT_VARIABLE rc OUTPUT_VARIABLE help ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  fail("explain --help exited ${rc}: ${err}")
endif()
set(topics anchors matching focal heads rpn roi-align nms rule)
foreach(t ${topics})
  if(NOT help MATCHES "\n  ${t} ")
    fail("explain --help does not list '${t}':\n${help}")
  endif()
endforeach()

execute_process(COMMAND "${SPINEXR}" synth --out "${WORK}/data" --images 6 --size 128 --seed 2 --threads 1 --quiet
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  fail("synth failed: ${out}${err}")
endif()

# Pictures each topic writes besides OUT/<topic>.png.
set(extra_focal curves)
set(extra_rpn proposals)
set(extra_nms steps)
foreach(t ${topics})
  execute_process(COMMAND "${SPINEXR}" explain ${t} --data "${WORK}/data" --out "${WORK}/out" --size 128
                          --fpn-channels 32 --anchor-base 16 --batch 2
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    fail("explain ${t} exited ${rc}: ${out}${err}")
  endif()
  if(NOT out MATCHES "wrote .*${t}\\.json")
    fail("explain ${t} did not say what it wrote:\n${out}")
  endif()
  set(files "${WORK}/out/${t}.png" "${WORK}/out/${t}.json")
  foreach(x ${extra_${t}})
    list(APPEND files "${WORK}/out/${t}-${x}.png")
  endforeach()
  foreach(f ${files})
    if(NOT EXISTS "${f}")
      fail("explain ${t} did not write ${f}")
    endif()
    file(SIZE "${f}" n)
    if(n LESS 100)
      fail("${f} is only ${n} bytes")
    endif()
  endforeach()
endforeach()

execute_process(COMMAND "${SPINEXR}" explain nonsense --data "${WORK}/data" --out "${WORK}/out"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "spinexr explain: error: explain: unknown topic 'nonsense'")
  fail("an unknown topic gave exit ${rc}: ${out}${err}")
endif()
message(STATUS "explain_topics: --help lists the 8 topics; each wrote its pictures and JSON")
