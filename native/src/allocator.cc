// A caching CPU allocator for libtorch.
//
// Why: on this kind of VM glibc serves large blocks with fresh mmaps and
// returns them on free, so every big op page-faults its output into existence;
// measured ~10x slower for a ConvNet embedding of 2,560 images. Keeping freed
// blocks in size-keyed free lists and handing them out again makes steady-state
// loops (the shape of every training/distillation loop) fault-free.
//
// Modes (DISTILLERY_ALLOCATOR, a diagnostic knob for benchmarks; users need not set it):
//   caching (default): free lists + glibc tuned not to mmap/trim;
//   mallopt: plain malloc/free with the glibc tuning only;
//   system: plain malloc/free, glibc defaults (what libtorch does by itself).
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <malloc.h>
#include <napi.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace distillery {

namespace {

constexpr size_t kAlignment = 64;
// Each block starts with a header that remembers its size class; data follows at +kAlignment.
constexpr size_t kHeader = kAlignment;

enum class Mode { Caching, Mallopt, System };

struct Stats {
  int64_t inUse = 0;       // bytes handed out and not yet freed
  int64_t peakInUse = 0;
  int64_t cached = 0;      // bytes held in free lists
  int64_t allocations = 0;
  int64_t cacheHits = 0;
};

std::mutex gMutex;
Mode gMode = Mode::Caching;
Stats gStats;
int64_t gCacheLimit = 0;
std::unordered_map<size_t, std::vector<void*>> gFreeLists;

// Size classes: multiples of 64 bytes up to 4 KiB, then 8 classes per power of
// two (at most 12.5% slack), so repeated shapes map to the same list.
size_t SizeClass(size_t n) {
  if (n <= 4096) return (n + kAlignment - 1) & ~(kAlignment - 1);
  int msb = 63 - __builtin_clzll(static_cast<unsigned long long>(n - 1));
  size_t step = static_cast<size_t>(1) << (msb - 3);
  return (n + step - 1) & ~(step - 1);
}

void* SystemAlloc(size_t bytes) {
  void* base = nullptr;
  if (posix_memalign(&base, kAlignment, bytes + kHeader) != 0) return nullptr;
  return base;
}

// Called with gMutex held.
void EmptyCacheLocked() {
  for (auto& entry : gFreeLists) {
    for (void* base : entry.second) std::free(base);
  }
  gFreeLists.clear();
  gStats.cached = 0;
}

void FreeBlock(void* data) {
  if (data == nullptr) return;
  char* base = static_cast<char*>(data) - kHeader;
  size_t bytes;
  std::memcpy(&bytes, base, sizeof(bytes));
  std::lock_guard<std::mutex> lock(gMutex);
  gStats.inUse -= static_cast<int64_t>(bytes);
  if (gMode == Mode::Caching && gStats.cached + static_cast<int64_t>(bytes) <= gCacheLimit) {
    gFreeLists[bytes].push_back(base);
    gStats.cached += static_cast<int64_t>(bytes);
    return;
  }
  std::free(base);
}

class CachingCPUAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    const c10::Device device(c10::DeviceType::CPU);
    if (n == 0) return {nullptr, nullptr, &FreeBlock, device};
    size_t bytes = gMode == Mode::Caching ? SizeClass(n) : n;
    void* base = nullptr;
    {
      std::lock_guard<std::mutex> lock(gMutex);
      gStats.allocations++;
      auto it = gFreeLists.find(bytes);
      if (it != gFreeLists.end() && !it->second.empty()) {
        base = it->second.back();
        it->second.pop_back();
        gStats.cached -= static_cast<int64_t>(bytes);
        gStats.cacheHits++;
      }
    }
    if (base == nullptr) {
      base = SystemAlloc(bytes);
      if (base == nullptr) {
        // Out of memory: give the cache back to the system and try once more.
        {
          std::lock_guard<std::mutex> lock(gMutex);
          EmptyCacheLocked();
        }
        base = SystemAlloc(bytes);
        TORCH_CHECK(base != nullptr, "DefaultCPUAllocator: not enough memory: you tried to allocate ", n, " bytes.");
      }
      std::memcpy(base, &bytes, sizeof(bytes));
    }
    {
      std::lock_guard<std::mutex> lock(gMutex);
      gStats.inUse += static_cast<int64_t>(bytes);
      if (gStats.inUse > gStats.peakInUse) gStats.peakInUse = gStats.inUse;
    }
    void* data = static_cast<char*>(base) + kHeader;
    return {data, data, &FreeBlock, device};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &FreeBlock; }
};

CachingCPUAllocator gAllocator;

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::Caching: return "caching";
    case Mode::Mallopt: return "mallopt";
    case Mode::System: return "system";
  }
  return "?";
}

Napi::Value Stats_(const Napi::CallbackInfo& info) {
  Stats s;
  int64_t limit;
  Mode mode;
  {
    std::lock_guard<std::mutex> lock(gMutex);
    s = gStats;
    limit = gCacheLimit;
    mode = gMode;
  }
  auto o = Napi::Object::New(info.Env());
  o.Set("mode", ModeName(mode));
  o.Set("inUseBytes", static_cast<double>(s.inUse));
  o.Set("peakInUseBytes", static_cast<double>(s.peakInUse));
  o.Set("cachedBytes", static_cast<double>(s.cached));
  o.Set("cacheLimitBytes", static_cast<double>(limit));
  o.Set("allocations", static_cast<double>(s.allocations));
  o.Set("cacheHits", static_cast<double>(s.cacheHits));
  return o;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(gMutex);
  EmptyCacheLocked();
  malloc_trim(0);
  return info.Env().Undefined();
}

Napi::Value SetCacheLimit(const Napi::CallbackInfo& info) {
  double limit = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!std::isfinite(limit) || limit < 0 || limit >= 9.2e18) {
    throw Napi::TypeError::New(info.Env(), "cache limit must be a non-negative, finite number of bytes");
  }
  std::lock_guard<std::mutex> lock(gMutex);
  gCacheLimit = static_cast<int64_t>(limit);
  if (gStats.cached > gCacheLimit) EmptyCacheLocked();
  return info.Env().Undefined();
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(gMutex);
  gStats.peakInUse = gStats.inUse;
  return info.Env().Undefined();
}

}  // namespace

// The memory this process may use: physical memory, or less when a cgroup caps it. Read under
// DISTILLERY_CGROUP_ROOT (default /sys/fs/cgroup): the root's v2 memory.max or v1
// memory/memory.limit_in_bytes (a container sees its own cgroup there), and those of this process's
// cgroup and every ancestor named in /proc/self/cgroup (DISTILLERY_CGROUP_PROC overrides the path),
// e.g. a systemd slice on a host. The smallest cap wins; "max" or an absent file means no cap.
static int64_t AvailableMemory() {
  int64_t memory = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  const char* root = std::getenv("DISTILLERY_CGROUP_ROOT");
  const char* proc = std::getenv("DISTILLERY_CGROUP_PROC");
  std::string base = root ? root : "/sys/fs/cgroup";
  std::vector<std::string> files = {base + "/memory.max", base + "/memory/memory.limit_in_bytes"};
  std::ifstream self(proc ? proc : "/proc/self/cgroup");
  std::string line;
  while (std::getline(self, line)) {
    // v2: "0::/a/b"; v1: "7:memory:/a/b" (controllers may share a line: "4:cpu,memory:/a").
    size_t first = line.find(':');
    size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    std::string controllers = line.substr(first + 1, second - first - 1);
    bool v2 = controllers.empty();
    if (!v2 && ("," + controllers + ",").find(",memory,") == std::string::npos) continue;
    for (std::string p = line.substr(second + 1); p.size() > 1; p = p.substr(0, p.rfind('/')))
      files.push_back(v2 ? base + p + "/memory.max" : base + "/memory" + p + "/memory.limit_in_bytes");
  }
  for (const std::string& path : files) {
    std::ifstream file(path);
    std::string value;
    if (!(file >> value) || value == "max") continue;
    char* end = nullptr;
    long long cap = std::strtoll(value.c_str(), &end, 10);
    if (end != value.c_str() && cap > 0 && cap < memory) memory = cap;
  }
  return memory;
}

static void InstallOnce() {
  const char* env = std::getenv("DISTILLERY_ALLOCATOR");
  std::string mode = env ? env : "caching";
  gMode = mode == "system" ? Mode::System : mode == "mallopt" ? Mode::Mallopt : Mode::Caching;
  if (gMode != Mode::System) {
    // Keep glibc from mmapping large blocks and from trimming the heap, so
    // memory libtorch allocates outside this allocator (oneDNN scratch) is reused too.
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  // Default cache cap: half of the memory available to this process; setCacheLimit() changes it.
  gCacheLimit = AvailableMemory() / 2;
  // Priority above libtorch's default (0), so ours wins over the static registration.
  c10::SetCPUAllocator(&gAllocator, /*priority=*/10);
}

// The addon loads once per Node environment (the main thread and each worker), but the allocator
// and its globals are per process: install them exactly once, before any thread can allocate with them.
void InstallAllocator() {
  static std::once_flag once;
  std::call_once(once, InstallOnce);
}

void RegisterAllocator(Napi::Env env, Napi::Object exports) {
  exports.Set("allocatorStats", Napi::Function::New(env, Stats_, "allocatorStats"));
  exports.Set("allocatorEmptyCache", Napi::Function::New(env, EmptyCache, "allocatorEmptyCache"));
  exports.Set("allocatorSetCacheLimit", Napi::Function::New(env, SetCacheLimit, "allocatorSetCacheLimit"));
  exports.Set("allocatorResetPeak", Napi::Function::New(env, ResetPeak, "allocatorResetPeak"));
}

}  // namespace distillery
