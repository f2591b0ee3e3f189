{
  "targets": [
    {
      "target_name": "distillery_native",
      "sources": ["src/addon.cc", "src/allocator.cc", "src/ops_tensor.cc", "src/ops_math.cc", "src/ops_nn.cc", "src/conv_autograd.cc", "src/norm_act_pool.cc", "src/dist.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node torch-config.cjs include)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "USE_DISTRIBUTED", "USE_C10D_GLOO", "<!@(node torch-config.cjs defines)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-fopenmp-simd", "-fno-trapping-math", "<!@(node torch-config.cjs arch)", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "libraries": ["<!@(node torch-config.cjs libs)"]
    }
  ]
}
