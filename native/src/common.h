// Shared helpers of the binding: how tensors cross the N-API boundary, how
// arguments are read, and how libtorch exceptions become JavaScript Errors.
// Everything here is generic; no distillation logic lives in C++.
#pragma once

#include <napi.h>
#include <torch/torch.h>


#include <string>
#include <vector>

namespace distillery {

// A tensor owned by JavaScript: the External that carries it is type-tagged,
// so a foreign object passed where a tensor is expected is rejected, not
// reinterpreted. `accounted` is what was reported to V8 as external memory.
struct Holder {
  at::Tensor tensor;
  int64_t accounted = 0;
};

Napi::Value Wrap(Napi::Env env, at::Tensor tensor);
Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& tensors);
Holder* Unwrap(const Napi::Value& value, const char* what);
// Reports the tensor's bytes to V8 as external memory (once), so GC feels its weight.
void ReportExternal(Napi::Env env, Holder* holder);
int64_t ReportedExternalBytes();
// Releases the tensor's storage now instead of at garbage collection.
void Release(Napi::Env env, Holder* holder);

// conv2d with oneDNN-backed derivatives of every order (conv_autograd.cc).
at::Tensor Conv2d(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b, at::IntArrayRef stride,
                  at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// Group norm (affine) + ReLU + 2x2 average pooling, fused (norm_act_pool.cc).
at::Tensor NormReluPool(const at::Tensor& x, int64_t groups, const at::Tensor& gamma, const at::Tensor& beta,
                        double eps);

// Argument readers. Each throws a TypeError naming the argument position.
const at::Tensor& TensorArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Tensor> OptTensorArg(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> TensorListArg(const Napi::CallbackInfo& info, size_t i);
int64_t IntArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<int64_t> OptIntArg(const Napi::CallbackInfo& info, size_t i);
double NumArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<double> OptNumArg(const Napi::CallbackInfo& info, size_t i);
bool BoolArg(const Napi::CallbackInfo& info, size_t i);
std::string StrArg(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> IntListArg(const Napi::CallbackInfo& info, size_t i);
c10::optional<std::vector<int64_t>> OptIntListArg(const Napi::CallbackInfo& info, size_t i);
at::ScalarType DTypeArg(const Napi::CallbackInfo& info, size_t i);
at::Device DeviceArg(const Napi::CallbackInfo& info, size_t i);
// A number or a tensor (for binary ops with a scalar operand).
bool IsNumber(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Generator> OptGeneratorArg(const Napi::CallbackInfo& info, size_t i);
at::Generator GeneratorArg(const Napi::CallbackInfo& info, size_t i);
Napi::Value WrapGenerator(Napi::Env env, at::Generator generator);

bool IsAbsent(const Napi::Value& v);

// Runs `body`, translating libtorch and C++ exceptions into JavaScript Errors
// that carry libtorch's message (without its C++ backtrace).
template <typename F>
Napi::Value Guard(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// Defines an exported function whose body is an expression block returning a Napi::Value.
#define DFN(name) static Napi::Value name(const Napi::CallbackInfo& info)
#define EXPORT(exports, name) \
  exports.Set(#name, Napi::Function::New(exports.Env(), name, #name))

void RegisterTensorOps(Napi::Env env, Napi::Object exports);
void RegisterMathOps(Napi::Env env, Napi::Object exports);
void RegisterNNOps(Napi::Env env, Napi::Object exports);
void RegisterAllocator(Napi::Env env, Napi::Object exports);
// c10d: stores, the Gloo process group and its collectives (dist.cc).
void RegisterDistributed(Napi::Env env, Napi::Object exports);
void InstallAllocator();

}  // namespace distillery
