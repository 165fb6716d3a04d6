// Multiresolution grid encoding on the CPU: forward and backward of geneface.nerf.encodings.GridEncoding
// (its torch path is the reference; the semantics, index layout and float32 arithmetic are the same).
// Levels are independent and own disjoint rows of the table, so OpenMP splits the work by level:
// the backward scatter into the table needs no atomics.
#include <torch/extension.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr uint32_t kPrimes[3] = {1u, 2654435761u, 805459861u};

struct Level {
  int64_t res, size, offset;
  bool hashed;
  int64_t mask;  // size − 1 when size is a power of two (then "mod size" is a mask), else −1
};

std::vector<Level> levels_of(const torch::Tensor& offsets, const torch::Tensor& res, const torch::Tensor& sizes,
                             const torch::Tensor& use_hash) {
  auto off = offsets.accessor<int64_t, 1>();
  auto r = res.accessor<int64_t, 1>();
  auto s = sizes.accessor<int64_t, 1>();
  auto h = use_hash.accessor<bool, 1>();
  std::vector<Level> out(r.size(0));
  for (int64_t l = 0; l < r.size(0); ++l) out[l] = {r[l], s[l], off[l], h[l], (s[l] & (s[l] - 1)) ? -1 : s[l] - 1};
  return out;
}

// One point at one level: the lower cell corner, the interpolation weights of the upper corner per
// axis (w1, with w0 = 1 - w1) and their derivative with respect to the fraction.
template <int D>
inline void locate(const float* x, const Level& lv, bool smoothstep, int64_t cell[D], float w1[D], float dw1[D]) {
  for (int d = 0; d < D; ++d) {
    const float pos = x[d] * static_cast<float>(lv.res);
    int64_t c = static_cast<int64_t>(std::floor(pos));
    if (c > lv.res - 1) c = lv.res - 1;
    cell[d] = c;
    const float f = pos - static_cast<float>(c);
    if (smoothstep) {
      w1[d] = f * f * (3.0f - 2.0f * f);
      dw1[d] = 6.0f * f * (1.0f - f);
    } else {
      w1[d] = f;
      dw1[d] = 1.0f;
    }
  }
}

// The table rows of the 2^D cell corners (corner k takes the upper vertex on axis d when bit d is set):
// per-axis parts computed once, combined by XOR (hashed) or sum (lattice).
template <int D>
inline void corner_rows(const int64_t* cell, const Level& lv, int64_t rows[1 << D]) {
  if (lv.hashed) {
    uint32_t part[D][2];
    for (int d = 0; d < D; ++d) {
      part[d][0] = static_cast<uint32_t>(cell[d]) * kPrimes[d];
      part[d][1] = static_cast<uint32_t>(cell[d] + 1) * kPrimes[d];
    }
    for (int k = 0; k < (1 << D); ++k) {
      uint32_t h = 0;
      for (int d = 0; d < D; ++d) h ^= part[d][(k >> d) & 1];
      rows[k] = static_cast<int64_t>(h);
    }
  } else {
    int64_t part[D][2];
    int64_t stride = 1;
    for (int d = 0; d < D; ++d) {
      part[d][0] = cell[d] * stride;
      part[d][1] = (cell[d] + 1) * stride;
      stride *= lv.res + 1;
    }
    for (int k = 0; k < (1 << D); ++k) {
      int64_t index = 0;
      for (int d = 0; d < D; ++d) index += part[d][(k >> d) & 1];
      rows[k] = index;
    }
  }
  // an integer division per corner would be the kernel's dearest instruction: a lattice that fits
  // needs none, and a level that does not fit has a power-of-two size (grid_level_sizes)
  for (int k = 0; k < (1 << D); ++k) {
    int64_t index = rows[k];
    if (index >= lv.size) index = lv.mask >= 0 ? (index & lv.mask) : index % lv.size;
    rows[k] = index + lv.offset;
  }
}

template <int D>
inline float corner_weight(const float* w1, int k) {
  float w = 1.0f;
  for (int d = 0; d < D; ++d) w *= ((k >> d) & 1) ? w1[d] : 1.0f - w1[d];
  return w;
}

// body(level index, point index, corner rows, w1, dw1) for every point at every level; OpenMP splits the
// levels, so a body may write to the rows of its own level (and its own level's outputs) without atomics.
template <int D, typename Body>
void for_each_point(const float* x, int64_t n, const std::vector<Level>& levels, bool smoothstep, Body body) {
  const int64_t num_levels = static_cast<int64_t>(levels.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t l = 0; l < num_levels; ++l) {
    const Level lv = levels[l];
    int64_t cell[D], rows[1 << D];
    float w1[D], dw1[D];
    for (int64_t i = 0; i < n; ++i) {
      locate<D>(x + i * D, lv, smoothstep, cell, w1, dw1);
      corner_rows<D>(cell, lv, rows);
      body(l, i, rows, w1, dw1);
    }
  }
}

template <int D>
torch::Tensor forward_impl(const torch::Tensor& x01, const torch::Tensor& table, const std::vector<Level>& levels,
                           bool smoothstep) {
  const int64_t n = x01.size(0), c = table.size(1), num_levels = static_cast<int64_t>(levels.size());
  // level-major while computing: each thread fills its own level's contiguous block (a point-major
  // output would have both threads writing into the same cache lines); transposed once at the end
  auto out = torch::empty({num_levels, n, c}, x01.options());
  const float* x = x01.data_ptr<float>();
  const float* emb = table.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for_each_point<D>(x, n, levels, smoothstep,
                    [&](int64_t l, int64_t i, const int64_t* rows, const float* w1, const float*) {
                      float* dst = o + (l * n + i) * c;
                      for (int j = 0; j < c; ++j) dst[j] = 0.0f;
                      for (int k = 0; k < (1 << D); ++k) {
                        const float w = corner_weight<D>(w1, k);
                        const float* row = emb + rows[k] * c;
                        for (int j = 0; j < c; ++j) dst[j] += w * row[j];
                      }
                    });
  return out.permute({1, 0, 2}).contiguous();                                // [N, L, C]
}

template <int D>
std::vector<torch::Tensor> backward_impl(const torch::Tensor& grad, const torch::Tensor& x01,
                                         const torch::Tensor& table, const std::vector<Level>& levels,
                                         bool smoothstep, bool need_x) {
  const int64_t n = x01.size(0), c = table.size(1), num_levels = static_cast<int64_t>(levels.size());
  auto grad_table = torch::zeros_like(table);
  auto grad_x = need_x ? torch::zeros({num_levels, n, D}, x01.options()) : torch::Tensor();
  const float* x = x01.data_ptr<float>();
  const float* emb = table.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* gt = grad_table.data_ptr<float>();
  float* gx = need_x ? grad_x.data_ptr<float>() : nullptr;
  for_each_point<D>(x, n, levels, smoothstep,
                    [&](int64_t l, int64_t i, const int64_t* rows, const float* w1, const float* dw1) {
                    const float* go = g + (i * num_levels + l) * c;
                    float dpos[D] = {0.0f};
                    for (int k = 0; k < (1 << D); ++k) {
                      const int64_t r = rows[k];
                      const float w = corner_weight<D>(w1, k);
                      float* dst = gt + r * c;
                      float dot = 0.0f;
                      for (int j = 0; j < c; ++j) {
                        dst[j] += w * go[j];
                        dot += go[j] * emb[r * c + j];
                      }
                      if (need_x) {
                        for (int d = 0; d < D; ++d) {
                          float dw = ((k >> d) & 1) ? dw1[d] : -dw1[d];
                          for (int e = 0; e < D; ++e)
                            if (e != d) dw *= ((k >> e) & 1) ? w1[e] : 1.0f - w1[e];
                          dpos[d] += dot * dw;
                        }
                      }
                    }
                    if (need_x)
                      for (int d = 0; d < D; ++d) gx[(l * n + i) * D + d] = dpos[d] * static_cast<float>(levels[l].res);
                    });
  if (need_x) return {grad_table, grad_x.sum(0)};
  return {grad_table, torch::Tensor()};
}

void check(const torch::Tensor& x01, const torch::Tensor& table) {
  TORCH_CHECK(x01.device().is_cpu() && table.device().is_cpu(), "grid_encoding_cpp runs on CPU tensors");
  TORCH_CHECK(x01.scalar_type() == torch::kFloat && table.scalar_type() == torch::kFloat,
              "grid_encoding_cpp takes float32");
  TORCH_CHECK(x01.is_contiguous() && table.is_contiguous(), "grid_encoding_cpp takes contiguous tensors");
  TORCH_CHECK(x01.dim() == 2 && (x01.size(1) == 2 || x01.size(1) == 3), "positions must be [N, 2 or 3]");
}

}  // namespace

// x01 [N, D] float32 in [0, 1]; table [rows, C] → [N, L, C]
torch::Tensor grid_forward(torch::Tensor x01, torch::Tensor table, torch::Tensor offsets, torch::Tensor res,
                           torch::Tensor sizes, torch::Tensor use_hash, bool smoothstep) {
  check(x01, table);
  const auto levels = levels_of(offsets, res, sizes, use_hash);
  return x01.size(1) == 2 ? forward_impl<2>(x01, table, levels, smoothstep)
                          : forward_impl<3>(x01, table, levels, smoothstep);
}

// grad [N, L, C] → (grad of table [rows, C], grad of x01 [N, D] or undefined)
std::vector<torch::Tensor> grid_backward(torch::Tensor grad, torch::Tensor x01, torch::Tensor table,
                                         torch::Tensor offsets, torch::Tensor res, torch::Tensor sizes,
                                         torch::Tensor use_hash, bool smoothstep, bool need_x) {
  check(x01, table);
  grad = grad.contiguous();
  const auto levels = levels_of(offsets, res, sizes, use_hash);
  return x01.size(1) == 2 ? backward_impl<2>(grad, x01, table, levels, smoothstep, need_x)
                          : backward_impl<3>(grad, x01, table, levels, smoothstep, need_x);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &grid_forward, "grid encoding forward (CPU)");
  m.def("backward", &grid_backward, "grid encoding backward (CPU)");
}
