// visionlab's fused sine layers for the CPU: a stack of layers y = sin(v), v = x W'^T + b' (SIREN), or y = sin(a v)
// with a = omega_0 (|v| + 1) (FINER), then optionally a linear head, forward and backward; compiled once per machine
// by visionlab/util/native.py.
//
// Why C++: the layers' matrix products already run near the core's rate in PyTorch, but each element-wise step
// around them (the bias copy, sin, cos, the gradient's product with cos, the bias sum) is one more pass over an
// (N, W) array in memory, and torch.sin and torch.cos each do their own range reduction. Here a block of kRows rows
// goes through every layer while it stays in the core's L2 cache, the products by MKL's sgemm where PyTorch has MKL
// (at::mm_out otherwise):
//
// - forward: each layer's product, then one vectorised loop that adds the bias and computes sin and cos from one
//   range reduction; the sine is the next layer's input, and with it the cosine (the slope) is kept for backward;
// - backward, from the head down: one loop forms dL/dv = dL/dy slope and sums it into dL/db'; then
//   dL/dW' += dL/dv^T x and dL/dx = dL/dv W', the layer below's dL/dy, still in cache.
//
// A call of 4 blocks and more has MKL pack each weight once for all its blocks (sgemm otherwise packs it again for
// every block): about 1 % of the step.
//
// Measured and left out (a 256 px step, one thread): keeping only v and recomputing sin and cos in backward halves
// the memory kept but is slower (0.57 s against 0.53 s); hand-written loops in place of MKL's thin products, the
// head's (C = 3) slower by up to 4 %, the first layer's (I = 2) no faster; streaming (non-temporal) stores of the
// slopes, 1 % slower; blocks of 256, 384, 768 and 1024 rows, slower than 512. No library offers a matrix product
// with a sine epilogue on the CPU (oneDNN's post-ops have no sine), hence this file.
//
// The sine and cosine: u = k pi + r with k = rint(u / pi) and r in [-pi/2, pi/2] (pi split in three parts, Cody
// and Waite, so that k pi is exact to |k| < 2^16), then sin r and cos r by polynomials of degree 9 and 10 (fitted
// to sin and cos on [-pi/2, pi/2] in float64 by iteratively reweighted least squares, near minimax), and the sign
// (-1)^k: within 1.4e-7 of sin u and cos u (float32's spacing at 1 is 6e-8, torch.sin's error 3.6e-8) for
// |u| < 65536; a row holding a larger |u| is computed with std::sin / std::cos instead. Written with explicit fused
// multiply-adds and built with -ffp-contract=off, so that every loop computing one formula gives the same bits.
//
// Shapes: N rows (points), I input features, W output features (width), C outputs of the head, m rows of a block.
// Only float32, contiguous, CPU.

#include <torch/extension.h>
#include <ATen/Config.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if AT_MKL_ENABLED()
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);  // MKL's, exported by libtorch_cpu
// MKL's packed products (C enums are ints): a weight packed once serves every block of a call
extern "C" size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
extern "C" void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                                 const float* src, int ld, float* dest);
extern "C" void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                                    const float* b, int ldb, float beta, float* c, int ldc);
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;  // mkl_cblas.h
#endif

namespace {

constexpr int64_t kRows = 512;           // rows per block: a (512, 256) float block is 512 KiB, in L2 with its peers
constexpr int64_t kPackFrom = 4 * kRows;  // a call of 4 blocks and more packs each weight once (~30 us a weight)
constexpr float kReducedMax = 65536.0f;  // from this |u| on the three-part reduction loses bits: std::sin instead

// x with its sign bit xor-ed with sign's.
inline float flip(float x, uint32_t sign) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  bits ^= sign;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// One row of n values: v = in (+ b with kBias), u = v (SIREN) or a v with a = omega0 (|v| + 1) (FINER);
// s_out = sin(u) with kSin, c_out = cos(u) (SIREN) or cos(u) a (FINER) with kCos. Returns max |u| so that the
// caller can redo a row beyond the reduction's range with redo_row.
template <bool kFiner, bool kBias, bool kSin, bool kCos>
float sincos_row(const float* __restrict in, const float* __restrict b, float* __restrict s_out,
                 float* __restrict c_out, float omega0, int64_t n) {
  const float inv_pi = 0.318309886183790672f;
  const float p1 = 3.140625f, p2 = 9.67502593994140625e-4f, p3 = 1.509957990978376432e-7f;  // pi = p1 + p2 + p3
  float umax = 0.0f;
#pragma omp simd reduction(max : umax)
  for (int64_t i = 0; i < n; ++i) {
    float v = in[i];
    if (kBias) v = v + b[i];
    float a = 1.0f, u = v;
    if (kFiner) {
      a = omega0 * (std::fabs(v) + 1.0f);
      u = a * v;
    }
    umax = std::max(umax, std::fabs(u));
    const float k = __builtin_rintf(u * inv_pi);
    const float r = std::fma(-k, p3, std::fma(-k, p2, std::fma(-k, p1, u)));  // u - k pi, in [-pi/2, pi/2]
    const float r2 = r * r;
    const uint32_t sign = static_cast<uint32_t>(static_cast<int32_t>(k)) << 31;  // (-1)^k as the sign bit
    if (kSin) {  // sin r = r + r^3 P(r^2), degree 9
      const float ps = std::fma(std::fma(std::fma(2.6084580895e-6f, r2, -1.9810874073e-4f), r2, 8.3330841735e-3f), r2,
                                -1.6666659713e-1f);
      s_out[i] = flip(std::fma(r * r2, ps, r), sign);
    }
    if (kCos) {  // cos r = 1 + r^2 Q(r^2), degree 10
      const float pc = std::fma(std::fma(std::fma(std::fma(-2.6073510639e-7f, r2, 2.4761657187e-5f), r2,
                                                  -1.3888397953e-3f), r2, 4.1666641831e-2f), r2, -0.5f);
      c_out[i] = flip(std::fma(r2, pc, 1.0f), sign) * a;
    }
  }
  return umax;
}

// The same row (v = in + b) with std::sin / std::cos.
void redo_row(const float* in, const float* b, float* s_out, float* c_out, bool finer, float omega0, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float a = 1.0f, u = in[i] + b[i];
    if (finer) {
      a = omega0 * (std::fabs(u) + 1.0f);
      u = a * u;
    }
    s_out[i] = std::sin(u);
    if (c_out != nullptr) c_out[i] = std::cos(u) * a;
  }
}

// The loop over a block after its product z (m, W): y = sin(u) into y and, unless slope is null, the slope
// cos(u) (SIREN) or cos(u) a (FINER) into slope.
void activate_block(const float* z, const float* b, float* y, float* slope, bool finer, float omega0, int64_t m,
                    int64_t width) {
  at::parallel_for(0, m, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const float* zi = z + i * width;
      float* yi = y + i * width;
      float* ci = slope == nullptr ? nullptr : slope + i * width;
      float umax;
      if (ci != nullptr) {
        umax = finer ? sincos_row<true, true, true, true>(zi, b, yi, ci, omega0, width)
                     : sincos_row<false, true, true, true>(zi, b, yi, ci, omega0, width);
      } else {
        umax = finer ? sincos_row<true, true, true, false>(zi, b, yi, nullptr, omega0, width)
                     : sincos_row<false, true, true, false>(zi, b, yi, nullptr, omega0, width);
      }
      if (umax >= kReducedMax) redo_row(zi, b, yi, ci, finer, omega0, width);  // NaN and inf give NaN either way
    }
  });
}

// dL/dv = dL/dy slope over the columns [c0, c1) of m rows, into gz, and summed over the rows into gb.
void times_slope(const float* g, const float* slope, float* gz, float* gb, int64_t m, int64_t w, int64_t c0,
                 int64_t c1) {
  for (int64_t i = 0; i < m; ++i) {
    const float* __restrict gi = g + i * w;
    const float* __restrict si = slope + i * w;
    float* __restrict zi = gz + i * w;
    float* __restrict bi = gb;
#pragma omp simd
    for (int64_t j = c0; j < c1; ++j) {
      const float d = gi[j] * si[j];
      zi[j] = d;
      bi[j] += d;
    }
  }
}

// C (M, N) = op(A) op(B) + beta C, row-major floats; op(A) (M, K) is A (M, K), or A (K, M) transposed with ta.
// Where PyTorch has MKL, its sgemm directly: at::mm_out would call the same, after ~5 us of dispatch a call, and
// a step makes a thousand and more of them.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
          int64_t ldb, float beta, float* c, int64_t ldc) {
#if AT_MKL_ENABLED()
  // row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T
  const int mi = static_cast<int>(n), ni = static_cast<int>(m), ki = static_cast<int>(k);
  const int la = static_cast<int>(ldb), lb = static_cast<int>(lda), lc = static_cast<int>(ldc);
  const float one = 1.0f;
  sgemm_(tb ? "T" : "N", ta ? "T" : "N", &mi, &ni, &ki, &one, b, &la, a, &lb, &beta, c, &lc);
#else
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  auto av = ta ? torch::from_blob(const_cast<float*>(a), {k, m}, {lda, 1}, options).t()
               : torch::from_blob(const_cast<float*>(a), {m, k}, {lda, 1}, options);
  auto bv = tb ? torch::from_blob(const_cast<float*>(b), {n, k}, {ldb, 1}, options).t()
               : torch::from_blob(const_cast<float*>(b), {k, n}, {ldb, 1}, options);
  auto cv = torch::from_blob(c, {m, n}, {ldc, 1}, options);
  if (beta == 0.0f) {
    at::mm_out(cv, av, bv);
  } else {
    cv.mul_(beta).addmm_(av, bv);
  }
#endif
}

// op(B) (K, N) of C (M, N) = A (M, K) op(B), a layer's weight: with pack, MKL packs it once for every product with
// M = m rows (a block), instead of once a product; other products (the last block, no pack, no MKL) are gemm's.
class PackedB {
 public:
  PackedB(bool tb, int64_t m, int64_t n, int64_t k, const float* b, int64_t ldb, bool pack)
      : tb_(tb), m_(pack ? m : -1), n_(n), k_(k), b_(b), ldb_(ldb) {
#if AT_MKL_ENABLED()
    if (!pack) return;
    const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, static_cast<int>(m), static_cast<int>(n),
                                                   static_cast<int>(k));
    packed_ = torch::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))},
                           torch::TensorOptions().dtype(torch::kFloat32));
    cblas_sgemm_pack(kRowMajor, kBMatrix, tb ? kTrans : kNoTrans, static_cast<int>(m), static_cast<int>(n),
                     static_cast<int>(k), 1.0f, b, static_cast<int>(ldb), packed_.data_ptr<float>());
#endif
  }

  // C (m, N) = A (m, K) op(B) + beta C
  void times(int64_t m, const float* a, int64_t lda, float beta, float* c, int64_t ldc) const {
#if AT_MKL_ENABLED()
    if (m == m_) {
      cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(m), static_cast<int>(n_),
                          static_cast<int>(k_), a, static_cast<int>(lda), packed_.data_ptr<float>(),
                          static_cast<int>(ldb_), beta, c, static_cast<int>(ldc));
      return;
    }
#endif
    gemm(false, tb_, m, n_, k_, a, lda, b_, ldb_, beta, c, ldc);
  }

 private:
  bool tb_;
  int64_t m_, n_, k_;
  const float* b_;
  int64_t ldb_;
  torch::Tensor packed_;
};

void check(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous(), name,
              " must be a contiguous float32 CPU tensor");
}

// A (rows, cols) view of the first rows * cols floats of a flat buffer.
torch::Tensor block(const torch::Tensor& flat, int64_t rows, int64_t cols) {
  return flat.narrow(0, 0, rows * cols).view({rows, cols});
}

// The layers' widths, checked against x (N, I), the weights (W_l, I_l), the biases (W_l,) and the head (C, W), (C,).
int64_t check_stack(const torch::Tensor& x, const std::vector<torch::Tensor>& ws, const std::vector<torch::Tensor>& bs,
                    const std::vector<double>& omegas, const std::vector<torch::Tensor>& head) {
  TORCH_CHECK(!ws.empty() && bs.size() == ws.size() && omegas.size() == ws.size(),
              "one weight, bias and omega_0 per layer");
  check(x, "x");
  TORCH_CHECK(x.dim() == 2, "x must be (N, I)");
  int64_t in = x.size(1), widest = in;
  for (size_t l = 0; l < ws.size(); ++l) {
    check(ws[l], "weight"), check(bs[l], "bias");
    TORCH_CHECK(ws[l].dim() == 2 && ws[l].size(1) == in && bs[l].numel() == ws[l].size(0), "layer ", l,
                ": weight (W, I) and bias (W,) do not match its input of ", in, " features");
    in = ws[l].size(0);
    widest = std::max(widest, in);
  }
  TORCH_CHECK(head.empty() || head.size() == 2, "head: a weight and a bias, or nothing");
  if (!head.empty()) {
    check(head[0], "head weight"), check(head[1], "head bias");
    TORCH_CHECK(head[0].dim() == 2 && head[0].size(1) == in && head[1].numel() == head[0].size(0),
                "head: weight (C, W) and bias (C,) do not match the last layer's ", in, " features");
  }
  return widest;
}

}  // namespace

// Forward: x (N, I) through the layers l = 0..L-1 (weights ws[l] (W_l, I_l), biases bs[l] (W_l,)), then the head
// (weight (C, W), bias (C,)) if given. Returns [y (N, C) or (N, W)] and, with keep, what backward needs: the inputs
// of layers 1..L-1 and of the head (N, W_l) each, then each layer's slope (N, W_l).
std::vector<torch::Tensor> forward(torch::Tensor x, std::vector<torch::Tensor> ws, std::vector<torch::Tensor> bs,
                                   std::vector<double> omegas, bool finer, bool keep, std::vector<torch::Tensor> head) {
  const int64_t widest = check_stack(x, ws, bs, omegas, head);
  const int64_t layers = static_cast<int64_t>(ws.size()), n = x.size(0), last_width = ws.back().size(0);
  const bool has_head = !head.empty();
  auto options = x.options();
  auto y = torch::empty({n, has_head ? head[0].size(0) : last_width}, options);
  std::vector<torch::Tensor> inputs, slopes;  // kept for backward
  for (int64_t l = 0; keep && l < layers; ++l) {
    if (l > 0) inputs.push_back(torch::empty({n, ws[l].size(1)}, options));
    slopes.push_back(torch::empty({n, ws[l].size(0)}, options));
  }
  if (keep && has_head) inputs.push_back(torch::empty({n, last_width}, options));
  const int64_t rows = std::min(kRows, n);
  auto scratch = torch::empty({3, rows * widest}, options);  // z, and without keep two activations ping-pong
  std::vector<PackedB> packed;  // W'_l^T for z = x W'^T, once for every block
  for (int64_t l = 0; l < layers; ++l)
    packed.emplace_back(true, rows, ws[l].size(0), ws[l].size(1), ws[l].data_ptr<float>(), ws[l].size(1),
                        n >= kPackFrom);
  for (int64_t r0 = 0; r0 < n; r0 += kRows) {
    const int64_t m = std::min(kRows, n - r0);
    torch::Tensor h = x.narrow(0, r0, m);  // the block's input to layer l, (m, I_l)
    for (int64_t l = 0; l < layers; ++l) {
      const int64_t width = ws[l].size(0);
      torch::Tensor z = block(scratch[0], m, width);
      const int64_t in = ws[l].size(1);  // z = x W'^T, (m, W_l)
      packed[l].times(m, h.data_ptr<float>(), in, 0.0f, z.data_ptr<float>(), width);
      torch::Tensor out = (l == layers - 1 && !has_head) ? y.narrow(0, r0, m)
                          : keep ? inputs[l].narrow(0, r0, m)
                                 : block(scratch[1 + l % 2], m, width);
      activate_block(z.data_ptr<float>(), bs[l].data_ptr<float>(), out.data_ptr<float>(),
                     keep ? slopes[l].data_ptr<float>() + r0 * width : nullptr, finer,
                     static_cast<float>(omegas[l]), m, width);
      h = out;
    }
    if (has_head) {  // (m, C) = h W_h^T + b_h
      const int64_t outs = head[0].size(0);
      float* yp = y.data_ptr<float>() + r0 * outs;
      gemm(false, true, m, outs, last_width, h.data_ptr<float>(), last_width, head[0].data_ptr<float>(),
           last_width, 0.0f, yp, outs);
      const float* hb = head[1].data_ptr<float>();
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < outs; ++j) yp[i * outs + j] += hb[j];
    }
  }
  std::vector<torch::Tensor> result{y};
  result.insert(result.end(), inputs.begin(), inputs.end());
  result.insert(result.end(), slopes.begin(), slopes.end());
  return result;
}

// Backward: dL/dy (N, C) or (N, W), the stack's input x (N, I), the inputs and slopes forward kept, the weights
// (and the head's weight, if forward had a head). Returns [dL/dx (N, I), or an undefined tensor unless need_grad_x,
// dL/dW'_l ..., dL/db'_l ..., then the head's dL/dW_h and dL/db_h].
std::vector<torch::Tensor> backward(torch::Tensor grad, torch::Tensor x, std::vector<torch::Tensor> inputs,
                                    std::vector<torch::Tensor> slopes, std::vector<torch::Tensor> ws,
                                    bool need_grad_x, std::vector<torch::Tensor> head) {
  const int64_t layers = static_cast<int64_t>(ws.size()), n = x.size(0);
  const bool has_head = !head.empty();
  TORCH_CHECK(static_cast<int64_t>(inputs.size()) == layers - 1 + has_head &&
              static_cast<int64_t>(slopes.size()) == layers, "backward needs what forward kept");
  check(grad, "grad"), check(x, "x");
  for (const auto& t : inputs) check(t, "input");
  for (const auto& t : slopes) check(t, "slope");
  auto options = x.options();
  int64_t widest = x.size(1);
  std::vector<torch::Tensor> grad_w, grad_b;
  for (int64_t l = 0; l < layers; ++l) {
    check(ws[l], "weight");
    grad_w.push_back(torch::zeros_like(ws[l]));
    grad_b.push_back(torch::zeros({ws[l].size(0)}, options));
    widest = std::max(widest, ws[l].size(0));
  }
  torch::Tensor head_w, head_b;
  if (has_head) head_w = torch::zeros_like(head[0]), head_b = torch::zeros({head[0].size(0)}, options);
  auto grad_x = need_grad_x ? torch::empty_like(x) : torch::Tensor();
  const int64_t rows = std::min(kRows, n);
  auto scratch = torch::empty({2, rows * widest}, options);  // one block's dL/dv, and the layer below's dL/dy
  std::vector<PackedB> packed;  // W'_l for dL/dx = dL/dv W', once for every block (W'_0 only if dL/dx is wanted)
  for (int64_t l = 0; l < layers; ++l)
    packed.emplace_back(false, rows, ws[l].size(1), ws[l].size(0), ws[l].data_ptr<float>(), ws[l].size(1),
                        n >= kPackFrom && (l > 0 || need_grad_x));
  for (int64_t r0 = 0; r0 < n; r0 += kRows) {
    const int64_t m = std::min(kRows, n - r0);
    torch::Tensor g = grad.narrow(0, r0, m);  // dL/dy of layer l's output, (m, W_l)
    if (has_head) {  // dL/db_h, dL/dW_h += dL/dy^T h, and dL/dh = dL/dy W_h, the top layer's dL/dy
      const int64_t outs = head[0].size(0), top = head[0].size(1);
      const float* gp = g.data_ptr<float>();
      float* hb = head_b.data_ptr<float>();
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < outs; ++j) hb[j] += gp[i * outs + j];
      gemm(true, false, outs, top, m, gp, outs, inputs[layers - 1].data_ptr<float>() + r0 * top, top, 1.0f,
           head_w.data_ptr<float>(), top);
      torch::Tensor gh = block(scratch[1], m, top);
      gemm(false, false, m, top, outs, gp, outs, head[0].data_ptr<float>(), top, 0.0f, gh.data_ptr<float>(), top);
      g = gh;
    }
    for (int64_t l = layers - 1; l >= 0; --l) {
      const int64_t width = ws[l].size(0), in = ws[l].size(1);
      torch::Tensor gz = block(scratch[0], m, width);
      const float* gp = g.data_ptr<float>();
      const float* sp = slopes[l].data_ptr<float>() + r0 * width;
      float* zp = gz.data_ptr<float>();
      float* gbp = grad_b[l].data_ptr<float>();
      // threads split the columns, so that each bias sum is added in the same order whatever the thread count
      at::parallel_for(0, width, 64, [&](int64_t c0, int64_t c1) { times_slope(gp, sp, zp, gbp, m, width, c0, c1); });
      const float* xl = (l == 0 ? x.data_ptr<float>() : inputs[l - 1].data_ptr<float>()) + r0 * in;
      gemm(true, false, width, in, m, zp, width, xl, in, 1.0f, grad_w[l].data_ptr<float>(), in);  // dL/dW'_l += dL/dv^T x_l
      float* below = l > 0 ? block(scratch[1], m, in).data_ptr<float>()  // dL/dx_l = dL/dv W'_l: layer l-1's dL/dy
                     : need_grad_x ? grad_x.data_ptr<float>() + r0 * in : nullptr;
      if (below != nullptr) packed[l].times(m, zp, width, 0.0f, below, in);
      if (l > 0) g = block(scratch[1], m, in);
    }
  }
  std::vector<torch::Tensor> result{grad_x};
  result.insert(result.end(), grad_w.begin(), grad_w.end());
  result.insert(result.end(), grad_b.begin(), grad_b.end());
  if (has_head) result.push_back(head_w), result.push_back(head_b);
  return result;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "a stack of fused sine layers (and a linear head), forward");
  m.def("backward", &backward, "a stack of fused sine layers (and a linear head), backward");
}
