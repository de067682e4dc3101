#pragma once
/// The students of the zoo in one include: logistic regression and MLP (synthetic data), the CNN
/// of "metaparameter-optimization-in-kd", ConvTiny and ConvVeryTiny of
/// "multilayer-vid-distillation". The teachers are in resnet.h; `make_model` (classifier.h)
/// builds any of them by name.
#include "metadistill/models/cnn.h"
#include "metadistill/models/conv_tiny.h"
#include "metadistill/models/linear.h"
