// Neural-network functional ops: convolution, pooling, normalization, losses,
// resampling. Argument order mirrors torch.nn.functional; the TypeScript front
// door fills defaults and validates.
#include "common.h"

namespace distillery {

static int64_t ReductionArg(const Napi::CallbackInfo& info, size_t i) {
  auto r = StrArg(info, i);
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw Napi::Error::New(info.Env(), "unknown reduction '" + r + "' (expected mean, sum or none)");
}

static c10::optional<at::Tensor> Opt(const Napi::CallbackInfo& info, size_t i) {
  auto t = OptTensorArg(info, i);
  return t ? c10::optional<at::Tensor>(*t) : c10::nullopt;
}

DFN(conv2d) {
  return Guard(info, [&] {
    return Wrap(info.Env(), Conv2d(TensorArg(info, 0), TensorArg(info, 1), Opt(info, 2), IntListArg(info, 3),
                                   IntListArg(info, 4), IntListArg(info, 5), IntArg(info, 6)));
  });
}
DFN(convTranspose2d) {
  return Guard(info, [&] {
    return Wrap(info.Env(),
                at::conv_transpose2d(TensorArg(info, 0), TensorArg(info, 1), Opt(info, 2), IntListArg(info, 3),
                                     IntListArg(info, 4), IntListArg(info, 5), IntArg(info, 6), IntListArg(info, 7)));
  });
}
DFN(linear) {
  return Guard(info, [&] { return Wrap(info.Env(), at::linear(TensorArg(info, 0), TensorArg(info, 1), Opt(info, 2))); });
}
DFN(avgPool2d) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::avg_pool2d(TensorArg(info, 0), IntListArg(info, 1), IntListArg(info, 2),
                                           IntListArg(info, 3), BoolArg(info, 4), BoolArg(info, 5)));
  });
}
DFN(maxPool2d) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::max_pool2d(TensorArg(info, 0), IntListArg(info, 1), IntListArg(info, 2),
                                           IntListArg(info, 3), IntListArg(info, 4), BoolArg(info, 5)));
  });
}
DFN(adaptiveAvgPool2d) {
  return Guard(info, [&] { return Wrap(info.Env(), at::adaptive_avg_pool2d(TensorArg(info, 0), IntListArg(info, 1))); });
}
// batchNorm(x, runningMean?, runningVar?, weight?, bias?, training, momentum, eps): in training mode the
// running statistics (when given) are updated in place, as in PyTorch.
DFN(batchNorm) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::batch_norm(TensorArg(info, 0), Opt(info, 3), Opt(info, 4), Opt(info, 1), Opt(info, 2),
                                           BoolArg(info, 5), NumArg(info, 6), NumArg(info, 7), true));
  });
}
DFN(groupNorm) {
  return Guard(info, [&] {
    return Wrap(info.Env(),
                at::group_norm(TensorArg(info, 0), IntArg(info, 1), Opt(info, 2), Opt(info, 3), NumArg(info, 4), true));
  });
}
DFN(normReluPool) {
  return Guard(info, [&] {
    return Wrap(info.Env(), NormReluPool(TensorArg(info, 0), IntArg(info, 1), TensorArg(info, 2), TensorArg(info, 3),
                                         NumArg(info, 4)));
  });
}
DFN(instanceNorm) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::instance_norm(TensorArg(info, 0), Opt(info, 3), Opt(info, 4), Opt(info, 1), Opt(info, 2),
                                              BoolArg(info, 5), NumArg(info, 6), NumArg(info, 7), true));
  });
}
DFN(layerNorm) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::layer_norm(TensorArg(info, 0), IntListArg(info, 1), Opt(info, 2), Opt(info, 3),
                                           NumArg(info, 4), true));
  });
}
DFN(softmax) { return Guard(info, [&] { return Wrap(info.Env(), at::softmax(TensorArg(info, 0), IntArg(info, 1))); }); }
DFN(logSoftmax) {
  return Guard(info, [&] { return Wrap(info.Env(), at::log_softmax(TensorArg(info, 0), IntArg(info, 1))); });
}
// crossEntropy(logits, target, weight?, reduction, ignoreIndex, labelSmoothing): integer targets are
// class indices, floating targets are class probabilities.
DFN(crossEntropy) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::cross_entropy_loss(TensorArg(info, 0), TensorArg(info, 1), Opt(info, 2),
                                                   ReductionArg(info, 3), IntArg(info, 4), NumArg(info, 5)));
  });
}
DFN(nllLoss) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::nll_loss_nd(TensorArg(info, 0), TensorArg(info, 1), Opt(info, 2), ReductionArg(info, 3),
                                            IntArg(info, 4)));
  });
}
DFN(mseLoss) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::mse_loss(TensorArg(info, 0), TensorArg(info, 1), ReductionArg(info, 2)));
  });
}
DFN(l1Loss) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::l1_loss(TensorArg(info, 0), TensorArg(info, 1), ReductionArg(info, 2)));
  });
}
DFN(klDiv) {
  return Guard(info, [&] {
    return Wrap(info.Env(),
                at::kl_div(TensorArg(info, 0), TensorArg(info, 1), ReductionArg(info, 2), BoolArg(info, 3)));
  });
}
DFN(oneHot) { return Guard(info, [&] { return Wrap(info.Env(), at::one_hot(TensorArg(info, 0), IntArg(info, 1))); }); }
// interpolate(x, outputSize[2], mode, alignCorners)
DFN(interpolate) {
  return Guard(info, [&] {
    const auto& x = TensorArg(info, 0);
    auto size = IntListArg(info, 1);
    auto mode = StrArg(info, 2);
    bool align = BoolArg(info, 3);
    if (mode == "nearest") return Wrap(info.Env(), at::upsample_nearest2d(x, size));
    if (mode == "bilinear") return Wrap(info.Env(), at::upsample_bilinear2d(x, size, align));
    if (mode == "bicubic") return Wrap(info.Env(), at::upsample_bicubic2d(x, size, align));
    throw Napi::Error::New(info.Env(), "unknown interpolation mode '" + mode + "' (expected nearest, bilinear or bicubic)");
  });
}
DFN(affineGrid) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::affine_grid_generator(TensorArg(info, 0), IntListArg(info, 1), BoolArg(info, 2)));
  });
}
// gridSample(x, grid, mode, paddingMode, alignCorners)
DFN(gridSample) {
  return Guard(info, [&] {
    auto mode = StrArg(info, 2), padding = StrArg(info, 3);
    int64_t m = mode == "bilinear" ? 0 : mode == "nearest" ? 1 : mode == "bicubic" ? 2 : -1;
    int64_t p = padding == "zeros" ? 0 : padding == "border" ? 1 : padding == "reflection" ? 2 : -1;
    if (m < 0) throw Napi::Error::New(info.Env(), "unknown grid sample mode '" + mode + "' (expected bilinear, nearest or bicubic)");
    if (p < 0) throw Napi::Error::New(info.Env(), "unknown padding mode '" + padding + "' (expected zeros, border or reflection)");
    return Wrap(info.Env(), at::grid_sampler(TensorArg(info, 0), TensorArg(info, 1), m, p, BoolArg(info, 4)));
  });
}
DFN(pixelShuffle) {
  return Guard(info, [&] { return Wrap(info.Env(), at::pixel_shuffle(TensorArg(info, 0), IntArg(info, 1))); });
}
DFN(pixelUnshuffle) {
  return Guard(info, [&] { return Wrap(info.Env(), at::pixel_unshuffle(TensorArg(info, 0), IntArg(info, 1))); });
}

void RegisterNNOps(Napi::Env env, Napi::Object e) {
  (void)env;
  EXPORT(e, conv2d); EXPORT(e, convTranspose2d); EXPORT(e, linear); EXPORT(e, avgPool2d); EXPORT(e, maxPool2d);
  EXPORT(e, adaptiveAvgPool2d); EXPORT(e, batchNorm); EXPORT(e, groupNorm); EXPORT(e, normReluPool); EXPORT(e, instanceNorm);
  EXPORT(e, layerNorm); EXPORT(e, softmax); EXPORT(e, logSoftmax); EXPORT(e, crossEntropy); EXPORT(e, nllLoss);
  EXPORT(e, mseLoss); EXPORT(e, l1Loss); EXPORT(e, klDiv); EXPORT(e, oneHot); EXPORT(e, interpolate);
  EXPORT(e, affineGrid); EXPORT(e, gridSample); EXPORT(e, pixelShuffle); EXPORT(e, pixelUnshuffle);
}

}  // namespace distillery
