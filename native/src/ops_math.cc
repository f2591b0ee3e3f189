// Elementwise arithmetic (with broadcasting and scalar operands), activations,
// reductions, in-place updates used by optimizers, and linear algebra.
#include "common.h"

namespace distillery {

// A binary op whose second operand is a tensor or a number.
#define BINARY(name, tensorExpr, scalarExpr)                             \
  DFN(name) {                                                            \
    return Guard(info, [&] {                                             \
      const auto& a = TensorArg(info, 0);                                \
      if (IsNumber(info, 1)) {                                           \
        at::Scalar b(NumArg(info, 1));                                   \
        return Wrap(info.Env(), scalarExpr);                             \
      }                                                                  \
      const auto& b = TensorArg(info, 1);                                \
      return Wrap(info.Env(), tensorExpr);                               \
    });                                                                  \
  }
#define UNARY(name, expr) \
  DFN(name) { return Guard(info, [&] { const auto& a = TensorArg(info, 0); return Wrap(info.Env(), expr); }); }

static double AlphaArg(const Napi::CallbackInfo& info, size_t i) { return IsAbsent(info[i]) ? 1.0 : NumArg(info, i); }

BINARY(add, at::add(a, b, AlphaArg(info, 2)), at::add(a, b, AlphaArg(info, 2)))
BINARY(sub, at::sub(a, b, AlphaArg(info, 2)), at::sub(a, b, AlphaArg(info, 2)))
BINARY(mul, at::mul(a, b), at::mul(a, b))
BINARY(div, at::div(a, b), at::div(a, b))
BINARY(pow, at::pow(a, b), at::pow(a, b))
BINARY(remainder, at::remainder(a, b), at::remainder(a, b))
BINARY(maximum, at::maximum(a, b), at::clamp_min(a, b))
BINARY(minimum, at::minimum(a, b), at::clamp_max(a, b))
BINARY(eq, at::eq(a, b), at::eq(a, b))
BINARY(ne, at::ne(a, b), at::ne(a, b))
BINARY(lt, at::lt(a, b), at::lt(a, b))
BINARY(le, at::le(a, b), at::le(a, b))
BINARY(gt, at::gt(a, b), at::gt(a, b))
BINARY(ge, at::ge(a, b), at::ge(a, b))
// rsub(a, number): number - a.
DFN(rsub) { return Guard(info, [&] { return Wrap(info.Env(), at::rsub(TensorArg(info, 0), NumArg(info, 1))); }); }
DFN(logicalAnd) { return Guard(info, [&] { return Wrap(info.Env(), at::logical_and(TensorArg(info, 0), TensorArg(info, 1))); }); }
DFN(logicalOr) { return Guard(info, [&] { return Wrap(info.Env(), at::logical_or(TensorArg(info, 0), TensorArg(info, 1))); }); }
DFN(logicalXor) { return Guard(info, [&] { return Wrap(info.Env(), at::logical_xor(TensorArg(info, 0), TensorArg(info, 1))); }); }
UNARY(logicalNot, at::logical_not(a))
UNARY(neg, at::neg(a))
UNARY(acos, at::acos(a))
UNARY(abs, at::abs(a))
UNARY(exp, at::exp(a))
UNARY(log, at::log(a))
UNARY(log1p, at::log1p(a))
UNARY(sqrt, at::sqrt(a))
UNARY(rsqrt, at::rsqrt(a))
UNARY(square, at::square(a))
UNARY(reciprocal, at::reciprocal(a))
UNARY(sin, at::sin(a))
UNARY(cos, at::cos(a))
UNARY(sign, at::sign(a))
UNARY(floor, at::floor(a))
UNARY(ceil, at::ceil(a))
UNARY(round, at::round(a))
UNARY(isnan, at::isnan(a))
UNARY(isfinite, at::isfinite(a))
UNARY(relu, at::relu(a))
UNARY(sigmoid, at::sigmoid(a))
UNARY(tanh, at::tanh(a))
UNARY(silu, at::silu(a))
DFN(gelu) {
  return Guard(info, [&] { return Wrap(info.Env(), at::gelu(TensorArg(info, 0), BoolArg(info, 1) ? "tanh" : "none")); });
}
DFN(leakyRelu) { return Guard(info, [&] { return Wrap(info.Env(), at::leaky_relu(TensorArg(info, 0), NumArg(info, 1))); }); }
DFN(softplus) {
  return Guard(info, [&] { return Wrap(info.Env(), at::softplus(TensorArg(info, 0), NumArg(info, 1), NumArg(info, 2))); });
}
DFN(clamp) {
  return Guard(info, [&] {
    auto lo = OptNumArg(info, 1), hi = OptNumArg(info, 2);
    c10::optional<at::Scalar> l, h;
    if (lo) l = at::Scalar(*lo);
    if (hi) h = at::Scalar(*hi);
    return Wrap(info.Env(), at::clamp(TensorArg(info, 0), l, h));
  });
}
DFN(lerp) {
  return Guard(info, [&] { return Wrap(info.Env(), at::lerp(TensorArg(info, 0), TensorArg(info, 1), NumArg(info, 2))); });
}

// ---- reductions: (t, dims|null, keepdim) ----
static c10::optional<at::ScalarType> OptDType(const Napi::CallbackInfo& info, size_t i) {
  if (IsAbsent(info[i])) return c10::nullopt;
  return DTypeArg(info, i);
}
DFN(sum) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    auto dims = OptIntListArg(info, 1);
    if (!dims) return Wrap(info.Env(), at::sum(t, OptDType(info, 3)));
    return Wrap(info.Env(), at::sum(t, *dims, BoolArg(info, 2), OptDType(info, 3)));
  });
}
DFN(mean) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    auto dims = OptIntListArg(info, 1);
    if (!dims) return Wrap(info.Env(), at::mean(t));
    return Wrap(info.Env(), at::mean(t, *dims, BoolArg(info, 2)));
  });
}
DFN(prod) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    auto dim = OptIntArg(info, 1);
    if (!dim) return Wrap(info.Env(), at::prod(t));
    return Wrap(info.Env(), at::prod(t, *dim, BoolArg(info, 2)));
  });
}
// var/std(t, dims|null, correction, keepdim)
DFN(var) {
  return Guard(info, [&] {
    auto dims = OptIntListArg(info, 1);
    c10::optional<at::IntArrayRef> d;
    if (dims) d = at::IntArrayRef(*dims);
    return Wrap(info.Env(), at::var(TensorArg(info, 0), d, c10::optional<int64_t>(IntArg(info, 2)), BoolArg(info, 3)));
  });
}
DFN(std) {
  return Guard(info, [&] {
    auto dims = OptIntListArg(info, 1);
    c10::optional<at::IntArrayRef> d;
    if (dims) d = at::IntArrayRef(*dims);
    return Wrap(info.Env(), at::std(TensorArg(info, 0), d, c10::optional<int64_t>(IntArg(info, 2)), BoolArg(info, 3)));
  });
}
// max/min(t) -> tensor; max/min(t, dim, keepdim) -> [values, indices]
DFN(max) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    if (IsAbsent(info[1])) return Wrap(info.Env(), t.max());
    auto r = t.max(IntArg(info, 1), BoolArg(info, 2));
    return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
DFN(min) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    if (IsAbsent(info[1])) return Wrap(info.Env(), t.min());
    auto r = t.min(IntArg(info, 1), BoolArg(info, 2));
    return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
DFN(argmax) {
  return Guard(info, [&] { return Wrap(info.Env(), at::argmax(TensorArg(info, 0), OptIntArg(info, 1), BoolArg(info, 2))); });
}
DFN(argmin) {
  return Guard(info, [&] { return Wrap(info.Env(), at::argmin(TensorArg(info, 0), OptIntArg(info, 1), BoolArg(info, 2))); });
}
// norm(t, p, dims|null, keepdim)
DFN(norm) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    at::Scalar p(NumArg(info, 1));
    auto dims = OptIntListArg(info, 2);
    if (!dims) return Wrap(info.Env(), at::norm(t, p));
    return Wrap(info.Env(), at::norm(t, p, *dims, BoolArg(info, 3)));
  });
}
DFN(logsumexp) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::logsumexp(TensorArg(info, 0), IntListArg(info, 1), BoolArg(info, 2)));
  });
}
DFN(cumsum) { return Guard(info, [&] { return Wrap(info.Env(), at::cumsum(TensorArg(info, 0), IntArg(info, 1))); }); }
DFN(all) { return Guard(info, [&] { return Wrap(info.Env(), at::all(TensorArg(info, 0))); }); }
DFN(any) { return Guard(info, [&] { return Wrap(info.Env(), at::any(TensorArg(info, 0))); }); }
// topk(t, k, dim, largest) -> [values, indices]
DFN(topk) {
  return Guard(info, [&] {
    auto r = at::topk(TensorArg(info, 0), IntArg(info, 1), IntArg(info, 2), BoolArg(info, 3));
    return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
// sort(t, dim, descending) -> [values, indices]
DFN(sort) {
  return Guard(info, [&] {
    auto r = at::sort(TensorArg(info, 0), IntArg(info, 1), BoolArg(info, 2));
    return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}

// ---- in-place updates (optimizers, buffers); they return nothing ----
#define INPLACE(name, stmt)                        \
  DFN(name) {                                      \
    return Guard(info, [&] {                       \
      auto a = TensorArg(info, 0);                 \
      stmt;                                        \
      return info.Env().Undefined();               \
    });                                            \
  }
INPLACE(add_, IsNumber(info, 1) ? a.add_(NumArg(info, 1)) : a.add_(TensorArg(info, 1), AlphaArg(info, 2)))
INPLACE(sub_, IsNumber(info, 1) ? a.sub_(NumArg(info, 1)) : a.sub_(TensorArg(info, 1), AlphaArg(info, 2)))
INPLACE(mul_, IsNumber(info, 1) ? a.mul_(NumArg(info, 1)) : a.mul_(TensorArg(info, 1)))
INPLACE(div_, IsNumber(info, 1) ? a.div_(NumArg(info, 1)) : a.div_(TensorArg(info, 1)))
INPLACE(addcmul_, a.addcmul_(TensorArg(info, 1), TensorArg(info, 2), NumArg(info, 3)))
INPLACE(addcdiv_, a.addcdiv_(TensorArg(info, 1), TensorArg(info, 2), NumArg(info, 3)))
INPLACE(lerp_, a.lerp_(TensorArg(info, 1), NumArg(info, 2)))
INPLACE(copy_, a.copy_(TensorArg(info, 1)))
INPLACE(zero_, a.zero_())
INPLACE(fill_, a.fill_(NumArg(info, 1)))
INPLACE(sqrt_, a.sqrt_())
INPLACE(clamp_, a.clamp_(OptNumArg(info, 1) ? c10::optional<at::Scalar>(NumArg(info, 1)) : c10::nullopt,
                         OptNumArg(info, 2) ? c10::optional<at::Scalar>(NumArg(info, 2)) : c10::nullopt))
INPLACE(maximum_, at::maximum_out(a, a, TensorArg(info, 1)))

// ---- linear algebra ----
DFN(matmul) { return Guard(info, [&] { return Wrap(info.Env(), at::matmul(TensorArg(info, 0), TensorArg(info, 1))); }); }
DFN(mm) { return Guard(info, [&] { return Wrap(info.Env(), at::mm(TensorArg(info, 0), TensorArg(info, 1))); }); }
DFN(bmm) { return Guard(info, [&] { return Wrap(info.Env(), at::bmm(TensorArg(info, 0), TensorArg(info, 1))); }); }
DFN(outer) { return Guard(info, [&] { return Wrap(info.Env(), at::outer(TensorArg(info, 0), TensorArg(info, 1))); }); }
DFN(einsum) { return Guard(info, [&] { return Wrap(info.Env(), at::einsum(StrArg(info, 0), TensorListArg(info, 1))); }); }
DFN(cholesky) {
  return Guard(info, [&] { return Wrap(info.Env(), at::linalg_cholesky(TensorArg(info, 0), BoolArg(info, 1))); });
}
// choleskySolve(b, L, upper): solves A x = b given the Cholesky factor of A.
DFN(choleskySolve) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::cholesky_solve(TensorArg(info, 0), TensorArg(info, 1), BoolArg(info, 2)));
  });
}
// solveTriangular(a, b, upper, left, unitriangular): X with A X = B (left) or X A = B (right), A triangular.
DFN(solveTriangular) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::linalg_solve_triangular(TensorArg(info, 0), TensorArg(info, 1), BoolArg(info, 2),
                                                        BoolArg(info, 3), BoolArg(info, 4)));
  });
}
DFN(solve) { return Guard(info, [&] { return Wrap(info.Env(), at::linalg_solve(TensorArg(info, 0), TensorArg(info, 1))); }); }
DFN(inv) { return Guard(info, [&] { return Wrap(info.Env(), at::linalg_inv(TensorArg(info, 0))); }); }
DFN(pinv) {
  return Guard(info, [&] {
    auto rtol = OptNumArg(info, 1);
    return Wrap(info.Env(), at::linalg_pinv(TensorArg(info, 0), c10::nullopt,
                                            rtol ? c10::optional<double>(*rtol) : c10::nullopt, BoolArg(info, 2)));
  });
}
DFN(eigh) {
  return Guard(info, [&] {
    auto r = at::linalg_eigh(TensorArg(info, 0), BoolArg(info, 1) ? "U" : "L");
    return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
DFN(svd) {
  return Guard(info, [&] {
    auto r = at::linalg_svd(TensorArg(info, 0), BoolArg(info, 1));
    return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r), std::get<2>(r)});
  });
}
DFN(qr) {
  return Guard(info, [&] {
    auto r = at::linalg_qr(TensorArg(info, 0), BoolArg(info, 1) ? "complete" : "reduced");
    return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
DFN(slogdet) {
  return Guard(info, [&] {
    auto r = at::linalg_slogdet(TensorArg(info, 0));
    return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
  });
}
DFN(det) { return Guard(info, [&] { return Wrap(info.Env(), at::linalg_det(TensorArg(info, 0))); }); }
DFN(trace) { return Guard(info, [&] { return Wrap(info.Env(), at::trace(TensorArg(info, 0))); }); }

void RegisterMathOps(Napi::Env env, Napi::Object e) {
  (void)env;
  EXPORT(e, add); EXPORT(e, sub); EXPORT(e, mul); EXPORT(e, div); EXPORT(e, pow); EXPORT(e, remainder);
  EXPORT(e, maximum); EXPORT(e, minimum); EXPORT(e, eq); EXPORT(e, ne); EXPORT(e, lt); EXPORT(e, le); EXPORT(e, gt);
  EXPORT(e, ge); EXPORT(e, rsub); EXPORT(e, logicalAnd); EXPORT(e, logicalOr); EXPORT(e, logicalXor);
  EXPORT(e, logicalNot); EXPORT(e, neg); EXPORT(e, abs); EXPORT(e, exp); EXPORT(e, log); EXPORT(e, log1p);
  EXPORT(e, sqrt); EXPORT(e, rsqrt); EXPORT(e, square); EXPORT(e, reciprocal); EXPORT(e, sin); EXPORT(e, cos); EXPORT(e, acos);
  EXPORT(e, sign); EXPORT(e, floor); EXPORT(e, ceil); EXPORT(e, round); EXPORT(e, isnan); EXPORT(e, isfinite);
  EXPORT(e, relu); EXPORT(e, sigmoid); EXPORT(e, tanh); EXPORT(e, silu); EXPORT(e, gelu); EXPORT(e, leakyRelu);
  EXPORT(e, softplus); EXPORT(e, clamp); EXPORT(e, lerp);
  EXPORT(e, sum); EXPORT(e, mean); EXPORT(e, prod); EXPORT(e, var); EXPORT(e, std); EXPORT(e, max); EXPORT(e, min);
  EXPORT(e, argmax); EXPORT(e, argmin); EXPORT(e, norm); EXPORT(e, logsumexp); EXPORT(e, cumsum); EXPORT(e, all);
  EXPORT(e, any); EXPORT(e, topk); EXPORT(e, sort);
  EXPORT(e, add_); EXPORT(e, sub_); EXPORT(e, mul_); EXPORT(e, div_); EXPORT(e, addcmul_); EXPORT(e, addcdiv_);
  EXPORT(e, lerp_); EXPORT(e, copy_); EXPORT(e, zero_); EXPORT(e, fill_); EXPORT(e, sqrt_); EXPORT(e, clamp_);
  EXPORT(e, maximum_);
  EXPORT(e, matmul); EXPORT(e, mm); EXPORT(e, bmm); EXPORT(e, outer); EXPORT(e, einsum); EXPORT(e, cholesky);
  EXPORT(e, choleskySolve); EXPORT(e, solveTriangular); EXPORT(e, solve); EXPORT(e, inv); EXPORT(e, pinv); EXPORT(e, eigh); EXPORT(e, svd);
  EXPORT(e, qr); EXPORT(e, slogdet); EXPORT(e, det); EXPORT(e, trace);
}

}  // namespace distillery
