// Fused group norm (affine) + ReLU + 2x2 average pooling (stride 2): the block
// that follows every convolution of the reference ConvNet.
//
// Why: separately, the three ops make six passes over the largest activation
// of the network (for 256 MNIST images after the first conv: 256 x 128 x 32 x 32
// floats = 134 MB) and keep three copies of it for backward. Fused, the forward
// reads it once and writes the 4x smaller pooled map; backward reads it once and
// writes its gradient; only the input and per-group statistics are saved.
//
// First-order backward is a hand-written kernel. When the backward itself must
// be differentiable (create_graph: gradient matching differentiates through the
// gradient), the unfused ops are rebuilt from the saved input and differentiated
// by libtorch, so derivatives of any order stay correct.
#include "common.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>

namespace distillery {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

struct Geometry {
  int64_t N, C, H, W, G;
  int64_t Cg() const { return C / G; }
  int64_t OH() const { return H / 2; }
  int64_t OW() const { return W / 2; }
  int64_t groupSize() const { return Cg() * H * W; }
};

Geometry GeometryOf(const at::Tensor& x, int64_t groups) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), groups};
}

template <typename T>
void ForwardKernel(const T* x, const T* gamma, const T* beta, T* out, T* mean, T* rstd, const Geometry& s,
                   double eps) {
  const int64_t HW = s.H * s.W, OH = s.OH(), OW = s.OW(), n = s.groupSize();
  at::parallel_for(0, s.N * s.G, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; p++) {
      const T* xg = x + p * n;
      T sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; i++) sum += xg[i];
      const T m = sum / T(n);
      T sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < n; i++) sq += (xg[i] - m) * (xg[i] - m);
      // An overflowing variance (inputs near float's limit, i.e. a diverged run) must not pass as
      // "constant input": NaN makes the divergence visible downstream, as libtorch's group norm does.
      const T r = std::isfinite(sq) ? T(1) / std::sqrt(sq / T(n) + T(eps)) : std::numeric_limits<T>::quiet_NaN();
      mean[p] = m;
      rstd[p] = r;
      const int64_t sample = p / s.G, group = p % s.G;
      for (int64_t cl = 0; cl < s.Cg(); cl++) {
        const int64_t c = group * s.Cg() + cl;
        const T a = gamma[c] * r, b = beta[c] - m * a;
        const T* xc = xg + cl * HW;
        T* oc = out + (sample * s.C + c) * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
          const T* r0 = xc + 2 * oh * s.W;
          const T* r1 = r0 + s.W;
          T* o = oc + oh * OW;
#pragma omp simd
          for (int64_t ow = 0; ow < OW; ow++) {
            const T y00 = a * r0[2 * ow] + b, y01 = a * r0[2 * ow + 1] + b;
            const T y10 = a * r1[2 * ow] + b, y11 = a * r1[2 * ow + 1] + b;
            // Written so that NaN passes through, as torch.relu does (NaN > 0 is false).
            o[ow] = T(0.25) * ((y00 <= 0 ? T(0) : y00) + (y01 <= 0 ? T(0) : y01) + (y10 <= 0 ? T(0) : y10) +
                               (y11 <= 0 ? T(0) : y11));
          }
        }
      }
    }
  });
}

// Calls fn(inputRow, pooledGradientRow, rowOffset) for each input row of one channel
// plane that the pooling covers (rows past 2*OH, for odd H, get dy = 0 and are skipped).
template <typename T, typename Fn>
inline void ForEachPooledRow(const T* xc, const T* goc, const Geometry& s, Fn&& fn) {
  for (int64_t oh = 0; oh < s.OH(); oh++)
    for (int64_t dh = 0; dh < 2; dh++) {
      const int64_t row = (2 * oh + dh) * s.W;
      fn(xc + row, goc + oh * s.OW(), row);
    }
}

template <typename T>
void BackwardKernel(const T* x, const T* gamma, const T* beta, const T* mean, const T* rstd, const T* gout, T* gx,
                    T* dgammaPart, T* dbetaPart, const Geometry& s) {
  const int64_t HW = s.H * s.W, OW = s.OW(), n = s.groupSize();
  const bool ragged = s.H % 2 || s.W % 2;
  at::parallel_for(0, s.N * s.G, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; p++) {
      const T m = mean[p], r = rstd[p];
      const int64_t sample = p / s.G, group = p % s.G;
      const T* xg = x + p * n;
      T* gxg = gx + p * n;
      // Pass 1: per channel, sum(dy) and sum(dy * xhat); per group, the gamma-weighted sums.
      T A = 0, B = 0;
      for (int64_t cl = 0; cl < s.Cg(); cl++) {
        const int64_t c = group * s.Cg() + cl;
        const T a = gamma[c] * r, b = beta[c] - m * a;
        const T* goc = gout + (sample * s.C + c) * s.OH() * OW;
        T s1 = 0, s2 = 0;
        ForEachPooledRow<T>(xg + cl * HW, goc, s, [&](const T* xr, const T* go, int64_t) {
#pragma omp simd reduction(+ : s1, s2)
          for (int64_t ow = 0; ow < OW; ow++) {
            const T g = T(0.25) * go[ow];
            const T x0 = xr[2 * ow], x1 = xr[2 * ow + 1];
            const T d0 = a * x0 + b > 0 ? g : T(0), d1 = a * x1 + b > 0 ? g : T(0);
            s1 += d0 + d1;
            s2 += d0 * (x0 - m) + d1 * (x1 - m);
          }
        });
        s2 *= r;  // sum(dy * xhat)
        dbetaPart[sample * s.C + c] = s1;
        dgammaPart[sample * s.C + c] = s2;
        A += gamma[c] * s1;
        B += gamma[c] * s2;
      }
      // Pass 2: dx = r * (gamma * dy - A / n - xhat * B / n).
      const T An = A / T(n), Bn = B / T(n);
      for (int64_t cl = 0; cl < s.Cg(); cl++) {
        const int64_t c = group * s.Cg() + cl;
        const T a = gamma[c] * r, b = beta[c] - m * a, gr = gamma[c] * r;
        const T* xc = xg + cl * HW;
        T* gxc = gxg + cl * HW;
        if (ragged) {  // pixels outside the pooled region get only the statistics terms
#pragma omp simd
          for (int64_t i = 0; i < HW; i++) gxc[i] = -r * (An + (xc[i] - m) * r * Bn);
        }
        const T* goc = gout + (sample * s.C + c) * s.OH() * OW;
        ForEachPooledRow<T>(xc, goc, s, [&](const T* xr, const T* go, int64_t row) {
          T* out = gxc + row;
#pragma omp simd
          for (int64_t ow = 0; ow < OW; ow++) {
            const T g = T(0.25) * go[ow];
            const T x0 = xr[2 * ow], x1 = xr[2 * ow + 1];
            const T d0 = a * x0 + b > 0 ? g : T(0), d1 = a * x1 + b > 0 ? g : T(0);
            out[2 * ow] = gr * d0 - r * (An + (x0 - m) * r * Bn);
            out[2 * ow + 1] = gr * d1 - r * (An + (x1 - m) * r * Bn);
          }
        });
      }
    }
  });
}

// The backward when it must itself be differentiable (create_graph): rebuild the
// unfused graph from the saved inputs and differentiate it with create_graph, so
// higher orders use libtorch's own group-norm double backward.
variable_list DifferentiableBackward(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta,
                                     const at::Tensor& gout, int64_t groups, double eps) {
  const at::Tensor* all[3] = {&x, &gamma, &beta};
  std::vector<at::Tensor> inputs;
  for (auto* t : all)
    if (t->requires_grad()) inputs.push_back(*t);
  variable_list result(3);
  if (inputs.empty()) return result;
  auto out = at::avg_pool2d(at::relu(at::group_norm(x, groups, gamma, beta, eps)), {2, 2}, {2, 2});
  auto grads = torch::autograd::grad({out}, inputs, {gout}, /*retain_graph=*/true, /*create_graph=*/true,
                                     /*allow_unused=*/true);
  size_t k = 0;
  for (size_t i = 0; i < 3; i++)
    if (all[i]->requires_grad()) result[i] = grads[k++];
  return result;
}

struct NormReluPoolFunction : public Function<NormReluPoolFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& gamma,
                            const at::Tensor& beta, int64_t groups, double eps) {
    auto x = input.contiguous();
    const auto s = GeometryOf(x, groups);
    auto out = at::empty({s.N, s.C, s.OH(), s.OW()}, x.options());
    auto mean = at::empty({s.N * s.G}, x.options());
    auto rstd = at::empty({s.N * s.G}, x.options());
    auto g = gamma.contiguous(), b = beta.contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "normReluPool", [&] {
      ForwardKernel<scalar_t>(x.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                              out.data_ptr<scalar_t>(), mean.data_ptr<scalar_t>(), rstd.data_ptr<scalar_t>(), s, eps);
    });
    ctx->save_for_backward({x, gamma, beta, mean, rstd});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["eps"] = eps;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& gamma = saved[1];
    const auto& beta = saved[2];
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const double eps = ctx->saved_data["eps"].toDouble();
    auto gout = grads[0];
    if (!gout.defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    if (at::GradMode::is_enabled()) {
      auto d = DifferentiableBackward(x, gamma, beta, gout, groups, eps);
      return {d[0], d[1], d[2], at::Tensor(), at::Tensor()};
    }
    const auto s = GeometryOf(x, groups);
    gout = gout.contiguous();
    auto gx = at::empty_like(x);
    auto dgammaPart = at::empty({s.N, s.C}, x.options());
    auto dbetaPart = at::empty({s.N, s.C}, x.options());
    auto g = gamma.contiguous(), b = beta.contiguous();
    const auto& mean = saved[3];
    const auto& rstd = saved[4];
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "normReluPoolBackward", [&] {
      BackwardKernel<scalar_t>(x.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                               mean.data_ptr<scalar_t>(), rstd.data_ptr<scalar_t>(), gout.data_ptr<scalar_t>(),
                               gx.data_ptr<scalar_t>(), dgammaPart.data_ptr<scalar_t>(),
                               dbetaPart.data_ptr<scalar_t>(), s);
    });
    return {gx, dgammaPart.sum(0), dbetaPart.sum(0), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor NormReluPool(const at::Tensor& x, int64_t groups, const at::Tensor& gamma, const at::Tensor& beta,
                        double eps) {
  TORCH_CHECK(x.dim() == 4, "normReluPool: expected input [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(x.size(1) % groups == 0, "normReluPool: channels (", x.size(1), ") must be divisible by groups (",
              groups, ")");
  TORCH_CHECK(x.size(2) >= 2 && x.size(3) >= 2, "normReluPool: spatial size must be at least 2x2, got ", x.sizes());
  TORCH_CHECK(gamma.numel() == x.size(1) && beta.numel() == x.size(1),
              "normReluPool: weight and bias need one value per channel (", x.size(1), ")");
  TORCH_CHECK(x.device().is_cpu(), "normReluPool: CPU tensors only (use the separate ops on other devices)");
  TORCH_CHECK(gamma.scalar_type() == x.scalar_type() && beta.scalar_type() == x.scalar_type(),
              "normReluPool: weight and bias must have the input's dtype");
  return NormReluPoolFunction::apply(x, gamma, beta, groups, eps);
}

}  // namespace distillery
