// Mixture of experts on the CPU: the router's top-k (each family's definition), then grouped
// expert GEMMs over the tokens routed to each expert. Preconditions (checked in
// napi/kernels_families.cc): ids in [0, experts), top_k <= experts, n_group divides experts,
// topk_group <= n_group, scratch sized by moe_scratch_elems.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "hpd/kernels.h"
#include "vec.h"

namespace hpd::kernels {
namespace {

// Indices of the k largest of score[0..n) (only where allowed[i]), by descending score, ties to
// the lower index (a stable rule; torch.topk leaves tie order unspecified).
void top_k_indices(const float* score, const bool* allowed, int64_t n, int64_t k, int32_t* out) {
  std::vector<int32_t> idx;
  idx.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    if (!allowed || allowed[i]) idx.push_back(static_cast<int32_t>(i));
  }
  const auto better = [&](int32_t a, int32_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
  std::copy(idx.begin(), idx.begin() + k, out);
}

// Unit = (expert, tile of output columns): threads take contiguous runs of units of equal cost.
struct Unit {
  int64_t expert, col_begin, col_end;
};

std::vector<Unit> units_of(const MoePlan& plan, int64_t experts, int64_t cols, int64_t tile) {
  std::vector<Unit> units;
  for (int64_t e = 0; e < experts; ++e) {
    if (plan.offsets[e + 1] == plan.offsets[e]) continue;
    for (int64_t c = 0; c < cols; c += tile) units.push_back({e, c, std::min(cols, c + tile)});
  }
  return units;
}

// [begin, end) of units for thread ith: cut by cumulative cost rows × columns.
void units_slice(const std::vector<Unit>& units, const MoePlan& plan, int ith, int nth, size_t* begin, size_t* end) {
  std::vector<double> cost(units.size() + 1, 0.0);
  for (size_t i = 0; i < units.size(); ++i) {
    const Unit& u = units[i];
    cost[i + 1] = cost[i] + static_cast<double>(plan.offsets[u.expert + 1] - plan.offsets[u.expert]) *
                                static_cast<double>(u.col_end - u.col_begin);
  }
  const double total = cost.back();
  const auto cut = [&](int j) {
    const double target = total * j / nth;
    return static_cast<size_t>(std::lower_bound(cost.begin(), cost.end(), target) - cost.begin());
  };
  *begin = ith == 0 ? 0 : cut(ith);
  *end = ith == nth - 1 ? units.size() : cut(ith + 1);
  *begin = std::min(*begin, units.size());
  *end = std::max(*begin, std::min(*end, units.size()));
}

constexpr int64_t kTile = 64;

}  // namespace

void moe_route(const RouteArgs& r, int ith, int nth) {
  int64_t begin, end;
  thread_slice(r.tokens, ith, nth, &begin, &end);
  const int64_t E = r.experts, K = r.top_k;
  std::vector<float> p(E), choice(E);
  std::unique_ptr<bool[]> allowed(new bool[E]);
  std::vector<float> group_score(r.n_group > 0 ? r.n_group : 1);
  std::vector<int32_t> best_groups(r.n_group > 0 ? r.n_group : 1);
  for (int64_t t = begin; t < end; ++t) {
    const float* lg = r.logits + t * E;
    int32_t* ids = r.ids + t * K;
    float* w = r.weights + t * K;
    if (r.kind == RouterKind::kSoftmaxTopk) {
      const float mx = *std::max_element(lg, lg + E);
      double sum = 0.0;
      for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(lg[e] - mx));
      for (int64_t e = 0; e < E; ++e) p[e] = static_cast<float>(p[e] / sum);
      top_k_indices(p.data(), nullptr, E, K, ids);
      double picked = 0.0;
      for (int64_t j = 0; j < K; ++j) picked += (w[j] = p[ids[j]]);
      if (r.norm_topk) {
        for (int64_t j = 0; j < K; ++j) w[j] = static_cast<float>(w[j] / picked);
      }
    } else if (r.kind == RouterKind::kTopkSoftmax) {
      top_k_indices(lg, nullptr, E, K, ids);
      const float mx = lg[ids[0]];
      double sum = 0.0;
      for (int64_t j = 0; j < K; ++j) sum += (w[j] = std::exp(lg[ids[j]] - mx));
      for (int64_t j = 0; j < K; ++j) w[j] = static_cast<float>(w[j] / sum);
    } else {
      for (int64_t e = 0; e < E; ++e) {
        p[e] = 1.0f / (1.0f + std::exp(-lg[e]));
        choice[e] = p[e] + (r.bias ? r.bias[e] : 0.0f);
      }
      std::fill(allowed.get(), allowed.get() + E, true);
      if (r.n_group > 1) {
        // A group scores the sum of its two best choice scores; only the topk_group best groups stay.
        const int64_t per = E / r.n_group;
        for (int64_t gi = 0; gi < r.n_group; ++gi) {
          int32_t two[2];
          const int64_t take = std::min<int64_t>(2, per);
          top_k_indices(choice.data() + gi * per, nullptr, per, take, two);
          group_score[gi] = 0.0f;
          for (int64_t j = 0; j < take; ++j) group_score[gi] += choice[gi * per + two[j]];
        }
        top_k_indices(group_score.data(), nullptr, r.n_group, r.topk_group, best_groups.data());
        // Experts of the other groups are out of the choice (HF masks them with -inf).
        std::fill(allowed.get(), allowed.get() + E, false);
        for (int64_t j = 0; j < r.topk_group; ++j) {
          for (int64_t e = best_groups[j] * per; e < (best_groups[j] + 1) * per; ++e) allowed[e] = true;
        }
      }
      top_k_indices(choice.data(), allowed.get(), E, K, ids);
      double picked = 0.0;
      for (int64_t j = 0; j < K; ++j) picked += (w[j] = p[ids[j]]);
      for (int64_t j = 0; j < K; ++j) {
        const double normed = r.norm_topk ? w[j] / (picked + 1e-20) : w[j];
        w[j] = static_cast<float>(normed * r.scale);
      }
    }
  }
}

void moe_plan(const MoeArgs& a, MoePlan& plan) {
  const int64_t pairs = a.tokens * a.top_k;
  const auto valid = [&](int64_t i) { return a.ids[i] >= 0 && a.ids[i] < a.experts; };
  std::fill(plan.offsets, plan.offsets + a.experts + 1, 0);
  for (int64_t i = 0; i < pairs; ++i) {
    if (valid(i)) plan.offsets[a.ids[i] + 1]++;
  }
  for (int64_t e = 0; e < a.experts; ++e) plan.offsets[e + 1] += plan.offsets[e];
  std::vector<int64_t> next(plan.offsets, plan.offsets + a.experts);
  for (int64_t i = 0; i < pairs; ++i) {
    if (!valid(i)) {
      plan.position[i] = -1;
      continue;
    }
    const int64_t row = next[a.ids[i]]++;
    plan.order[row] = static_cast<int32_t>(i);
    plan.position[i] = static_cast<int32_t>(row);
    std::memcpy(plan.xg + row * a.hidden, a.x + (i / a.top_k) * a.ldx, sizeof(float) * a.hidden);
  }
}

void moe_up(const MoeArgs& a, const MoePlan& plan, int ith, int nth) {
  // Columns [0, inter) of h are gate·x (gated experts), [inter, 2·inter) up·x; relu² experts only up.
  const int64_t I = a.inter, U = a.gated ? 2 * I : I;
  std::vector<Unit> units = units_of(plan, a.experts, I, kTile);
  if (a.gated) {
    for (Unit u : units_of(plan, a.experts, I, kTile)) units.push_back({u.expert, u.col_begin + I, u.col_end + I});
  }
  size_t begin, end;
  units_slice(units, plan, ith, nth, &begin, &end);
  for (size_t i = begin; i < end; ++i) {
    const Unit& u = units[i];
    const int64_t r0 = plan.offsets[u.expert], rows = plan.offsets[u.expert + 1] - r0;
    const bool is_up = !a.gated || u.col_begin >= I;
    const int64_t shift = a.gated && is_up ? I : 0;
    // The weight's rows [c0 − shift, c1 − shift) land in h's columns [c0, c1) (linear writes y + n_begin).
    linear_rows(plan.xg + r0 * a.hidden, a.hidden, is_up ? a.up[u.expert] : a.gate[u.expert], plan.h + r0 * U + shift, U,
                rows, a.hidden, u.col_begin - shift, u.col_end - shift, false);
  }
}

void moe_activate(const MoeArgs& a, const MoePlan& plan, int ith, int nth) {
  const int64_t pairs = a.tokens * a.top_k, I = a.inter, U = a.gated ? 2 * I : I;
  int64_t begin, end;
  thread_slice(pairs, ith, nth, &begin, &end);
  for (int64_t r = begin; r < end; ++r) {
    const float* h = plan.h + r * U;
    float* o = plan.act + r * I;
    if (a.gated) {
      std::memcpy(o, h, sizeof(float) * I);
      silu_inplace(o, I);
      for (int64_t i = 0; i < I; ++i) o[i] *= h[I + i];
    } else {
      for (int64_t i = 0; i < I; ++i) {
        const float v = h[i] > 0.0f ? h[i] : 0.0f;
        o[i] = v * v;
      }
    }
  }
}

void moe_down(const MoeArgs& a, const MoePlan& plan, int ith, int nth) {
  const std::vector<Unit> units = units_of(plan, a.experts, a.hidden, kTile);
  size_t begin, end;
  units_slice(units, plan, ith, nth, &begin, &end);
  for (size_t i = begin; i < end; ++i) {
    const Unit& u = units[i];
    const int64_t r0 = plan.offsets[u.expert], rows = plan.offsets[u.expert + 1] - r0;
    linear_rows(plan.act + r0 * a.inter, a.inter, a.down[u.expert], plan.out + r0 * a.hidden,
                a.hidden, rows, a.inter, u.col_begin, u.col_end, false);
  }
}

void moe_combine(const MoeArgs& a, const MoePlan& plan, bool accumulate, int ith, int nth) {
  int64_t begin, end;
  thread_slice(a.tokens, ith, nth, &begin, &end);
  for (int64_t t = begin; t < end; ++t) {
    float* y = a.y + t * a.ldy;
    if (!accumulate) std::fill(y, y + a.hidden, 0.0f);
    for (int64_t s = 0; s < a.top_k; ++s) {
      const int32_t pos = plan.position[t * a.top_k + s];
      if (pos < 0) continue;
      const float w = a.weights[t * a.top_k + s];
      const float* o = plan.out + static_cast<int64_t>(pos) * a.hidden;
      for (int64_t c = 0; c < a.hidden; ++c) y[c] += w * o[c];
    }
  }
}

}  // namespace hpd::kernels
