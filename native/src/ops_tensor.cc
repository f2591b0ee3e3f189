// Tensor creation, metadata, conversion, shape/indexing ops, random numbers,
// autograd and runtime settings.
#include "common.h"

namespace distillery {

static at::TensorOptions Opts(const Napi::CallbackInfo& info, size_t dtypeAt, size_t deviceAt) {
  return at::TensorOptions().dtype(DTypeArg(info, dtypeAt)).device(DeviceArg(info, deviceAt));
}

// Random ops: with a generator they sample on the CPU (generators are CPU
// generators) and move the result, so one seed gives the same numbers on any device.
template <typename F>
static at::Tensor Sampled(const Napi::CallbackInfo& info, size_t dtypeAt, size_t deviceAt, size_t genAt, F&& sample) {
  auto gen = OptGeneratorArg(info, genAt);
  auto device = DeviceArg(info, deviceAt);
  auto options = at::TensorOptions().dtype(DTypeArg(info, dtypeAt));
  if (!gen) return sample(options.device(device), c10::optional<at::Generator>());
  return sample(options, c10::optional<at::Generator>(*gen)).to(device);
}

// ---- creation ----
DFN(zeros) { return Guard(info, [&] { return Wrap(info.Env(), at::zeros(IntListArg(info, 0), Opts(info, 1, 2))); }); }
DFN(ones) { return Guard(info, [&] { return Wrap(info.Env(), at::ones(IntListArg(info, 0), Opts(info, 1, 2))); }); }
DFN(full) {
  return Guard(info, [&] { return Wrap(info.Env(), at::full(IntListArg(info, 0), NumArg(info, 1), Opts(info, 2, 3))); });
}
DFN(empty) { return Guard(info, [&] { return Wrap(info.Env(), at::empty(IntListArg(info, 0), Opts(info, 1, 2))); }); }
DFN(arange) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::arange(NumArg(info, 0), NumArg(info, 1), NumArg(info, 2), Opts(info, 3, 4)));
  });
}
DFN(linspace) {
  return Guard(info, [&] {
    return Wrap(info.Env(), at::linspace(NumArg(info, 0), NumArg(info, 1), IntArg(info, 2), Opts(info, 3, 4)));
  });
}
DFN(eye) {
  return Guard(info, [&] { return Wrap(info.Env(), at::eye(IntArg(info, 0), IntArg(info, 1), Opts(info, 2, 3))); });
}
DFN(rand) {
  return Guard(info, [&] {
    auto shape = IntListArg(info, 0);
    return Wrap(info.Env(), Sampled(info, 1, 2, 3, [&](at::TensorOptions o, c10::optional<at::Generator> g) {
                  return at::rand(shape, g, o);
                }));
  });
}
DFN(randn) {
  return Guard(info, [&] {
    auto shape = IntListArg(info, 0);
    return Wrap(info.Env(), Sampled(info, 1, 2, 3, [&](at::TensorOptions o, c10::optional<at::Generator> g) {
                  return at::randn(shape, g, o);
                }));
  });
}
DFN(randint) {
  return Guard(info, [&] {
    int64_t low = IntArg(info, 0), high = IntArg(info, 1);
    auto shape = IntListArg(info, 2);
    return Wrap(info.Env(), Sampled(info, 3, 4, 5, [&](at::TensorOptions o, c10::optional<at::Generator> g) {
                  return at::randint(low, high, shape, g, o);
                }));
  });
}
DFN(randperm) {
  return Guard(info, [&] {
    int64_t n = IntArg(info, 0);
    return Wrap(info.Env(), Sampled(info, 1, 2, 3, [&](at::TensorOptions o, c10::optional<at::Generator> g) {
                  return at::randperm(n, g, o);
                }));
  });
}
// bernoulli(probabilities, generator?): samples 0/1 with the given per-element probabilities.
DFN(bernoulli) {
  return Guard(info, [&] {
    const auto& p = TensorArg(info, 0);
    auto gen = OptGeneratorArg(info, 1);
    if (!gen) return Wrap(info.Env(), at::bernoulli(p));
    return Wrap(info.Env(), at::bernoulli(p.to(at::kCPU), *gen).to(p.device()));
  });
}
DFN(generatorNew) {
  return Guard(info, [&] {
    auto g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(IntArg(info, 0)));
    return WrapGenerator(info.Env(), g);
  });
}
DFN(generatorGetState) {
  return Guard(info, [&] { return Wrap(info.Env(), GeneratorArg(info, 0).get_state()); });
}
DFN(generatorSetState) {
  return Guard(info, [&] {
    auto g = GeneratorArg(info, 0);
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(TensorArg(info, 1));
    return info.Env().Undefined();
  });
}
DFN(manualSeed) {
  return Guard(info, [&] {
    torch::manual_seed(static_cast<uint64_t>(IntArg(info, 0)));
    return info.Env().Undefined();
  });
}

// fromData(typedArray, shape, dtype): copies the bytes of a typed array into a new CPU tensor.
DFN(fromData) {
  return Guard(info, [&] {
    if (!info[0].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "data must be a typed array");
    auto arr = info[0].As<Napi::TypedArray>();
    auto shape = IntListArg(info, 1);
    auto dtype = DTypeArg(info, 2);
    int64_t numel = 1;
    for (auto s : shape) numel *= s;
    size_t bytes = static_cast<size_t>(numel) * at::elementSize(dtype);
    if (bytes != arr.ByteLength()) {
      throw Napi::RangeError::New(info.Env(), "data has " + std::to_string(arr.ByteLength()) + " bytes but shape needs " +
                                                  std::to_string(bytes));
    }
    auto data = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (bytes) std::memcpy(t.data_ptr(), data, bytes);
    return Wrap(info.Env(), t);
  });
}
// toData(t): the tensor's elements as a fresh ArrayBuffer (contiguous, CPU).
DFN(toData) {
  return Guard(info, [&] {
    auto t = TensorArg(info, 0).detach().to(at::kCPU).contiguous();
    size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
    auto buf = Napi::ArrayBuffer::New(info.Env(), bytes);
    if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
    return buf;
  });
}
DFN(item) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    if (t.numel() != 1) {
      throw Napi::RangeError::New(info.Env(), "item() needs a tensor with exactly one element, got " +
                                                  std::to_string(t.numel()) + " elements");
    }
    auto s = t.item();
    if (s.isBoolean()) return Napi::Value(Napi::Boolean::New(info.Env(), s.toBool()));
    return Napi::Value(Napi::Number::New(info.Env(), s.toDouble()));
  });
}

// ---- metadata ----
DFN(shape) {
  return Guard(info, [&] {
    auto sizes = TensorArg(info, 0).sizes();
    auto arr = Napi::Array::New(info.Env(), sizes.size());
    for (size_t i = 0; i < sizes.size(); i++) arr.Set(i, Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
    return Napi::Value(arr);
  });
}
DFN(dtype) {
  return Guard(info, [&] { return Napi::Number::New(info.Env(), static_cast<int>(TensorArg(info, 0).scalar_type())); });
}
DFN(device) { return Guard(info, [&] { return Napi::String::New(info.Env(), TensorArg(info, 0).device().str()); }); }
DFN(isDisposed) {
  return Guard(info, [&] { return Napi::Boolean::New(info.Env(), !Unwrap(info[0], "argument 0")->tensor.defined()); });
}
DFN(dispose) {
  return Guard(info, [&] {
    Release(info.Env(), Unwrap(info[0], "argument 0"));
    return info.Env().Undefined();
  });
}
DFN(reportExternal) {
  return Guard(info, [&] {
    ReportExternal(info.Env(), Unwrap(info[0], "argument 0"));
    return info.Env().Undefined();
  });
}
DFN(reportedExternalBytes) { return Napi::Number::New(info.Env(), static_cast<double>(ReportedExternalBytes())); }
DFN(isContiguous) {
  return Guard(info, [&] { return Napi::Boolean::New(info.Env(), TensorArg(info, 0).is_contiguous()); });
}
DFN(isChannelsLast) {
  return Guard(info, [&] {
    return Napi::Boolean::New(info.Env(), TensorArg(info, 0).is_contiguous(at::MemoryFormat::ChannelsLast));
  });
}

// ---- conversion ----
DFN(to) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    auto dtype = IsAbsent(info[1]) ? t.scalar_type() : DTypeArg(info, 1);
    auto device = IsAbsent(info[2]) ? t.device() : DeviceArg(info, 2);
    return Wrap(info.Env(), t.to(device, dtype));
  });
}
DFN(clone) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).clone()); }); }
// contiguous(t, channelsLast?): dense layout in NCHW order, or NHWC ("channels last") for 4-D tensors.
DFN(contiguous) {
  return Guard(info, [&] {
    const bool channelsLast = BoolArg(info, 1);
    auto r = TensorArg(info, 0).contiguous(channelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
    // One channel: NCHW and NHWC are the same bytes, and libtorch keeps NCHW strides, which make the
    // next convolution run (and write its output) in NCHW. Channels-last strides on the same memory
    // make oneDNN choose its channels-last path, so the first layer of a ConvNet stays in that layout.
    if (channelsLast && r.dim() == 4 && r.size(1) == 1 && r.is_contiguous() && r.size(2) * r.size(3) > 1)
      r = r.as_strided(r.sizes(), {r.size(2) * r.size(3), 1, r.size(3), 1}, r.storage_offset());
    return Wrap(info.Env(), r);
  });
}

// ---- shape ----
DFN(reshape) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).reshape(IntListArg(info, 1))); }); }
DFN(view) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).view(IntListArg(info, 1))); }); }
DFN(permute) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).permute(IntListArg(info, 1))); }); }
DFN(transpose) {
  return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).transpose(IntArg(info, 1), IntArg(info, 2))); });
}
DFN(flatten) {
  return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).flatten(IntArg(info, 1), IntArg(info, 2))); });
}
DFN(squeeze) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    return Wrap(info.Env(), IsAbsent(info[1]) ? t.squeeze() : t.squeeze(IntArg(info, 1)));
  });
}
DFN(unsqueeze) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).unsqueeze(IntArg(info, 1))); }); }
DFN(expand) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).expand(IntListArg(info, 1))); }); }
DFN(repeat) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).repeat(IntListArg(info, 1))); }); }
DFN(cat) { return Guard(info, [&] { return Wrap(info.Env(), at::cat(TensorListArg(info, 0), IntArg(info, 1))); }); }
DFN(stack) { return Guard(info, [&] { return Wrap(info.Env(), at::stack(TensorListArg(info, 0), IntArg(info, 1))); }); }
// split(t, sizes, dim): sizes is one chunk size or the list of sizes.
DFN(split) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    int64_t dim = IntArg(info, 2);
    if (info[1].IsNumber()) return WrapList(info.Env(), t.split(IntArg(info, 1), dim));
    return WrapList(info.Env(), t.split_with_sizes(IntListArg(info, 1), dim));
  });
}
DFN(chunk) {
  return Guard(info, [&] { return WrapList(info.Env(), TensorArg(info, 0).chunk(IntArg(info, 1), IntArg(info, 2))); });
}
DFN(unbind) { return Guard(info, [&] { return WrapList(info.Env(), TensorArg(info, 0).unbind(IntArg(info, 1))); }); }
DFN(narrow) {
  return Guard(info, [&] {
    return Wrap(info.Env(), TensorArg(info, 0).narrow(IntArg(info, 1), IntArg(info, 2), IntArg(info, 3)));
  });
}
// slice(t, dim, start, end, step)
DFN(slice) {
  return Guard(info, [&] {
    return Wrap(info.Env(),
                TensorArg(info, 0).slice(IntArg(info, 1), OptIntArg(info, 2), OptIntArg(info, 3), IntArg(info, 4)));
  });
}
DFN(select) {
  return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).select(IntArg(info, 1), IntArg(info, 2))); });
}
DFN(indexSelect) {
  return Guard(info, [&] {
    return Wrap(info.Env(), TensorArg(info, 0).index_select(IntArg(info, 1), TensorArg(info, 2)));
  });
}
DFN(gather) {
  return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).gather(IntArg(info, 1), TensorArg(info, 2))); });
}
// scatter(t, dim, index, src|value)
DFN(scatter) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    if (IsNumber(info, 3)) return Wrap(info.Env(), t.scatter(IntArg(info, 1), TensorArg(info, 2), NumArg(info, 3)));
    return Wrap(info.Env(), t.scatter(IntArg(info, 1), TensorArg(info, 2), TensorArg(info, 3)));
  });
}
DFN(scatterAdd) {
  return Guard(info, [&] {
    return Wrap(info.Env(), TensorArg(info, 0).scatter_add(IntArg(info, 1), TensorArg(info, 2), TensorArg(info, 3)));
  });
}
DFN(indexAdd) {
  return Guard(info, [&] {
    return Wrap(info.Env(), TensorArg(info, 0).index_add(IntArg(info, 1), TensorArg(info, 2), TensorArg(info, 3)));
  });
}
DFN(maskedFill) {
  return Guard(info, [&] {
    return Wrap(info.Env(), TensorArg(info, 0).masked_fill(TensorArg(info, 1), NumArg(info, 2)));
  });
}
DFN(maskedSelect) {
  return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).masked_select(TensorArg(info, 1))); });
}
// where(cond, a|number, b|number)
DFN(where) {
  return Guard(info, [&] {
    const auto& c = TensorArg(info, 0);
    bool an = IsNumber(info, 1), bn = IsNumber(info, 2);
    if (an && bn) return Wrap(info.Env(), at::where(c, at::Scalar(NumArg(info, 1)), at::Scalar(NumArg(info, 2))));
    if (an) return Wrap(info.Env(), at::where(c, at::Scalar(NumArg(info, 1)), TensorArg(info, 2)));
    if (bn) return Wrap(info.Env(), at::where(c, TensorArg(info, 1), at::Scalar(NumArg(info, 2))));
    return Wrap(info.Env(), at::where(c, TensorArg(info, 1), TensorArg(info, 2)));
  });
}
DFN(nonzero) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).nonzero()); }); }
DFN(flip) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).flip(IntListArg(info, 1))); }); }
DFN(roll) {
  return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).roll(IntListArg(info, 1), IntListArg(info, 2))); });
}
// pad(t, pads, mode, value): pads as in torch.nn.functional.pad (last dim first).
DFN(pad) {
  return Guard(info, [&] {
    const auto& t = TensorArg(info, 0);
    auto pads = IntListArg(info, 1);
    auto mode = StrArg(info, 2);
    namespace F = torch::nn::functional;
    F::PadFuncOptions o(pads);
    if (mode == "constant") o.mode(torch::kConstant).value(NumArg(info, 3));
    else if (mode == "reflect") o.mode(torch::kReflect);
    else if (mode == "replicate") o.mode(torch::kReplicate);
    else if (mode == "circular") o.mode(torch::kCircular);
    else throw Napi::Error::New(info.Env(), "unknown pad mode '" + mode + "' (expected constant, reflect, replicate or circular)");
    return Wrap(info.Env(), F::pad(t, o));
  });
}
DFN(tril) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).tril(IntArg(info, 1))); }); }
DFN(triu) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).triu(IntArg(info, 1))); }); }
DFN(diag) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).diag(IntArg(info, 1))); }); }
DFN(diagonal) {
  return Guard(info, [&] {
    return Wrap(info.Env(), TensorArg(info, 0).diagonal(IntArg(info, 1), IntArg(info, 2), IntArg(info, 3)));
  });
}

// ---- autograd ----
DFN(requiresGrad) {
  return Guard(info, [&] { return Napi::Boolean::New(info.Env(), TensorArg(info, 0).requires_grad()); });
}
DFN(setRequiresGrad) {
  return Guard(info, [&] {
    auto t = TensorArg(info, 0);
    t.requires_grad_(BoolArg(info, 1));
    return info.Env().Undefined();
  });
}
DFN(isLeaf) { return Guard(info, [&] { return Napi::Boolean::New(info.Env(), TensorArg(info, 0).is_leaf()); }); }
DFN(gradOf) {
  return Guard(info, [&] {
    const auto& g = TensorArg(info, 0).grad();
    return g.defined() ? Wrap(info.Env(), g) : info.Env().Null();
  });
}
DFN(setGrad) {
  return Guard(info, [&] {
    auto t = TensorArg(info, 0);
    t.mutable_grad() = IsAbsent(info[1]) ? at::Tensor() : TensorArg(info, 1);
    return info.Env().Undefined();
  });
}
DFN(detach) { return Guard(info, [&] { return Wrap(info.Env(), TensorArg(info, 0).detach()); }); }
// grad(outputs, inputs, gradOutputs|null, retainGraph, createGraph, allowUnused)
DFN(grad) {
  return Guard(info, [&] {
    auto outputs = TensorListArg(info, 0);
    auto inputs = TensorListArg(info, 1);
    std::vector<at::Tensor> gradOutputs;
    if (!IsAbsent(info[2])) gradOutputs = TensorListArg(info, 2);
    bool createGraph = BoolArg(info, 4);
    c10::optional<bool> retain = IsAbsent(info[3]) ? c10::optional<bool>() : c10::optional<bool>(BoolArg(info, 3));
    auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, retain, createGraph, BoolArg(info, 5));
    return WrapList(info.Env(), grads);
  });
}
// backward(t, gradient|null, retainGraph, createGraph)
DFN(backward) {
  return Guard(info, [&] {
    auto t = TensorArg(info, 0);
    auto g = OptTensorArg(info, 1);
    c10::optional<bool> retain = IsAbsent(info[2]) ? c10::optional<bool>() : c10::optional<bool>(BoolArg(info, 2));
    t.backward(g ? *g : at::Tensor(), retain, BoolArg(info, 3));
    return info.Env().Undefined();
  });
}
// setGradEnabled(bool) -> previous value; grad mode is thread-local and JS runs on one thread.
DFN(setGradEnabled) {
  return Guard(info, [&] {
    bool previous = at::GradMode::is_enabled();
    at::GradMode::set_enabled(BoolArg(info, 0));
    return Napi::Boolean::New(info.Env(), previous);
  });
}
DFN(isGradEnabled) { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }

// ---- runtime ----
DFN(getNumThreads) { return Napi::Number::New(info.Env(), at::get_num_threads()); }
DFN(setNumThreads) {
  return Guard(info, [&] {
    int64_t n = IntArg(info, 0);
    if (n < 1) throw Napi::RangeError::New(info.Env(), "number of threads must be at least 1");
    at::set_num_threads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}
DFN(cudaAvailable) { return Napi::Boolean::New(info.Env(), torch::cuda::is_available()); }
DFN(cudaDeviceCount) { return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count())); }
DFN(cudaSynchronize) {
  return Guard(info, [&] {
    if (torch::cuda::is_available()) torch::cuda::synchronize();
    return info.Env().Undefined();
  });
}
DFN(torchVersion) { return Napi::String::New(info.Env(), TORCH_VERSION); }

void RegisterTensorOps(Napi::Env env, Napi::Object e) {
  (void)env;
  EXPORT(e, zeros); EXPORT(e, ones); EXPORT(e, full); EXPORT(e, empty); EXPORT(e, arange); EXPORT(e, linspace);
  EXPORT(e, eye); EXPORT(e, rand); EXPORT(e, randn); EXPORT(e, randint); EXPORT(e, randperm); EXPORT(e, bernoulli);
  EXPORT(e, generatorNew); EXPORT(e, generatorGetState); EXPORT(e, generatorSetState); EXPORT(e, manualSeed);
  EXPORT(e, fromData); EXPORT(e, toData); EXPORT(e, item);
  EXPORT(e, shape); EXPORT(e, dtype); EXPORT(e, device); EXPORT(e, isDisposed); EXPORT(e, dispose); EXPORT(e, reportExternal); EXPORT(e, reportedExternalBytes);
  EXPORT(e, isContiguous); EXPORT(e, isChannelsLast);
  EXPORT(e, to); EXPORT(e, clone); EXPORT(e, contiguous);
  EXPORT(e, reshape); EXPORT(e, view); EXPORT(e, permute); EXPORT(e, transpose); EXPORT(e, flatten);
  EXPORT(e, squeeze); EXPORT(e, unsqueeze); EXPORT(e, expand); EXPORT(e, repeat); EXPORT(e, cat); EXPORT(e, stack);
  EXPORT(e, split); EXPORT(e, chunk); EXPORT(e, unbind); EXPORT(e, narrow); EXPORT(e, slice); EXPORT(e, select);
  EXPORT(e, indexSelect); EXPORT(e, gather); EXPORT(e, scatter); EXPORT(e, scatterAdd); EXPORT(e, indexAdd);
  EXPORT(e, maskedFill); EXPORT(e, maskedSelect); EXPORT(e, where); EXPORT(e, nonzero); EXPORT(e, flip);
  EXPORT(e, roll); EXPORT(e, pad); EXPORT(e, tril); EXPORT(e, triu); EXPORT(e, diag); EXPORT(e, diagonal);
  EXPORT(e, requiresGrad); EXPORT(e, setRequiresGrad); EXPORT(e, isLeaf); EXPORT(e, gradOf); EXPORT(e, setGrad);
  EXPORT(e, detach); EXPORT(e, grad); EXPORT(e, backward); EXPORT(e, setGradEnabled); EXPORT(e, isGradEnabled);
  EXPORT(e, getNumThreads); EXPORT(e, setNumThreads); EXPORT(e, cudaAvailable); EXPORT(e, cudaDeviceCount);
  EXPORT(e, cudaSynchronize); EXPORT(e, torchVersion);
}

}  // namespace distillery
