// Prints the compiler/linker flags for the LibTorch the addon is built against,
// for binding.gyp's command expansions. Default: Debian's libtorch-dev
// (headers under /usr/include, libraries on the default path). With
// LIBTORCH=/path/to/libtorch: that distribution (e.g. a CUDA build), linked
// with an rpath so no LD_LIBRARY_PATH is needed at run time.
// `node torch-config.cjs arch` prints the target-CPU flag for the hand-written kernels:
// -march=native (AVX-512 where the CPU has it; the x86-64 baseline gives these loops only
// SSE2), or DISTILLERY_MARCH=<arch> (e.g. x86-64-v2) for a binary that runs on other CPUs.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = process.env.LIBTORCH;
const what = process.argv[2];

function systemFlags() {
  switch (what) {
    case 'include':
      return ['/usr/include/torch/csrc/api/include'];
    case 'libs':
      return ['-ltorch', '-ltorch_cpu', '-lc10'];
    default:
      return [];
  }
}

// LibTorch distributions record the C++ ABI they were built with in TorchConfig.cmake.
function cxx11Abi(dir) {
  const cfg = path.join(dir, 'share', 'cmake', 'Torch', 'TorchConfig.cmake');
  if (!fs.existsSync(cfg)) return null;
  const m = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(fs.readFileSync(cfg, 'utf8'));
  return m ? m[1] : null;
}

function distributionFlags(dir) {
  const lib = path.join(dir, 'lib');
  if (!fs.existsSync(path.join(dir, 'include', 'torch'))) {
    console.error(`LIBTORCH=${dir} does not look like a LibTorch distribution (no include/torch inside).`);
    process.exit(1);
  }
  const hasCuda = fs.existsSync(path.join(lib, 'libtorch_cuda.so'));
  switch (what) {
    case 'include':
      return [path.join(dir, 'include'), path.join(dir, 'include', 'torch', 'csrc', 'api', 'include')];
    case 'libs':
      // --no-as-needed keeps libtorch_cuda loaded although no symbol of it is referenced
      // directly: its static initialisers register the CUDA backend.
      return [
        `-L${lib}`,
        `-Wl,-rpath,${lib}`,
        '-Wl,--no-as-needed',
        ...(hasCuda ? ['-ltorch_cuda'] : []),
        '-ltorch',
        '-ltorch_cpu',
        '-lc10',
        '-Wl,--as-needed',
      ];
    case 'defines': {
      const abi = cxx11Abi(dir);
      return abi === null ? [] : [`_GLIBCXX_USE_CXX11_ABI=${abi}`];
    }
    default:
      return [];
  }
}

if (what === 'arch') console.log(`-march=${process.env.DISTILLERY_MARCH || 'native'}`);
else console.log((root ? distributionFlags(path.resolve(root)) : systemFlags()).join(' '));
