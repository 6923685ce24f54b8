// The one oneDNN engine and stream of the addon, shared by its source files (an inline
// function's static is one object across them).
#pragma once
#include <oneapi/dnnl/dnnl.hpp>

namespace peerless {

inline dnnl::engine &engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

inline dnnl::stream &stream() {
  static dnnl::stream s(engine());
  return s;
}

}  // namespace peerless
