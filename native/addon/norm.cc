// Batch normalisation in training mode over the last axis of a rows x cols matrix (an NHWC
// tensor seen as N*H*W rows of C channels), forward and gradient, each in a few straight
// passes over memory. TensorFlow.js builds the same from moments, batchNorm and their
// autodiff: about twenty kernels per layer, some of which allocate a full-size tensor of ones
// in JavaScript (the Mean and Sum gradients).
//
//   batchNormTraining(x, rows, cols, gamma, beta, epsilon, y, mean, variance, relu)
//     mean, variance: the batch's, biased (divided by rows), as tf.moments gives them;
//     with relu, y = max(0, normalised): the ReLU that follows it in ResNet and DenseNet.
//   batchNormTrainingGrad(dy, x, rows, cols, gamma, mean, variance, epsilon, dx, dgamma, dbeta, y)
//     the gradient through the normalisation and through the batch statistics; with y (the
//     fused forward's output, else null), dy flows only where y > 0, as ReLU's gradient.
// Per-channel sums are kept in double, so the result does not drift with the row count.
#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "args.h"

namespace peerless {
namespace {

struct Matrix {
  int64_t rows, cols;
};

Matrix matrixArgs(const Napi::CallbackInfo &info, int rowsAt, const char *what) {
  int64_t rows = dimension(info[rowsAt], (std::string(what) + ": rows").c_str());
  int64_t cols = dimension(info[rowsAt + 1], (std::string(what) + ": cols").c_str());
  if (rows < 1 || cols < 1) throw Napi::RangeError::New(info.Env(), std::string(what) + ": rows and cols must be at least 1");
  times(rows, cols);  // the product fits
  return {rows, cols};
}

double epsilonArg(const Napi::CallbackInfo &info, int at, const char *what) {
  double eps = info[at].As<Napi::Number>().DoubleValue();
  if (!(eps >= 0) || !std::isfinite(eps)) throw Napi::RangeError::New(info.Env(), std::string(what) + ": epsilon must be finite and >= 0");
  return eps;
}

Napi::Value BatchNormTraining(const Napi::CallbackInfo &info) {
  const char *what = "batchNormTraining";
  Matrix m = matrixArgs(info, 1, what);
  const size_t n = static_cast<size_t>(m.rows * m.cols), C = static_cast<size_t>(m.cols);
  const float *x = floats(info[0], n, "x"), *gamma = floats(info[3], C, "gamma"), *beta = floats(info[4], C, "beta");
  double eps = epsilonArg(info, 5, what);
  float *y = floats(info[6], n, "y"), *mean = floats(info[7], C, "mean"), *variance = floats(info[8], C, "variance");
  const bool relu = info[9].ToBoolean();

  std::vector<double> acc(C, 0.0);
  for (int64_t r = 0; r < m.rows; r++) {
    const float *row = x + r * m.cols;
    for (size_t c = 0; c < C; c++) acc[c] += row[c];
  }
  std::vector<float> mu(C);
  for (size_t c = 0; c < C; c++) mu[c] = static_cast<float>(acc[c] / m.rows), acc[c] = 0.0;
  // Two passes: the variance from squared differences, not E[x^2] - E[x]^2, which cancels.
  for (int64_t r = 0; r < m.rows; r++) {
    const float *row = x + r * m.cols;
    for (size_t c = 0; c < C; c++) {
      double d = row[c] - mu[c];
      acc[c] += d * d;
    }
  }
  std::vector<float> scale(C), shift(C);
  for (size_t c = 0; c < C; c++) {
    double var = acc[c] / m.rows, invStd = 1.0 / std::sqrt(var + eps);
    mean[c] = mu[c];
    variance[c] = static_cast<float>(var);
    scale[c] = static_cast<float>(gamma[c] * invStd);
    shift[c] = static_cast<float>(beta[c] - mu[c] * gamma[c] * invStd);
  }
  for (int64_t r = 0; r < m.rows; r++) {
    const float *row = x + r * m.cols;
    float *out = y + r * m.cols;
    if (relu) {
      for (size_t c = 0; c < C; c++) out[c] = std::max(row[c] * scale[c] + shift[c], 0.0f);
    } else {
      for (size_t c = 0; c < C; c++) out[c] = row[c] * scale[c] + shift[c];
    }
  }
  return info.Env().Undefined();
}

// ReLU's gradient for one row where the forward fused it: dy where y > 0, else 0, into a
// row-sized buffer the passes then read as dy (so they keep their plain, vectorised loops).
static const float *maskedRow(const float *__restrict g, const float *__restrict y, float *__restrict into, size_t C) {
  if (y == nullptr) return g;
  // Both loads unconditional, so the compiler selects instead of branching: half of a ReLU's
  // outputs are 0, in no pattern, and a branch there mispredicts (8x slower, measured).
  for (size_t c = 0; c < C; c++) {
    const float gc = g[c], yc = y[c];
    into[c] = yc > 0.0f ? gc : 0.0f;
  }
  return into;
}

// The gradient's two passes; with y (the fused forward's output), through ReLU first.
void gradPasses(const float *dy, const float *x, const float *y, Matrix m, const float *gamma, const float *mean,
                const float *variance, double eps, float *dx, float *dgamma, float *dbeta) {
  const size_t C = static_cast<size_t>(m.cols);
  std::vector<float> row(C);
  std::vector<double> sumDy(C, 0.0), sumDyX(C, 0.0);
  for (int64_t r = 0; r < m.rows; r++) {
    const size_t at = static_cast<size_t>(r * m.cols);
    const float *g = maskedRow(dy + at, y == nullptr ? nullptr : y + at, row.data(), C), *xr = x + at;
    for (size_t c = 0; c < C; c++) {
      sumDy[c] += g[c];
      sumDyX[c] += static_cast<double>(g[c]) * (xr[c] - mean[c]);
    }
  }
  // dx = a * dy + b * x + k per channel.
  std::vector<float> a(C), b(C), k(C);
  for (size_t c = 0; c < C; c++) {
    double invStd = 1.0 / std::sqrt(static_cast<double>(variance[c]) + eps);
    double ac = gamma[c] * invStd, bc = -ac * invStd * invStd * sumDyX[c] / m.rows;
    dbeta[c] = static_cast<float>(sumDy[c]);
    dgamma[c] = static_cast<float>(sumDyX[c] * invStd);
    a[c] = static_cast<float>(ac);
    b[c] = static_cast<float>(bc);
    k[c] = static_cast<float>(-ac * sumDy[c] / m.rows - bc * mean[c]);
  }
  for (int64_t r = 0; r < m.rows; r++) {
    const size_t at = static_cast<size_t>(r * m.cols);
    const float *g = maskedRow(dy + at, y == nullptr ? nullptr : y + at, row.data(), C), *xr = x + at;
    float *out = dx + at;
    for (size_t c = 0; c < C; c++) out[c] = a[c] * g[c] + b[c] * xr[c] + k[c];
  }
}

// With xhat = (x - mean) * invStd and R rows:
//   dbeta = sum dy, dgamma = sum dy * xhat,
//   dx = gamma * invStd * (dy - dbeta / R - xhat * dgamma / R).
Napi::Value BatchNormTrainingGrad(const Napi::CallbackInfo &info) {
  const char *what = "batchNormTrainingGrad";
  Matrix m = matrixArgs(info, 2, what);
  const size_t n = static_cast<size_t>(m.rows * m.cols), C = static_cast<size_t>(m.cols);
  const float *dy = floats(info[0], n, "dy"), *x = floats(info[1], n, "x");
  const float *gamma = floats(info[4], C, "gamma"), *mean = floats(info[5], C, "mean"), *variance = floats(info[6], C, "variance");
  double eps = epsilonArg(info, 7, what);
  float *dx = floats(info[8], n, "dx"), *dgamma = floats(info[9], C, "dgamma"), *dbeta = floats(info[10], C, "dbeta");
  const float *y = info[11].IsNull() || info[11].IsUndefined() ? nullptr : floats(info[11], n, "y");
  gradPasses(dy, x, y, m, gamma, mean, variance, eps, dx, dgamma, dbeta);
  return info.Env().Undefined();
}

}  // namespace

void addNormKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormTraining", entry(env, "batchNormTraining", BatchNormTraining));
  exports.Set("batchNormTrainingGrad", entry(env, "batchNormTrainingGrad", BatchNormTrainingGrad));
}

}  // namespace peerless
