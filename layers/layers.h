// Every layer in one include.
#pragma once
#include "layers/activation.h"
#include "layers/attention.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/layer_norm.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/module.h"
#include "layers/pooling.h"
#include "layers/roi_align.h"
#include "layers/upsample.h"
