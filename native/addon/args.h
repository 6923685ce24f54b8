// The addon's argument checks, shared by its source files: each turns a wrong argument into a
// JS TypeError or RangeError that names it, before any memory is touched.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <new>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace peerless {

// Every dimension is below 2^31, so a product of two or three of them cannot wrap in 64 bits;
// longer products go through count(), which checks each step.
constexpr int64_t kDimLimit = int64_t(1) << 31;

// A Float32Array argument with the length its shape says; throws a JS TypeError otherwise.
inline float *floats(const Napi::Value &v, size_t want, const char *what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Float32Array");
  }
  auto a = v.As<Napi::Float32Array>();
  if (a.ElementLength() != want) {
    throw Napi::RangeError::New(v.Env(), std::string(what) + " has " + std::to_string(a.ElementLength()) +
                                             " elements, its shape says " + std::to_string(want));
  }
  return a.Data();
}

// An integer argument in [lo, hi); a non-number, a fraction or one out of range is a JS error.
inline int64_t integer(const Napi::Value &v, const char *what, int64_t lo = -kDimLimit + 1, int64_t hi = kDimLimit) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : NAN;
  if (!(d == std::floor(d)) || d < static_cast<double>(lo) || d >= static_cast<double>(hi)) {
    throw Napi::RangeError::New(v.Env(), std::string(what) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
  }
  return static_cast<int64_t>(d);
}

// A dimension or count: 0 <= d < 2^31.
inline int64_t dimension(const Napi::Value &v, const char *what) { return integer(v, what, 0, kDimLimit); }

// An array of n integers in [lo, hi) (geometry, pool windows: |x| < 2^31 by default).
inline std::vector<int64_t> ints(const Napi::Value &v, size_t n, const char *what, int64_t lo = -kDimLimit + 1, int64_t hi = kDimLimit) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != n) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be an array of " + std::to_string(n) + " integers");
  }
  auto a = v.As<Napi::Array>();
  std::vector<int64_t> out(n);
  for (uint32_t i = 0; i < n; i++) out[i] = integer(a.Get(i), what, lo, hi);
  return out;
}

// A shape: n dimensions, each 0 <= d < 2^31.
inline std::vector<int64_t> dims(const Napi::Value &v, size_t n, const char *what) { return ints(v, n, what, 0, kDimLimit); }

// a * b, or a std::overflow_error (a JS Error through guarded()) where it would not fit in
// the address space; compared to a buffer's length afterwards.
inline size_t times(size_t a, size_t b) {
  size_t out;
  if (__builtin_mul_overflow(a, b, &out) || out > SIZE_MAX / sizeof(float)) throw std::overflow_error("a size overflows");
  return out;
}

inline size_t count(const std::vector<int64_t> &s) {
  size_t n = 1;
  for (auto d : s) n = times(n, static_cast<size_t>(d));
  return n;
}

// Runs an entry point's body, turning oneDNN's errors and any other C++ exception (bad_alloc,
// an overflowing size) into a one-line JS Error that names the call: one escaping a Node-API
// callback would abort the process.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo &info, const char *what, F body) {
  auto fail = [&](const std::string &why) {
    return Napi::Error::New(info.Env(), std::string(what) + ": " + why.substr(0, why.find('\n')));
  };
  try {
    return body();
  } catch (const Napi::Error &) {
    throw;
  } catch (const dnnl::error &e) {
    throw fail(std::string("oneDNN: ") + e.what());
  } catch (const std::bad_alloc &) {
    throw fail("out of memory");
  } catch (const std::exception &e) {
    throw fail(e.what());
  } catch (...) {
    throw fail("an unknown C++ exception");
  }
}

// An exported function whose every call runs inside guarded().
inline Napi::Function entry(Napi::Env env, const char *what, Napi::Value (*f)(const Napi::CallbackInfo &)) {
  return Napi::Function::New(
      env, [what, f](const Napi::CallbackInfo &info) { return guarded(info, what, [&] { return f(info); }); }, what);
}

}  // namespace peerless
