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

// A primitive's attributes: a ReLU applied as it writes its output, or none.
inline dnnl::primitive_attr reluAttr(bool relu) {
  dnnl::primitive_attr attr;
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  return attr;
}

}  // namespace peerless
