# CTest script (cmake -P): `--model sparse_rcnn` end to end on a tiny synthetic dataset.
#   train-det: no anchor-coverage check (one line), the authors' AdamW / lr 2.5e-5 / clip 1 printed
#   when not given, a given --lr wins; --num-proposals reaches the checkpoint's metadata.
#   eval-det rebuilds the model from the checkpoint alone and reports mAP.
# Variables: SPINEXR (the program), WORK (a scratch folder, emptied first).
cmake_minimum_required(VERSION 3.24)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

function(fail msg)
  message(FATAL_ERROR "sparse_rcnn: ${msg}")
endfunction()

# Runs spinexr ARGS...; sets rc and out (stdout + stderr) in the caller.
function(run)
  execute_process(COMMAND "${SPINEXR}" ${ARGN} RESULT_VARIABLE r OUTPUT_VARIABLE o ERROR_VARIABLE e)
  set(rc "${r}" PARENT_SCOPE)
  set(out "${o}${e}" PARENT_SCOPE)
endfunction()

run(synth --out "${WORK}/data" --images 8 --test-images 2 --size 96 --seed 3 --threads 1 --quiet)
if(NOT rc EQUAL 0)
  fail("synth failed: ${out}")
endif()

set(common --data "${WORK}/data" --model sparse_rcnn --arch resnet18 --channels 1 --fpn-channels 16
           --num-proposals 9 --size 64 --batch 2 --epochs 1 --max-steps 2 --workers 1 --val-fraction 0.3)
run(train-det ${common} --out "${WORK}/run")
if(NOT rc EQUAL 0)
  fail("train-det failed (${rc}):\n${out}")
endif()
foreach(want "sparse_rcnn has no anchors \\(learned proposals\\): no anchor-coverage check"
             "authors' optimisation: --optimizer adamw --lr 2.5e-5 --clip 1")
  if(NOT out MATCHES "${want}")
    fail("train-det did not print '${want}':\n${out}")
  endif()
endforeach()
if(out MATCHES "anchor coverage")
  fail("train-det measured anchor coverage for sparse_rcnn:\n${out}")
endif()
file(READ "${WORK}/run/last.safetensors" head OFFSET 8 LIMIT 20000)  # the JSON header: metadata first
if(NOT head MATCHES "det.num_proposals\":\"9\"" OR NOT head MATCHES "det.model\":\"sparse_rcnn\"")
  fail("the checkpoint's metadata lacks det.model / det.num_proposals = 9")
endif()

# A given --lr wins; only the others are defaulted.
run(train-det ${common} --lr 0.001 --out "${WORK}/run2")
if(NOT rc EQUAL 0 OR NOT out MATCHES "authors' optimisation: --optimizer adamw --clip 1 \\(")
  fail("train-det --lr 0.001 (${rc}):\n${out}")
endif()

run(eval-det --data "${WORK}/data" --split train --ckpt "${WORK}/run/last.safetensors" --out "${WORK}/eval")
if(NOT rc EQUAL 0 OR NOT out MATCHES "\\(sparse_rcnn\\)" OR NOT out MATCHES "mAP@0.5 [0-9.]+")
  fail("eval-det (${rc}):\n${out}")
endif()
if(NOT EXISTS "${WORK}/eval/metrics.json")
  fail("eval-det wrote no metrics.json")
endif()
