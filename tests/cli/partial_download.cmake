# CTest script (cmake -P): `spinexr` on a partial download, most listed DICOMs absent.
#   prepare without --allow-missing: exits non-zero before decoding, one summary line (how many of
#   how many, per split, the first few), the full list in CACHE/missing.txt; with --allow-missing:
#   prepares the images present, a summary instead of one line per missing image.
#   train-cls, train-det, eval-det, eval and predict --data reading the DICOMs: the same refusal,
#   the list in their output folder.
# Variables: SPINEXR (the program), WORK (a scratch folder, emptied first).
cmake_minimum_required(VERSION 3.24)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

function(fail msg)
  message(FATAL_ERROR "partial_download: ${msg}")
endfunction()

# Runs spinexr ARGS...; sets rc, out (stdout + stderr) and lines (their line count) in the caller.
function(run)
  execute_process(COMMAND "${SPINEXR}" ${ARGN} RESULT_VARIABLE r OUTPUT_VARIABLE o ERROR_VARIABLE e)
  set(all "${o}${e}")
  string(REGEX MATCHALL "\n" nl "${all}")
  list(LENGTH nl n)
  set(rc "${r}" PARENT_SCOPE)
  set(out "${all}" PARENT_SCOPE)
  set(lines "${n}" PARENT_SCOPE)
endfunction()

function(count_lines file var)
  if(NOT EXISTS "${file}")
    fail("${file} was not written")
  endif()
  file(STRINGS "${file}" l)
  list(LENGTH l n)
  set(${var} "${n}" PARENT_SCOPE)
endfunction()

run(synth --out "${WORK}/data" --images 16 --size 64 --seed 3 --threads 1 --quiet)
if(NOT rc EQUAL 0)
  fail("synth failed: ${out}")
endif()
# Keep the first image of each split (by name), move the others away.
set(missing 0)
foreach(split train test)
  file(GLOB imgs "${WORK}/data/${split}_images/*.dicom")
  list(SORT imgs)
  list(LENGTH imgs n)
  if(n LESS 2)
    fail("synth gave ${n} ${split} images, need >= 2")
  endif()
  list(REMOVE_AT imgs 0)
  list(LENGTH imgs m)
  math(EXPR missing "${missing} + ${m}")
  set(${split}_missing ${m})
  file(MAKE_DIRECTORY "${WORK}/away/${split}")
  foreach(f ${imgs})
    get_filename_component(name "${f}" NAME)
    file(RENAME "${f}" "${WORK}/away/${split}/${name}")
  endforeach()
endforeach()
math(EXPR listed "${missing} + 2")

# prepare: refused, summarised, listed.
run(prepare --data "${WORK}/data" --out "${WORK}/cache" --size 32 --quiet)
if(rc EQUAL 0)
  fail("prepare exited 0 with ${missing} of ${listed} images missing:\n${out}")
endif()
if(lines GREATER 1)
  fail("prepare printed ${lines} lines, expected one error line:\n${out}")
endif()
if(NOT out MATCHES "spinexr prepare: error: .*${missing} of ${listed} listed images are missing \\(train: ${train_missing} of [0-9]+, test: ${test_missing} of [0-9]+")
  fail("prepare's error does not summarise the missing images:\n${out}")
endif()
if(NOT out MATCHES "missing.txt" OR NOT out MATCHES "--allow-missing")
  fail("prepare's error does not name the list and --allow-missing:\n${out}")
endif()
count_lines("${WORK}/cache/missing.txt" n)
if(NOT n EQUAL missing)
  fail("cache/missing.txt has ${n} lines, expected ${missing}")
endif()

# prepare --allow-missing: the two images present, a few lines, exit 0.
run(prepare --data "${WORK}/data" --out "${WORK}/cache" --size 32 --quiet --allow-missing)
if(NOT rc EQUAL 0)
  fail("prepare --allow-missing failed:\n${out}")
endif()
if(lines GREATER 3)
  fail("prepare --allow-missing printed ${lines} lines:\n${out}")
endif()
if(NOT out MATCHES "2 written" OR NOT out MATCHES "${missing} of ${listed} listed images are missing")
  fail("prepare --allow-missing output:\n${out}")
endif()
count_lines("${WORK}/cache/missing.txt" n)
if(NOT n EQUAL missing)
  fail("cache/missing.txt has ${n} lines after --allow-missing, expected ${missing}")
endif()

# The commands that read the DICOMs refuse the same way, the list in their output folder.
file(WRITE "${WORK}/dummy.safetensors" "not read: the dataset check comes first")
set(cases
    "train-cls|${WORK}/run-cls|${train_missing}|train-cls,--data,${WORK}/data,--out,${WORK}/run-cls,--quiet"
    "train-det|${WORK}/run-det|${train_missing}|train-det,--data,${WORK}/data,--out,${WORK}/run-det"
    "eval-det|${WORK}/eval-det|${test_missing}|eval-det,--data,${WORK}/data,--ckpt,${WORK}/dummy.safetensors,--out,${WORK}/eval-det"
    "eval|${WORK}/eval|${test_missing}|eval,--data,${WORK}/data,--cls,${WORK}/dummy.safetensors,--det,${WORK}/dummy.safetensors,--out,${WORK}/eval"
    "predict|${WORK}/pred|${test_missing}|predict,--data,${WORK}/data,--cls,${WORK}/dummy.safetensors,--det,${WORK}/dummy.safetensors,--out,${WORK}/pred")
foreach(c ${cases})
  string(REPLACE "," ";" c "${c}")  # the command's arguments are comma-separated in `cases`
  string(REPLACE "|" ";" parts "${c}")
  list(GET parts 0 cmd)
  list(GET parts 1 dir)
  list(GET parts 2 expect)
  list(SUBLIST parts 3 -1 argv)
  run(${argv})
  if(rc EQUAL 0)
    fail("${cmd} exited 0 with images missing:\n${out}")
  endif()
  if(lines GREATER 1 OR NOT out MATCHES "spinexr ${cmd}: error: .*${expect} of [0-9]+ listed images are missing.*${dir}/missing.txt.*--allow-missing")
    fail("${cmd}: expected one error line summarising ${expect} missing images:\n${out}")
  endif()
  count_lines("${dir}/missing.txt" n)
  if(NOT n EQUAL expect)
    fail("${dir}/missing.txt has ${n} lines, expected ${expect}")
  endif()
endforeach()
message(STATUS "partial_download: ${missing} of ${listed} missing, refused and listed as expected")
