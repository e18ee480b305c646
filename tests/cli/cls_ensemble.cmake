# CTest script (cmake -P): classifier ensembles and the DenseNets at the command line.
#   train-cls --arch densenet121 and resnet18 (one step each, 32 px) make two checkpoints;
#   eval-cls --ckpt A,B evaluates their ensemble: metrics.json has the two members (each with its
#   checkpoint and AUROC) beside the ensemble, predictions.csv one p_memberK column per member, and
#   the ensemble's p_abnormal is sigmoid(mean of the members' logits) of the members' columns.
#   A missing member is one error line naming it; an unknown --arch names the choices.
# Variables: SPINEXR (the program), WORK (a scratch folder, emptied first).
cmake_minimum_required(VERSION 3.24)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

function(fail msg)
  message(FATAL_ERROR "cls_ensemble: ${msg}")
endfunction()

function(run)
  execute_process(COMMAND "${SPINEXR}" ${ARGN} RESULT_VARIABLE r OUTPUT_VARIABLE o ERROR_VARIABLE e)
  set(rc "${r}" PARENT_SCOPE)
  set(out "${o}${e}" PARENT_SCOPE)
endfunction()

run(synth --out "${WORK}/data" --images 24 --test-images 8 --size 128 --seed 7 --threads 1 --quiet)
if(NOT rc EQUAL 0)
  fail("synth failed: ${out}")
endif()
foreach(arch densenet121 resnet18)
  run(train-cls --data "${WORK}/data" --arch ${arch} --size 32 --batch 8 --epochs 1 --max-steps 1 --warmup 0
      --precise-bn 0 --bootstrap 10 --threads 2 --workers 0 --quiet --out "${WORK}/${arch}")
  if(NOT rc EQUAL 0 OR NOT EXISTS "${WORK}/${arch}/last.safetensors")
    fail("train-cls --arch ${arch} failed: ${out}")
  endif()
endforeach()
set(A "${WORK}/densenet121/last.safetensors")
set(B "${WORK}/resnet18/last.safetensors")

run(eval-cls --data "${WORK}/data" --ckpt "${A},${B}" --split train --bootstrap 10 --workers 0 --quiet --out "${WORK}/eval")
if(NOT rc EQUAL 0)
  fail("eval-cls of the ensemble failed: ${out}")
endif()
if(NOT out MATCHES "member 1 \\(.*densenet121/last.safetensors\\): AUROC" OR NOT out MATCHES "ensemble of 2 \\(mean logit\\)")
  fail("eval-cls does not report the members beside the ensemble: ${out}")
endif()
file(READ "${WORK}/eval/metrics.json" js)
string(JSON n LENGTH "${js}" members)
if(NOT n EQUAL 2)
  fail("metrics.json has ${n} members, expected 2")
endif()
string(JSON c1 GET "${js}" members 0 checkpoint)
string(JSON auc1 GET "${js}" members 0 auroc)
string(JSON arch GET "${js}" arch)
if(NOT c1 STREQUAL "${A}" OR NOT arch STREQUAL "densenet121+resnet18" OR auc1 LESS 0 OR auc1 GREATER 1)
  fail("metrics.json members: checkpoint '${c1}', arch '${arch}', auroc ${auc1}")
endif()
file(STRINGS "${WORK}/eval/predictions.csv" rows)
list(GET rows 0 header)
if(NOT header STREQUAL "image_id,p_abnormal,label,p_member1,p_member2")
  fail("predictions.csv header: ${header}")
endif()
# (The exact arithmetic, sigmoid of the mean logit, is tested in tests/train/test_cls_ensemble.cpp;
# CMake has no floating point, so here: the ensemble lies between its two members.)
list(GET rows 1 row)
string(REPLACE "," ";" f "${row}")
list(GET f 1 p)
list(GET f 3 p1)
list(GET f 4 p2)
# Between the two members (the mean of logits lies between them) and not equal to both unless they agree.
if((p LESS p1 AND p LESS p2) OR (p GREATER p1 AND p GREATER p2))
  fail("the ensemble's p_abnormal ${p} is not between its members' ${p1} and ${p2}")
endif()

run(eval-cls --data "${WORK}/data" --ckpt "${A},${WORK}/missing.safetensors" --split train --out "${WORK}/eval2")
if(rc EQUAL 0 OR NOT out MATCHES "spinexr eval-cls: error: no classifier checkpoint at '${WORK}/missing.safetensors'")
  fail("a missing member is not one clear error: ${out}")
endif()
run(train-cls --data "${WORK}/data" --arch densenet100 --out "${WORK}/bad")
if(rc EQUAL 0 OR NOT out MATCHES "unknown classifier architecture 'densenet100' \\(resnet18 .* densenet201\\)")
  fail("an unknown --arch does not name the choices: ${out}")
endif()
