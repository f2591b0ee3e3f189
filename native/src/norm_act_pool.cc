// Fused group norm (affine) + ReLU + 2x2 average pooling (stride 2): the block
// that follows every convolution of the reference ConvNet.
//
// Why: separately, the three ops make six passes over the largest activation
// of the network (for 256 MNIST images after the first conv: 256 x 128 x 32 x 32
// floats = 134 MB) and keep three copies of it for backward. Fused, the forward
// reads it once and writes the 4x smaller pooled map; backward reads it once and
// writes its gradient; only the input and per-group statistics are saved.
//
// Two layouts: NCHW (float32/float64) and channels-last (float32/float64/bfloat16,
// statistics in float), chosen by the input: channels-last input, or any bfloat16
// input, runs the channels-last kernels and gives channels-last output, so a
// ConvNet can stay in the layout and precision where oneDNN's convolutions are
// fastest (bfloat16 channels-last is ~2x float32 NCHW on CPUs with AVX512-BF16).
//
// First-order backward is a hand-written kernel. When the backward itself must
// be differentiable (create_graph: gradient matching differentiates through the
// gradient), the unfused ops are rebuilt from the saved input and differentiated
// by libtorch, so derivatives of any order stay correct.
#include "common.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

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

// Element loads/stores in the accumulation type. bfloat16 is converted with plain bit
// operations the compiler vectorises (c10::BFloat16's conversions made the kernel ~10x slower).
template <typename T>
struct Elem {
  static inline T Load(const T* p, int64_t i) { return p[i]; }
  static inline void Store(T* p, int64_t i, T v) { p[i] = v; }
};
template <>
struct Elem<at::BFloat16> {
  static inline float Load(const at::BFloat16* p, int64_t i) {
    const uint32_t bits = uint32_t(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  // Round to nearest even, as c10 does; NaN stays a (quiet) NaN.
  static inline void Store(at::BFloat16* p, int64_t i, float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    const uint16_t rounded = uint16_t((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    reinterpret_cast<uint16_t*>(p)[i] = v != v ? uint16_t(0x7FC0) : rounded;
  }
};

// NCHW: x is [N, C, H, W] contiguous, out [N, C, OH, OW]; statistics in the
// accumulation type A. (UseChannelsLast sends bfloat16 to the channels-last
// kernel; Elem only lets this one compile for it.)
template <typename T, typename A = at::opmath_type<T>>
void ForwardKernel(const T* x, const T* gamma, const T* beta, T* out, A* mean, A* rstd, const Geometry& s,
                   double eps) {
  using E = Elem<T>;
  const int64_t HW = s.H * s.W, OH = s.OH(), OW = s.OW(), n = s.groupSize();
  at::parallel_for(0, s.N * s.G, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; p++) {
      const T* xg = x + p * n;
      A sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < n; i++) sum += E::Load(xg, i);
      const A m = sum / A(n);
      A sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < n; i++) sq += (E::Load(xg, i) - m) * (E::Load(xg, i) - m);
      // An overflowing variance (inputs near float's limit, i.e. a diverged run) must not pass as
      // "constant input": NaN makes the divergence visible downstream, as libtorch's group norm does.
      const A r = std::isfinite(sq) ? A(1) / std::sqrt(sq / A(n) + A(eps)) : std::numeric_limits<A>::quiet_NaN();
      mean[p] = m;
      rstd[p] = r;
      const int64_t sample = p / s.G, group = p % s.G;
      for (int64_t cl = 0; cl < s.Cg(); cl++) {
        const int64_t c = group * s.Cg() + cl;
        const A a = E::Load(gamma, c) * r, b = E::Load(beta, c) - m * a;
        const T* xc = xg + cl * HW;
        T* oc = out + (sample * s.C + c) * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
          const T* r0 = xc + 2 * oh * s.W;
          const T* r1 = r0 + s.W;
          T* o = oc + oh * OW;
#pragma omp simd
          for (int64_t ow = 0; ow < OW; ow++) {
            const A y00 = a * E::Load(r0, 2 * ow) + b, y01 = a * E::Load(r0, 2 * ow + 1) + b;
            const A y10 = a * E::Load(r1, 2 * ow) + b, y11 = a * E::Load(r1, 2 * ow + 1) + b;
            // Written so that NaN passes through, as torch.relu does (NaN > 0 is false).
            E::Store(o, ow,
                     A(0.25) * ((y00 <= 0 ? A(0) : y00) + (y01 <= 0 ? A(0) : y01) + (y10 <= 0 ? A(0) : y10) +
                                (y11 <= 0 ? A(0) : y11)));
          }
        }
      }
    }
  });
}

// Channels-last: x is [N, H, W, C] in memory, out [N, OH, OW, C]. Per sample:
// per-channel sums, then per-group mean and (two-pass) variance, then the
// normalised, rectified, pooled output; every inner loop runs along C.
// mean/rstd: [N * G], accumulation type.
template <typename T, typename A = at::opmath_type<T>>
void ForwardKernelChannelsLast(const T* x, const T* gamma, const T* beta, T* out, A* mean, A* rstd,
                               const Geometry& s, double eps) {
  using E = Elem<T>;
  const int64_t C = s.C, HW = s.H * s.W, OH = s.OH(), OW = s.OW(), Cg = s.Cg(), n = s.groupSize();
  at::parallel_for(0, s.N, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> sums(C), centre(C), a(C), b(C);
    for (int64_t sample = begin; sample < end; sample++) {
      const T* xs = x + sample * HW * C;
      std::fill(sums.begin(), sums.end(), A(0));
      for (int64_t i = 0; i < HW; i++) {
        const T* px = xs + i * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) sums[c] += E::Load(px, c);
      }
      for (int64_t g = 0; g < s.G; g++) {
        A total = 0;
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) total += sums[c];
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) centre[c] = total / A(n);
      }
      std::fill(sums.begin(), sums.end(), A(0));
      for (int64_t i = 0; i < HW; i++) {
        const T* px = xs + i * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
          const A d = E::Load(px, c) - centre[c];
          sums[c] += d * d;
        }
      }
      for (int64_t g = 0; g < s.G; g++) {
        A sq = 0;
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) sq += sums[c];
        // As in ForwardKernel: an overflowing variance gives NaN, not "constant input".
        const A r = std::isfinite(sq) ? A(1) / std::sqrt(sq / A(n) + A(eps)) : std::numeric_limits<A>::quiet_NaN();
        mean[sample * s.G + g] = centre[g * Cg];
        rstd[sample * s.G + g] = r;
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) {
          a[c] = E::Load(gamma, c) * r;
          b[c] = E::Load(beta, c) - centre[c] * a[c];
        }
      }
      T* os = out + sample * OH * OW * C;
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          const T* p00 = xs + (2 * oh * s.W + 2 * ow) * C;
          const T* p01 = p00 + C;
          const T* p10 = p00 + s.W * C;
          const T* p11 = p10 + C;
          T* o = os + (oh * OW + ow) * C;
#pragma omp simd
          for (int64_t c = 0; c < C; c++) {
            const A y00 = a[c] * E::Load(p00, c) + b[c], y01 = a[c] * E::Load(p01, c) + b[c];
            const A y10 = a[c] * E::Load(p10, c) + b[c], y11 = a[c] * E::Load(p11, c) + b[c];
            E::Store(o, c,
                     A(0.25) * ((y00 <= 0 ? A(0) : y00) + (y01 <= 0 ? A(0) : y01) + (y10 <= 0 ? A(0) : y10) +
                                (y11 <= 0 ? A(0) : y11)));
          }
        }
    }
  });
}

// Channels-last backward, the same formulas as BackwardKernel: per sample, pass 1
// sums dy and dy * xhat per channel over the pooled pixels; pass 2 writes
// dx = r * (gamma * dy - A / n - xhat * B / n) for every input pixel. The
// per-pixel loops over C take restrict pointers, and the addon is compiled with
// -fno-trapping-math: otherwise GCC keeps the ReLU mask as a branch and the loops
// scalar (12x slower).
template <typename T, typename A>
inline void SumPixelGradients(const T* __restrict x, const T* __restrict gout, const A* __restrict a,
                              const A* __restrict b, const A* __restrict m, A* __restrict s1, A* __restrict s2,
                              int64_t C) {
  using E = Elem<T>;
#pragma omp simd
  for (int64_t c = 0; c < C; c++) {
    const A xv = E::Load(x, c), g = A(0.25) * E::Load(gout, c);
    const A d = a[c] * xv + b[c] > 0 ? g : A(0);
    s1[c] += d;
    s2[c] += d * (xv - m[c]);
  }
}

// gout == nullptr: a pixel outside the pooled region (odd H or W), statistics terms only.
template <typename T, typename A>
inline void PixelInputGradient(const T* __restrict x, const T* __restrict gout, const A* __restrict a,
                               const A* __restrict b, const A* __restrict m, const A* __restrict r,
                               const A* __restrict An, const A* __restrict Bn, T* __restrict gx, int64_t C) {
  using E = Elem<T>;
  if (gout) {
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
      const A xv = E::Load(x, c), g = A(0.25) * E::Load(gout, c);
      const A d = a[c] * xv + b[c] > 0 ? g : A(0);
      E::Store(gx, c, a[c] * d - r[c] * (An[c] + (xv - m[c]) * r[c] * Bn[c]));
    }
  } else {
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
      const A xv = E::Load(x, c);
      E::Store(gx, c, -r[c] * (An[c] + (xv - m[c]) * r[c] * Bn[c]));
    }
  }
}

template <typename T, typename A = at::opmath_type<T>>
void BackwardKernelChannelsLast(const T* x, const T* gamma, const T* beta, const A* mean, const A* rstd,
                                const T* gout, T* gx, A* dgammaPart, A* dbetaPart, const Geometry& s) {
  using E = Elem<T>;
  const int64_t C = s.C, OH = s.OH(), OW = s.OW(), Cg = s.Cg(), n = s.groupSize();
  at::parallel_for(0, s.N, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> m(C), r(C), a(C), b(C), s1(C), s2(C), An(C), Bn(C);
    for (int64_t sample = begin; sample < end; sample++) {
      const T* xs = x + sample * s.H * s.W * C;
      const T* gos = gout + sample * OH * OW * C;
      T* gxs = gx + sample * s.H * s.W * C;
      for (int64_t c = 0; c < C; c++) {
        m[c] = mean[sample * s.G + c / Cg];
        r[c] = rstd[sample * s.G + c / Cg];
        a[c] = E::Load(gamma, c) * r[c];  // also gamma * r, the dy factor of dx
        b[c] = E::Load(beta, c) - m[c] * a[c];
      }
      std::fill(s1.begin(), s1.end(), A(0));
      std::fill(s2.begin(), s2.end(), A(0));
      for (int64_t h = 0; h < 2 * OH; h++)
        for (int64_t w = 0; w < 2 * OW; w++)
          SumPixelGradients<T, A>(xs + (h * s.W + w) * C, gos + ((h / 2) * OW + w / 2) * C, a.data(), b.data(),
                                  m.data(), s1.data(), s2.data(), C);
      for (int64_t g = 0; g < s.G; g++) {
        A sumA = 0, sumB = 0;
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) {
          s2[c] *= r[c];  // sum(dy * xhat)
          dbetaPart[sample * C + c] = s1[c];
          dgammaPart[sample * C + c] = s2[c];
          sumA += E::Load(gamma, c) * s1[c];
          sumB += E::Load(gamma, c) * s2[c];
        }
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) {
          An[c] = sumA / A(n);
          Bn[c] = sumB / A(n);
        }
      }
      for (int64_t h = 0; h < s.H; h++)
        for (int64_t w = 0; w < s.W; w++) {
          const bool pooled = h < 2 * OH && w < 2 * OW;
          PixelInputGradient<T, A>(xs + (h * s.W + w) * C, pooled ? gos + ((h / 2) * OW + w / 2) * C : nullptr,
                                   a.data(), b.data(), m.data(), r.data(), An.data(), Bn.data(),
                                   gxs + (h * s.W + w) * C, C);
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

// NCHW backward; UseChannelsLast sends bfloat16 to the channels-last kernels, so
// only float32/float64 (statistics in the same type) arrive here.
template <typename T>
void BackwardNchw(const at::Tensor& x, const at::Tensor& g, const at::Tensor& b, const at::Tensor& mean,
                  const at::Tensor& rstd, const at::Tensor& gout, at::Tensor& gx, at::Tensor& dgammaPart,
                  at::Tensor& dbetaPart, const Geometry& s) {
  if constexpr (std::is_same_v<T, at::opmath_type<T>>) {
    BackwardKernel<T>(x.data_ptr<T>(), g.data_ptr<T>(), b.data_ptr<T>(), mean.data_ptr<T>(), rstd.data_ptr<T>(),
                      gout.data_ptr<T>(), gx.data_ptr<T>(), dgammaPart.data_ptr<T>(), dbetaPart.data_ptr<T>(), s);
  } else {
    TORCH_CHECK(false, "normReluPool: no NCHW backward for ", x.scalar_type());
  }
}

// Channels-last input, or any bfloat16 input, takes the channels-last kernels.
bool UseChannelsLast(const at::Tensor& x) {
  return x.scalar_type() == at::kBFloat16 || (!x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast));
}

// The forward in the layout UseChannelsLast picks for `x` (already in that layout);
// per-group statistics go to mean/rstd when given.
at::Tensor Forward(const at::Tensor& x, const at::Tensor& gamma, const at::Tensor& beta, int64_t groups, double eps,
                   bool channelsLast, at::Tensor* mean, at::Tensor* rstd) {
  const auto s = GeometryOf(x, groups);
  auto out = at::empty({s.N, s.C, s.OH(), s.OW()},
                       x.options().memory_format(channelsLast ? at::MemoryFormat::ChannelsLast
                                                              : at::MemoryFormat::Contiguous));
  auto g = gamma.contiguous(), b = beta.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "normReluPool", [&] {
    using A = at::opmath_type<scalar_t>;
    const auto statOptions = x.options().dtype(c10::CppTypeToScalarType<A>::value).memory_format(c10::nullopt);
    at::Tensor m = at::empty({s.N * s.G}, statOptions), r = at::empty({s.N * s.G}, statOptions);
    if (channelsLast) {
      ForwardKernelChannelsLast<scalar_t>(x.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                                          out.data_ptr<scalar_t>(), m.data_ptr<A>(), r.data_ptr<A>(), s, eps);
    } else {
      ForwardKernel<scalar_t>(x.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                              out.data_ptr<scalar_t>(), m.data_ptr<A>(), r.data_ptr<A>(), s, eps);
    }
    if (mean) *mean = m;
    if (rstd) *rstd = r;
  });
  return out;
}

struct NormReluPoolFunction : public Function<NormReluPoolFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& gamma,
                            const at::Tensor& beta, int64_t groups, double eps) {
    const bool channelsLast = UseChannelsLast(input);
    auto x = input.contiguous(channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    at::Tensor mean, rstd;
    auto out = Forward(x, gamma, beta, groups, eps, channelsLast, &mean, &rstd);
    ctx->save_for_backward({x, gamma, beta, mean, rstd});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["channelsLast"] = channelsLast;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& gamma = saved[1];
    const auto& beta = saved[2];
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const double eps = ctx->saved_data["eps"].toDouble();
    const bool channelsLast = ctx->saved_data["channelsLast"].toBool();
    auto gout = grads[0];
    if (!gout.defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    if (at::GradMode::is_enabled()) {
      auto d = DifferentiableBackward(x, gamma, beta, gout, groups, eps);
      return {d[0], d[1], d[2], at::Tensor(), at::Tensor()};
    }
    const auto s = GeometryOf(x, groups);
    gout = gout.contiguous(channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    auto gx = at::empty_like(x);
    const auto& mean = saved[3];
    const auto& rstd = saved[4];
    auto dgammaPart = at::empty({s.N, s.C}, mean.options());
    auto dbetaPart = at::empty({s.N, s.C}, mean.options());
    auto g = gamma.contiguous(), b = beta.contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "normReluPoolBackward", [&] {
      using A = at::opmath_type<scalar_t>;
      if (channelsLast) {
        BackwardKernelChannelsLast<scalar_t>(x.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(),
                                             mean.data_ptr<A>(), rstd.data_ptr<A>(), gout.data_ptr<scalar_t>(),
                                             gx.data_ptr<scalar_t>(), dgammaPart.data_ptr<A>(),
                                             dbetaPart.data_ptr<A>(), s);
      } else {
        BackwardNchw<scalar_t>(x, g, b, mean, rstd, gout, gx, dgammaPart, dbetaPart, s);
      }
    });
    return {gx, dgammaPart.sum(0).to(gamma.scalar_type()), dbetaPart.sum(0).to(beta.scalar_type()), at::Tensor(),
            at::Tensor()};
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
  const auto dtype = x.scalar_type();
  if (dtype != at::kFloat && dtype != at::kDouble && dtype != at::kBFloat16)
    return at::avg_pool2d(at::relu(at::group_norm(x, groups, gamma, beta, eps)), {2, 2}, {2, 2});
  const bool tracked = at::GradMode::is_enabled() && (x.requires_grad() || gamma.requires_grad() || beta.requires_grad());
  if (tracked) return NormReluPoolFunction::apply(x, gamma, beta, groups, eps);
  // Without autograd, skip the function's bookkeeping and the statistics it saves.
  const bool channelsLast = UseChannelsLast(x);
  return Forward(x.contiguous(channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous), gamma,
                 beta, groups, eps, channelsLast, nullptr, nullptr);
}

}  // namespace distillery
