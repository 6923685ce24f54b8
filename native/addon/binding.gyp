{
  "targets": [
    {
      "target_name": "peerless_native",
      "sources": ["conv.cc", "norm.cc", "pool.cc", "copy.cc", "matmul.cc"],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O3", "-std=c++17", "-fopenmp"],
      "cflags_cc!": ["-fno-exceptions"],
      "libraries": ["-ldnnl", "-fopenmp"],
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
