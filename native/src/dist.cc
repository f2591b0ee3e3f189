// libtorch's distributed engine (c10d) for JavaScript: a rendezvous store (TCPStore, or FileStore on
// one machine) and a Gloo process group with the collectives the methods need. Every collective
// waits with the group's timeout, so a dead or missing peer becomes a JavaScript Error, never a hang.
// Calls block the calling thread (as torch.distributed's synchronous collectives do).
#include "common.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>

namespace distillery {

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::chrono::milliseconds timeout;
  int rank;
  int size;
};

const napi_type_tag kGroupTag = {0x5a1c9e3b7d2f4a60ULL, 0x6b8d0f2e4a1c3e50ULL};

Group* GroupArg(const Napi::CallbackInfo& info, size_t i) {
  bool ok = false;
  if (i < info.Length() && info[i].IsExternal()) napi_check_object_type_tag(info.Env(), info[i], &kGroupTag, &ok);
  if (!ok) throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + " is not a process group");
  Group* g = info[i].As<Napi::External<Group>>().Data();
  if (!g->pg) throw Napi::Error::New(info.Env(), "the process group was destroyed");
  return g;
}

c10d::ReduceOp ReduceOpArg(const Napi::CallbackInfo& info, size_t i) {
  const std::string op = StrArg(info, i);
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  throw Napi::TypeError::New(info.Env(), "unknown reduce op '" + op + "' (sum, max, min, product)");
}

// Waits for `work` with the group's timeout; a failure names the collective and the rank.
void Wait(const Group* g, const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait(g->timeout);
  } catch (const c10::Error& e) {
    throw std::runtime_error(std::string(what) + " failed on rank " + std::to_string(g->rank) + " of " +
                             std::to_string(g->size) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string(what) + " failed on rank " + std::to_string(g->rank) + " of " +
                             std::to_string(g->size) + ": " + e.what());
  }
}

// distInit(rank, size, timeoutMs, kind 'tcp' | 'file', address: host or file path, port, prefix)
DFN(distInit) {
  return Guard(info, [&]() -> Napi::Value {
    const int rank = static_cast<int>(IntArg(info, 0));
    const int size = static_cast<int>(IntArg(info, 1));
    const auto timeout = std::chrono::milliseconds(IntArg(info, 2));
    const std::string kind = StrArg(info, 3);
    const std::string address = StrArg(info, 4);
    const int port = static_cast<int>(IntArg(info, 5));
    const std::string prefix = StrArg(info, 6);
    c10::intrusive_ptr<c10d::Store> base;
    if (kind == "tcp") {
      c10d::TCPStoreOptions o;
      o.port = static_cast<uint16_t>(port);
      o.isServer = rank == 0;
      o.numWorkers = size;
      o.waitWorkers = true;
      o.timeout = timeout;
      base = c10::make_intrusive<c10d::TCPStore>(address, o);
    } else if (kind == "file") {
      base = c10::make_intrusive<c10d::FileStore>(address, size);
      base->setTimeout(timeout);
    } else {
      throw Napi::TypeError::New(info.Env(), "unknown store kind '" + kind + "' (tcp, file)");
    }
    auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, base);
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = timeout;
    // Gloo's own address: the interface GLOO_SOCKET_IFNAME names (as torch.distributed reads it); for a
    // rendezvous on loopback, loopback; otherwise this machine's hostname (rank 0's address is not ours).
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    const bool loopback = kind == "file" || address.rfind("127.", 0) == 0 || address == "localhost";
    if (ifname && *ifname)
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (loopback)
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
    auto* g = new Group{store, pg, timeout, rank, size};
    auto ext = Napi::External<Group>::New(info.Env(), g, [](Napi::Env, Group* p) { delete p; });
    napi_type_tag_object(info.Env(), ext, &kGroupTag);
    return ext;
  });
}

// distAllReduce(group, tensors[], op): in place, every rank ends with the reduction.
DFN(distAllReduce) {
  return Guard(info, [&]() -> Napi::Value {
    Group* g = GroupArg(info, 0);
    std::vector<at::Tensor> tensors = TensorListArg(info, 1);
    c10d::AllreduceOptions o;
    o.reduceOp = ReduceOpArg(info, 2);
    o.timeout = g->timeout;
    for (auto& t : tensors) {
      if (!t.is_contiguous()) throw Napi::TypeError::New(info.Env(), "allReduce needs contiguous tensors");
      std::vector<at::Tensor> one = {t};
      Wait(g, g->pg->allreduce(one, o), "allReduce");
    }
    return info.Env().Undefined();
  });
}

// distBroadcast(group, tensors[], root): in place, every rank ends with root's values.
DFN(distBroadcast) {
  return Guard(info, [&]() -> Napi::Value {
    Group* g = GroupArg(info, 0);
    std::vector<at::Tensor> tensors = TensorListArg(info, 1);
    c10d::BroadcastOptions o;
    o.rootRank = IntArg(info, 2);
    o.timeout = g->timeout;
    for (auto& t : tensors) {
      if (!t.is_contiguous()) throw Napi::TypeError::New(info.Env(), "broadcast needs contiguous tensors");
      std::vector<at::Tensor> one = {t};
      Wait(g, g->pg->broadcast(one, o), "broadcast");
    }
    return info.Env().Undefined();
  });
}

// distAllGather(group, tensor) -> one tensor per rank, in rank order.
DFN(distAllGather) {
  return Guard(info, [&]() -> Napi::Value {
    Group* g = GroupArg(info, 0);
    at::Tensor t = TensorArg(info, 1).contiguous();
    std::vector<std::vector<at::Tensor>> out(1);
    for (int r = 0; r < g->size; r++) out[0].push_back(at::empty_like(t));
    std::vector<at::Tensor> in = {t};
    c10d::AllgatherOptions o;
    o.timeout = g->timeout;
    Wait(g, g->pg->allgather(out, in, o), "allGather");
    return WrapList(info.Env(), out[0]);
  });
}

DFN(distBarrier) {
  return Guard(info, [&]() -> Napi::Value {
    Group* g = GroupArg(info, 0);
    c10d::BarrierOptions o;
    o.timeout = g->timeout;
    Wait(g, g->pg->barrier(o), "barrier");
    return info.Env().Undefined();
  });
}

// distStoreSet(group, key, value) / distStoreGet(group, key) -> string (waits up to the timeout).
DFN(distStoreSet) {
  return Guard(info, [&]() -> Napi::Value {
    Group* g = GroupArg(info, 0);
    const std::string value = StrArg(info, 2);
    g->store->set(StrArg(info, 1), std::vector<uint8_t>(value.begin(), value.end()));
    return info.Env().Undefined();
  });
}

DFN(distStoreGet) {
  return Guard(info, [&]() -> Napi::Value {
    Group* g = GroupArg(info, 0);
    const std::string key = StrArg(info, 1);
    g->store->wait({key}, g->timeout);
    const auto v = g->store->get(key);
    return Napi::String::New(info.Env(), std::string(v.begin(), v.end()));
  });
}

// distDestroy(group): releases the group's connections now (later calls fail clearly).
DFN(distDestroy) {
  return Guard(info, [&]() -> Napi::Value {
    Group* g = GroupArg(info, 0);
    g->pg.reset();
    g->store.reset();
    return info.Env().Undefined();
  });
}

}  // namespace

void RegisterDistributed(Napi::Env env, Napi::Object exports) {
  EXPORT(exports, distInit);
  EXPORT(exports, distAllReduce);
  EXPORT(exports, distBroadcast);
  EXPORT(exports, distAllGather);
  EXPORT(exports, distBarrier);
  EXPORT(exports, distStoreSet);
  EXPORT(exports, distStoreGet);
  EXPORT(exports, distDestroy);
}

}  // namespace distillery
