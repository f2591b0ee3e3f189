// 2-D convolution whose derivatives of every order are convolutions again.
//
// Why: libtorch 1.13 differentiates convolution_backward (second order, as in
// gradient matching: DC/DSA) with _convolution_double_backward, which computes
// the input term as a transposed convolution through slow_conv_transpose2d
// (im2col, single-threaded gemm, no oneDNN): two thirds of a ConvNet's double
// backward time. Here the three linear maps of a convolution are autograd
// functions of their own, each differentiated in terms of the others:
//   y  = conv(x, w)            dx = input_grad(gy, w)     dw = weight_grad(gy, x)
//   input_grad(g, w):          dg = conv(ggx, w)          dw = weight_grad(g, ggx)
//   weight_grad(g, x):         dg = conv(x, ggw)          dx = input_grad(g, ggw)
// (from <g, conv(x, w)> = <input_grad(g, w), x> = <weight_grad(g, x), w>), and
// each is computed by at::convolution / at::convolution_backward with a single
// output, i.e. oneDNN on CPU. First-order cost is unchanged.
#include "common.h"

#include <torch/csrc/autograd/custom_function.h>

namespace distillery {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;
using IntVec = std::vector<int64_t>;

struct Geometry {
  IntVec stride, padding, dilation;
  int64_t groups;
};

void Save(AutogradContext* ctx, const Geometry& g) {
  ctx->saved_data["stride"] = g.stride;
  ctx->saved_data["padding"] = g.padding;
  ctx->saved_data["dilation"] = g.dilation;
  ctx->saved_data["groups"] = g.groups;
}

Geometry Load(AutogradContext* ctx) {
  return {ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
          ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["groups"].toInt()};
}

// A tensor of this shape whose values are never read (convolution_backward needs the
// shape, dtype and layout of the operand whose gradient is not requested).
at::Tensor ShapeOnly(at::IntArrayRef sizes, const at::Tensor& like) {
  return at::empty(sizes, like.options().memory_format(like.suggest_memory_format()));
}

at::Tensor InputGradRaw(const at::Tensor& g, const at::Tensor& w, at::IntArrayRef inputSizes, const Geometry& geo) {
  return std::get<0>(at::convolution_backward(g, ShapeOnly(inputSizes, g), w, c10::nullopt, geo.stride, geo.padding,
                                              geo.dilation, false, IntVec{0, 0}, geo.groups, {true, false, false}));
}

at::Tensor WeightGradRaw(const at::Tensor& g, const at::Tensor& x, at::IntArrayRef weightSizes, const Geometry& geo) {
  return std::get<1>(at::convolution_backward(g, x, ShapeOnly(weightSizes, x), c10::nullopt, geo.stride, geo.padding,
                                              geo.dilation, false, IntVec{0, 0}, geo.groups, {false, true, false}));
}

at::Tensor ConvApply(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const Geometry& geo);
// "No bias": libtorch 1.13's custom functions reject undefined tensor inputs, so an empty one stands in.
at::Tensor NoBias(const at::Tensor& like) { return at::empty({0}, like.options()); }
at::Tensor InputGradApply(const at::Tensor& g, const at::Tensor& w, const IntVec& inputSizes, const Geometry& geo);
at::Tensor WeightGradApply(const at::Tensor& g, const at::Tensor& x, const IntVec& weightSizes, const Geometry& geo);

struct Conv2dFunction : public Function<Conv2dFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b,
                            IntVec stride, IntVec padding, IntVec dilation, int64_t groups) {
    Geometry geo{stride, padding, dilation, groups};
    Save(ctx, geo);
    ctx->save_for_backward({x, w});
    return at::convolution(x, w, b.numel() > 0 ? c10::optional<at::Tensor>(b) : c10::nullopt, geo.stride, geo.padding,
                           geo.dilation, false, IntVec{0, 0}, geo.groups);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& w = saved[1];
    const auto& gy = grads[0];
    auto geo = Load(ctx);
    at::Tensor gx, gw, gb;
    if (gy.defined()) {
      if (ctx->needs_input_grad(0)) gx = InputGradApply(gy, w, x.sizes().vec(), geo);
      if (ctx->needs_input_grad(1)) gw = WeightGradApply(gy, x, w.sizes().vec(), geo);
      if (ctx->needs_input_grad(2)) gb = gy.sum(IntVec{0, 2, 3});
    }
    return {gx, gw, gb, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct InputGradFunction : public Function<InputGradFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& g, const at::Tensor& w, IntVec inputSizes,
                            IntVec stride, IntVec padding, IntVec dilation, int64_t groups) {
    Geometry geo{stride, padding, dilation, groups};
    Save(ctx, geo);
    ctx->save_for_backward({g, w});
    return InputGradRaw(g, w, inputSizes, geo);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& g = saved[0];
    const auto& w = saved[1];
    const auto& ggx = grads[0];
    auto geo = Load(ctx);
    at::Tensor dg, dw;
    if (ggx.defined()) {
      if (ctx->needs_input_grad(0)) dg = ConvApply(ggx, w, NoBias(w), geo);
      if (ctx->needs_input_grad(1)) dw = WeightGradApply(g, ggx, w.sizes().vec(), geo);
    }
    return {dg, dw, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct WeightGradFunction : public Function<WeightGradFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& g, const at::Tensor& x, IntVec weightSizes,
                            IntVec stride, IntVec padding, IntVec dilation, int64_t groups) {
    Geometry geo{stride, padding, dilation, groups};
    Save(ctx, geo);
    ctx->save_for_backward({g, x});
    return WeightGradRaw(g, x, weightSizes, geo);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& g = saved[0];
    const auto& x = saved[1];
    const auto& ggw = grads[0];
    auto geo = Load(ctx);
    at::Tensor dg, dx;
    if (ggw.defined()) {
      if (ctx->needs_input_grad(0)) dg = ConvApply(x, ggw, NoBias(x), geo);
      if (ctx->needs_input_grad(1)) dx = InputGradApply(g, ggw, x.sizes().vec(), geo);
    }
    return {dg, dx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor ConvApply(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const Geometry& geo) {
  return Conv2dFunction::apply(x, w, b, geo.stride, geo.padding, geo.dilation, geo.groups);
}
at::Tensor InputGradApply(const at::Tensor& g, const at::Tensor& w, const IntVec& inputSizes, const Geometry& geo) {
  return InputGradFunction::apply(g, w, inputSizes, geo.stride, geo.padding, geo.dilation, geo.groups);
}
at::Tensor WeightGradApply(const at::Tensor& g, const at::Tensor& x, const IntVec& weightSizes, const Geometry& geo) {
  return WeightGradFunction::apply(g, x, weightSizes, geo.stride, geo.padding, geo.dilation, geo.groups);
}

}  // namespace

at::Tensor Conv2d(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b, at::IntArrayRef stride,
                  at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  auto expand = [](at::IntArrayRef v) { return v.size() == 1 ? IntVec{v[0], v[0]} : v.vec(); };
  Geometry geo{expand(stride), expand(padding), expand(dilation), groups};
  // Without any gradient to track, skip the autograd function's bookkeeping.
  bool tracked = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b && b->requires_grad()));
  if (!tracked)
    return at::convolution(x, w, b, geo.stride, geo.padding, geo.dilation, false, IntVec{0, 0}, geo.groups);
  return ConvApply(x, w, b ? *b : NoBias(w), geo);
}

}  // namespace distillery
