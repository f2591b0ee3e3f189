// Module entry point and the tensor handle plumbing shared by every op file.
#include "common.h"

#include <atomic>
#include <cmath>

namespace distillery {

// Random 128-bit tag: marks Externals created by this addon as tensors/generators.
static const napi_type_tag kTensorTag = {0x8f3c1d2a4b5e6f70ULL, 0x1a2b3c4d5e6f7081ULL};
static const napi_type_tag kGeneratorTag = {0x0c9d8e7f6a5b4c3dULL, 0x2e1f0a9b8c7d6e5fULL};

static int64_t AccountedBytes(const at::Tensor& t) {
  // Views share their base's storage; counting them again would overstate pressure.
  if (!t.defined() || t.is_view()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

// Bytes currently reported to V8, by every environment of the process (the main thread and worker
// threads each run JavaScript, and finalizers, on their own thread): atomic.
static std::atomic<int64_t> gReportedBytes{0};

static void AdjustReported(Napi::Env env, int64_t delta) {
  gReportedBytes.fetch_add(delta, std::memory_order_relaxed);
  Napi::MemoryManagement::AdjustExternalMemory(env, delta);
}

// New handles are not reported to V8: most live inside a tidy() scope that frees
// them deterministically, and reporting every large temporary would make V8 run a
// full GC several times per forward pass. TypeScript calls ReportExternal for the
// tensors that outlive their scope, so that leaked ones still create GC pressure.
Napi::Value Wrap(Napi::Env env, at::Tensor tensor) {
  auto* holder = new Holder{std::move(tensor), 0};
  auto ext = Napi::External<Holder>::New(env, holder, [](Napi::Env env, Holder* h) {
    if (h->accounted) AdjustReported(env, -h->accounted);
    delete h;
  });
  napi_type_tag_object(env, ext, &kTensorTag);
  return ext;
}

Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  auto arr = Napi::Array::New(env, tensors.size());
  for (size_t i = 0; i < tensors.size(); i++) {
    arr.Set(i, tensors[i].defined() ? Wrap(env, tensors[i]) : env.Null());
  }
  return arr;
}

void ReportExternal(Napi::Env env, Holder* holder) {
  if (holder->accounted || !holder->tensor.defined()) return;
  holder->accounted = AccountedBytes(holder->tensor);
  if (holder->accounted) AdjustReported(env, holder->accounted);
}

int64_t ReportedExternalBytes() { return gReportedBytes.load(std::memory_order_relaxed); }

void Release(Napi::Env env, Holder* holder) {
  if (holder->accounted) AdjustReported(env, -holder->accounted);
  holder->accounted = 0;
  holder->tensor = at::Tensor();
}

bool IsAbsent(const Napi::Value& v) { return v.IsUndefined() || v.IsNull(); }

static bool HasTag(const Napi::Value& value, const napi_type_tag* tag) {
  if (value.Type() != napi_external) return false;
  bool result = false;
  napi_check_object_type_tag(value.Env(), value, tag, &result);
  return result;
}

Holder* Unwrap(const Napi::Value& value, const char* what) {
  if (!HasTag(value, &kTensorTag)) {
    throw Napi::TypeError::New(value.Env(), std::string(what) + " is not a tensor handle");
  }
  return value.As<Napi::External<Holder>>().Data();
}

static std::string Pos(size_t i) { return "argument " + std::to_string(i); }

const at::Tensor& TensorArg(const Napi::CallbackInfo& info, size_t i) {
  Holder* h = Unwrap(info[i], Pos(i).c_str());
  if (!h->tensor.defined()) {
    throw Napi::Error::New(info.Env(), "tensor was disposed and cannot be used any more");
  }
  return h->tensor;
}

c10::optional<at::Tensor> OptTensorArg(const Napi::CallbackInfo& info, size_t i) {
  if (IsAbsent(info[i])) return c10::nullopt;
  return TensorArg(info, i);
}

std::vector<at::Tensor> TensorListArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), Pos(i) + " must be an array of tensors");
  auto arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    Holder* h = Unwrap(arr.Get(k), (Pos(i) + "[" + std::to_string(k) + "]").c_str());
    if (!h->tensor.defined()) throw Napi::Error::New(info.Env(), "tensor was disposed and cannot be used any more");
    out.push_back(h->tensor);
  }
  return out;
}

// A JavaScript number that is an integer representable as int64 (N-API would turn NaN into 0 and
// saturate infinities, which reach libtorch as sizes or enum codes).
static bool ToInt64(const Napi::Value& v, int64_t* out) {
  if (!v.IsNumber()) return false;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::trunc(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t i) {
  int64_t v;
  if (!ToInt64(info[i], &v)) throw Napi::TypeError::New(info.Env(), Pos(i) + " must be an integer");
  return v;
}

c10::optional<int64_t> OptIntArg(const Napi::CallbackInfo& info, size_t i) {
  if (IsAbsent(info[i])) return c10::nullopt;
  return IntArg(info, i);
}

double NumArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), Pos(i) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

c10::optional<double> OptNumArg(const Napi::CallbackInfo& info, size_t i) {
  if (IsAbsent(info[i])) return c10::nullopt;
  return NumArg(info, i);
}

bool BoolArg(const Napi::CallbackInfo& info, size_t i) {
  if (IsAbsent(info[i])) return false;
  return info[i].ToBoolean().Value();
}

std::string StrArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), Pos(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> IntListArg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsNumber()) return {IntArg(info, i)};
  if (!info[i].IsArray()) throw Napi::TypeError::New(info.Env(), Pos(i) + " must be an array of integers");
  auto arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) {
    if (!ToInt64(arr.Get(k), &out[k])) throw Napi::TypeError::New(info.Env(), Pos(i) + " must be an array of integers");
  }
  return out;
}

c10::optional<std::vector<int64_t>> OptIntListArg(const Napi::CallbackInfo& info, size_t i) {
  if (IsAbsent(info[i])) return c10::nullopt;
  return IntListArg(info, i);
}

// The element types the TypeScript engine names (src/engine/dtype.ts); any other code is refused here,
// because libtorch aborts the process on an out-of-range at::ScalarType.
at::ScalarType DTypeArg(const Napi::CallbackInfo& info, size_t i) {
  static const at::ScalarType kKnown[] = {at::kByte, at::kChar,  at::kShort, at::kInt,  at::kLong,
                                          at::kHalf, at::kFloat, at::kDouble, at::kBool, at::kBFloat16};
  int64_t code = IntArg(info, i);
  for (auto t : kKnown)
    if (static_cast<int64_t>(t) == code) return t;
  throw Napi::RangeError::New(info.Env(), Pos(i) + ": unknown dtype code " + std::to_string(code) +
                                              " (uint8 0, int8 1, int16 2, int32 3, int64 4, float16 5, float32 6, "
                                              "float64 7, bool 11, bfloat16 15)");
}

at::Device DeviceArg(const Napi::CallbackInfo& info, size_t i) {
  if (IsAbsent(info[i])) return at::Device(at::kCPU);
  return at::Device(StrArg(info, i));  // throws c10::Error for an unknown device string
}

bool IsNumber(const Napi::CallbackInfo& info, size_t i) { return info[i].IsNumber(); }

c10::optional<at::Generator> OptGeneratorArg(const Napi::CallbackInfo& info, size_t i) {
  if (IsAbsent(info[i])) return c10::nullopt;
  if (!HasTag(info[i], &kGeneratorTag)) throw Napi::TypeError::New(info.Env(), Pos(i) + " is not a generator");
  return *info[i].As<Napi::External<at::Generator>>().Data();
}

at::Generator GeneratorArg(const Napi::CallbackInfo& info, size_t i) {
  auto g = OptGeneratorArg(info, i);
  if (!g) throw Napi::TypeError::New(info.Env(), Pos(i) + " must be a generator");
  return *g;
}

Napi::Value WrapGenerator(Napi::Env env, at::Generator generator) {
  auto ext = Napi::External<at::Generator>::New(env, new at::Generator(std::move(generator)),
                                                [](Napi::Env, at::Generator* g) { delete g; });
  napi_type_tag_object(env, ext, &kGeneratorTag);
  return ext;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallAllocator();
  RegisterAllocator(env, exports);
  RegisterTensorOps(env, exports);
  RegisterMathOps(env, exports);
  RegisterNNOps(env, exports);
  RegisterDistributed(env, exports);
  return exports;
}

}  // namespace distillery

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return distillery::Init(env, exports); }
NODE_API_MODULE(distillery_native, InitModule)
