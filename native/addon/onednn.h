// The one oneDNN engine and stream of the addon, shared by its source files (an inline
// function's static is one object across them), and the buffers its kernels reuse.
#pragma once
#include <cstdlib>
#include <memory>
#include <new>
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

// Per-thread buffers reused across calls, one per role in a call: a buffer allocated per call
// comes in fresh pages, which fault in at first touch (a Winograd convolution's scratchpad and
// blocked copies of a 13 MB activation: 140,000 page faults per resnet18 gradient). Each
// function thread keeps its largest ones.
enum Scratch { kIn, kIn2, kOut, kWeights, kPad, kScratchSlots };

inline void *scratch(Scratch slot, size_t bytes) {
  struct Buffer {
    std::unique_ptr<void, decltype(&std::free)> p{nullptr, &std::free};
    size_t bytes = 0;
  };
  thread_local Buffer buffers[kScratchSlots];
  Buffer &b = buffers[slot];
  if (b.bytes < bytes || !b.p) {
    b.p.reset();  // the old one first: never both at once
    size_t rounded = (bytes + 63) / 64 * 64 + 64;
    b.p.reset(std::aligned_alloc(64, rounded));
    if (!b.p) throw std::bad_alloc();
    b.bytes = rounded;
  }
  return b.p.get();
}

// A primitive's attributes: its scratchpad given by the caller (scratchpad() below, not
// allocated by oneDNN per primitive object, hence per call), and a ReLU applied as it writes
// its output, or none.
inline dnnl::primitive_attr attributes(bool relu = false) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  return attr;
}

// The scratchpad argument of a primitive made with attributes().
inline dnnl::memory scratchpad(const dnnl::memory::desc &d) {
  return dnnl::memory(d, engine(), scratch(kPad, d.get_size()));
}

}  // namespace peerless
