// Evaluator (promql.h): instant evaluation of a parsed expression with
// Prometheus 2.42's semantics (promql/engine.go, functions.go, quantile.go).
// Range functions read the storage spans directly, never building a matrix;
// grouping and vector matching hash the relevant labels and confirm a hash
// hit by comparing those labels, so no key string is built per element.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "rules/promql.h"
#include "rules/promql_ast.h"

// Go on amd64 (promtool's build) never fuses a*b + c into one FMA; with
// -march=native clang would, and results would differ in the last bit.
#pragma STDC FP_CONTRACT OFF

namespace novapulse::promql {
namespace {

constexpr std::string_view kMetricName = "__name__";
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Value {
  bool scalar = false;
  double s = 0;
  Vector vec;
};

void DropName(Labels* ls) {
  for (auto it = ls->begin(); it != ls->end(); ++it) {
    if (it->name == kMetricName) {
      ls->erase(it);
      return;
    }
  }
}

Labels CopyWithoutName(const Labels& ls) {
  Labels out;
  out.reserve(ls.size());
  for (const Label& l : ls) {
    if (l.name != kMetricName) out.push_back(l);
  }
  return out;
}

// Which labels take part in a grouping or a match: with `on`, those named
// (by(...), on(...)); otherwise all but those named and __name__
// (without(...), ignoring(...)).
struct Projection {
  const std::vector<std::string>* names;
  bool on;
  bool keep_name = false;  // histogram_quantile groups by every label but le
  bool Keeps(const Label& l) const {
    // Grouping lists are short: a linear scan (length compared first) beats
    // a binary search of strings.
    bool listed = std::find(names->begin(), names->end(), l.name) != names->end();
    return on ? listed : (!listed && (keep_name || l.name != kMetricName));
  }
};

uint64_t Mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

uint64_t HashOf(const Labels& ls, const Projection& p) {
  uint64_t h = 0x84222325cbf29ce4ULL;
  absl::Hash<std::string_view> hs;
  for (const Label& l : ls) {
    if (!p.Keeps(l)) continue;
    h = Mix(h, hs(std::string_view(l.name)));
    h = Mix(h, hs(std::string_view(l.value)));
  }
  return h;
}

bool SameProjection(const Labels& a, const Labels& b, const Projection& p) {
  auto ia = a.begin(), ib = b.begin();
  while (true) {
    while (ia != a.end() && !p.Keeps(*ia)) ++ia;
    while (ib != b.end() && !p.Keeps(*ib)) ++ib;
    if (ia == a.end() || ib == b.end()) return ia == a.end() && ib == b.end();
    if (ia->name != ib->name || ia->value != ib->value) return false;
    ++ia;
    ++ib;
  }
}

Labels Project(const Labels& ls, const Projection& p) {
  Labels out;
  for (const Label& l : ls) {
    if (p.Keeps(l)) out.push_back(l);
  }
  return out;
}

// Hash table from a projection of labels to an index into `items`,
// collisions chained through `next`.
class SigTable {
 public:
  SigTable(const Projection& p, size_t n) : p_(p) {
    head_.reserve(n);
    next_.reserve(n);
  }
  // Index of the entry whose labels project like `ls`, or -1.
  int Find(const Labels& ls, uint64_t h, const std::vector<const Labels*>& items) const {
    auto it = head_.find(h);
    if (it == head_.end()) return -1;
    for (int i = it->second; i >= 0; i = next_[i]) {
      if (SameProjection(*items[i], ls, p_)) return i;
    }
    return -1;
  }
  // Adds entry `i` (== number of entries so far) with hash `h`.
  void Add(int i, uint64_t h) {
    auto [it, inserted] = head_.try_emplace(h, i);
    next_.push_back(inserted ? -1 : it->second);
    it->second = i;
  }

 private:
  Projection p_;
  absl::flat_hash_map<uint64_t, int> head_;
  std::vector<int> next_;
};

// Go's math.Max / math.Min: +Inf (-Inf) wins over NaN, then NaN wins.
double GoMax(double x, double y) {
  if (std::isinf(x) && x > 0) return x;
  if (std::isinf(y) && y > 0) return y;
  if (std::isnan(x) || std::isnan(y)) return kNaN;
  if (x == 0 && x == y) return std::signbit(x) ? y : x;
  return x > y ? x : y;
}
double GoMin(double x, double y) {
  if (std::isinf(x) && x < 0) return x;
  if (std::isinf(y) && y < 0) return y;
  if (std::isnan(x) || std::isnan(y)) return kNaN;
  if (x == 0 && x == y) return std::signbit(x) ? x : y;
  return x < y ? x : y;
}

// time.Duration.Seconds() for a duration in milliseconds: whole seconds and
// the remainder converted separately, as Go does, for the same rounding.
double Seconds(int64_t ms) {
  // NOLINTNEXTLINE(bugprone-integer-division): the truncation is intended.
  return static_cast<double>(ms / 1000) + static_cast<double>((ms % 1000) * 1000000) / 1e9;
}

void KahanSumInc(double inc, double* sum, double* c) {
  double t = *sum + inc;
  if (std::abs(*sum) >= std::abs(inc)) {
    *c += (*sum - t) + inc;
  } else {
    *c += (inc - t) + *sum;
  }
  *sum = t;
}

// Prometheus's vectorElemBinop for floats: the value and whether a
// comparison holds.
double ElemBinop(BinOp op, double l, double r, bool* keep) {
  *keep = true;
  switch (op) {
    case BinOp::kAdd:
      return l + r;
    case BinOp::kSub:
      return l - r;
    case BinOp::kMul:
      return l * r;
    case BinOp::kDiv:
      return l / r;
    case BinOp::kPow:
      return std::pow(l, r);
    case BinOp::kMod:
      return std::fmod(l, r);
    case BinOp::kEq:
      *keep = l == r;
      return l;
    case BinOp::kNe:
      *keep = l != r;
      return l;
    case BinOp::kGt:
      *keep = l > r;
      return l;
    case BinOp::kLt:
      *keep = l < r;
      return l;
    case BinOp::kGe:
      *keep = l >= r;
      return l;
    case BinOp::kLe:
      *keep = l <= r;
      return l;
    default:
      return kNaN;
  }
}

bool ContainsSameLabelset(const Vector& v) {
  if (v.size() < 2) return false;
  if (v.size() == 2) return v[0].labels == v[1].labels;
  std::vector<const Labels*> ls;
  ls.reserve(v.size());
  for (const Element& e : v) ls.push_back(&e.labels);
  std::sort(ls.begin(), ls.end(), [](const Labels* a, const Labels* b) { return *a < *b; });
  for (size_t i = 1; i < ls.size(); ++i) {
    if (*ls[i] == *ls[i - 1]) return true;
  }
  return false;
}

struct Bucket {
  double upper;
  double count;
};

// quantile.go bucketQuantile (2.42).
double BucketQuantile(double q, std::vector<Bucket>* bp) {
  std::vector<Bucket>& buckets = *bp;
  if (std::isnan(q)) return kNaN;
  if (q < 0) return -kInf;
  if (q > 1) return kInf;
  std::sort(buckets.begin(), buckets.end(),
            [](const Bucket& a, const Bucket& b) { return a.upper < b.upper; });
  if (!(std::isinf(buckets.back().upper) && buckets.back().upper > 0)) return kNaN;
  // coalesceBuckets: buckets with the same bound are added up.
  size_t n = 0;
  for (size_t i = 1; i < buckets.size(); ++i) {
    if (buckets[i].upper == buckets[n].upper) {
      buckets[n].count += buckets[i].count;
    } else {
      buckets[++n] = buckets[i];
    }
  }
  buckets.resize(n + 1);
  // ensureMonotonic.
  double max = -kInf;
  for (Bucket& b : buckets) {
    if (b.count > max) {
      max = b.count;
    } else if (b.count < max) {
      b.count = max;
    }
  }
  if (buckets.size() < 2) return kNaN;
  double observations = buckets.back().count;
  if (observations == 0) return kNaN;
  double rank = q * observations;
  size_t b = 0;
  while (b < buckets.size() - 1 && !(buckets[b].count >= rank)) ++b;
  if (b == buckets.size() - 1) return buckets[buckets.size() - 2].upper;
  if (b == 0 && buckets[0].upper <= 0) return buckets[0].upper;
  double start = 0;
  double end = buckets[b].upper;
  double count = buckets[b].count;
  if (b > 0) {
    start = buckets[b - 1].upper;
    count -= buckets[b - 1].count;
    rank -= buckets[b - 1].count;
  }
  return start + (end - start) * (rank / count);
}

// functions.go quantile (2.42), on values already copied out.
double Quantile(double q, std::vector<double>* vp) {
  std::vector<double>& values = *vp;
  if (values.empty() || std::isnan(q)) return kNaN;
  if (q < 0) return -kInf;
  if (q > 1) return kInf;
  std::sort(values.begin(), values.end(), [](double a, double b) {
    if (std::isnan(a)) return !std::isnan(b);
    return a < b;
  });
  double n = static_cast<double>(values.size());
  double rank = q * (n - 1);
  double lower = std::max(0.0, std::floor(rank));
  double upper = std::min(n - 1, lower + 1);
  double weight = rank - std::floor(rank);
  return values[static_cast<size_t>(lower)] * (1 - weight) +
         values[static_cast<size_t>(upper)] * weight;
}

class Evaluation {
 public:
  Evaluation(const Storage* storage, int64_t t) : storage_(storage), t_(t) {}

  absl::StatusOr<Value> Run(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kNumber: {
        Value v;
        v.scalar = true;
        v.s = e.number;
        return v;
      }
      case Expr::Kind::kParen:
        return Run(*e.lhs);
      case Expr::Kind::kVectorSelector:
        return Selector(e);
      case Expr::Kind::kMatrixSelector:
        return absl::InvalidArgumentError("range vector outside a function");
      case Expr::Kind::kNeg: {
        absl::StatusOr<Value> v = Run(*e.lhs);
        if (!v.ok()) return v;
        if (v->scalar) {
          v->s = -v->s;
        } else {
          for (Element& el : v->vec) {
            DropName(&el.labels);
            el.v = -el.v;
          }
        }
        return v;
      }
      case Expr::Kind::kCall:
        return Call(e);
      case Expr::Kind::kAggregate:
        return Aggregate(e);
      case Expr::Kind::kBinary:
        return Binary(e);
    }
    return absl::InternalError("unknown expression");
  }

 private:
  absl::StatusOr<double> Scalar(const Expr& e) {
    absl::StatusOr<Value> v = Run(e);
    if (!v.ok()) return v.status();
    return v->s;
  }

  Value Selector(const Expr& e) {
    int64_t ref_t = t_ - e.offset_ms;
    refs_.clear();
    storage_->Select(e.metric, e.matchers, ref_t - kLookbackDeltaMs, ref_t, &refs_);
    Value v;
    v.vec.reserve(refs_.size());
    for (const Storage::SeriesRef& r : refs_) {
      if (r.samples.empty()) continue;
      const Sample& s = r.samples.back();
      if (s.t_ms > ref_t || s.t_ms < ref_t - kLookbackDeltaMs || IsStaleNaN(s.v)) continue;
      v.vec.push_back(Element{*r.labels, s.v});
    }
    return v;
  }

  // The samples of a range without stale markers.
  std::span<const Sample> Points(std::span<const Sample> in) {
    size_t i = 0;
    while (i < in.size() && !IsStaleNaN(in[i].v)) ++i;
    if (i == in.size()) return in;
    points_.assign(in.begin(), in.begin() + static_cast<ptrdiff_t>(i));
    for (; i < in.size(); ++i) {
      if (!IsStaleNaN(in[i].v)) points_.push_back(in[i]);
    }
    return points_;
  }

  // functions.go extrapolatedRate (2.42).
  static bool ExtrapolatedRate(std::span<const Sample> p, bool monotonic, int64_t range_start,
                               int64_t range_end, int64_t range_ms, bool is_counter, bool is_rate,
                               double* out) {
    if (p.size() < 2) return false;
    double result = p.back().v - p.front().v;
    if (is_counter && !monotonic) {
      double prev = p[0].v;
      for (size_t i = 1; i < p.size(); ++i) {
        if (p[i].v < prev) result += prev;
        prev = p[i].v;
      }
    }
    double to_start = static_cast<double>(p.front().t_ms - range_start) / 1000;
    double to_end = static_cast<double>(range_end - p.back().t_ms) / 1000;
    double sampled = static_cast<double>(p.back().t_ms - p.front().t_ms) / 1000;
    double avg = sampled / static_cast<double>(p.size() - 1);
    if (is_counter && result > 0 && p.front().v >= 0) {
      double to_zero = sampled * (p.front().v / result);
      if (to_zero < to_start) to_start = to_zero;
    }
    double threshold = avg * 1.1;
    double interval = sampled;
    interval += to_start < threshold ? to_start : avg / 2;
    interval += to_end < threshold ? to_end : avg / 2;
    double factor = interval / sampled;
    if (is_rate) factor /= Seconds(range_ms);
    *out = result * factor;
    return true;
  }

  static bool InstantValue(std::span<const Sample> p, bool is_rate, double* out) {
    if (p.size() < 2) return false;
    const Sample& last = p[p.size() - 1];
    const Sample& prev = p[p.size() - 2];
    double result = (is_rate && last.v < prev.v) ? last.v : last.v - prev.v;
    int64_t interval = last.t_ms - prev.t_ms;
    if (interval == 0) return false;
    if (is_rate) result /= static_cast<double>(interval) / 1000;
    *out = result;
    return true;
  }

  absl::StatusOr<Value> RangeFunction(const Expr& call, const Expr& ms, double param) {
    int64_t range_end = t_ - ms.offset_ms;
    int64_t range_start = range_end - ms.range_ms;
    refs_.clear();
    storage_->Select(ms.metric, ms.matchers, range_start, range_end, &refs_);
    Value v;
    bool any = false;
    for (const Storage::SeriesRef& r : refs_) {
      std::span<const Sample> p = r.stale_free ? r.samples : Points(r.samples);
      if (p.empty()) continue;
      any = true;
      double out = 0;
      bool ok = true;
      switch (call.func) {
        case Func::kRate:
          ok = ExtrapolatedRate(p, r.monotonic, range_start, range_end, ms.range_ms, true, true,
                                &out);
          break;
        case Func::kIncrease:
          ok = ExtrapolatedRate(p, r.monotonic, range_start, range_end, ms.range_ms, true, false,
                                &out);
          break;
        case Func::kDelta:
          ok = ExtrapolatedRate(p, false, range_start, range_end, ms.range_ms, false, false, &out);
          break;
        case Func::kIrate:
          ok = InstantValue(p, true, &out);
          break;
        case Func::kIdelta:
          ok = InstantValue(p, false, &out);
          break;
        case Func::kAvgOverTime: {
          double mean = 0, count = 0, c = 0;
          for (const Sample& s : p) {
            count++;
            if (std::isinf(mean)) {
              if (std::isinf(s.v) && (mean > 0) == (s.v > 0)) continue;
              if (!std::isinf(s.v) && !std::isnan(s.v)) continue;
            }
            KahanSumInc(s.v / count - mean / count, &mean, &c);
          }
          out = std::isinf(mean) ? mean : mean + c;
          break;
        }
        case Func::kSumOverTime: {
          double sum = 0, c = 0;
          for (const Sample& s : p) KahanSumInc(s.v, &sum, &c);
          out = std::isinf(sum) ? sum : sum + c;
          break;
        }
        case Func::kMinOverTime:
          out = p[0].v;
          for (const Sample& s : p) {
            if (s.v < out || std::isnan(out)) out = s.v;
          }
          break;
        case Func::kMaxOverTime:
          out = p[0].v;
          for (const Sample& s : p) {
            if (s.v > out || std::isnan(out)) out = s.v;
          }
          break;
        case Func::kCountOverTime:
          out = static_cast<double>(p.size());
          break;
        case Func::kLastOverTime:
          out = p.back().v;
          break;
        case Func::kPresentOverTime:
          out = 1;
          break;
        case Func::kQuantileOverTime:
          values_.clear();
          for (const Sample& s : p) values_.push_back(s.v);
          out = Quantile(param, &values_);
          break;
        case Func::kStddevOverTime:
        case Func::kStdvarOverTime: {
          double count = 0, mean = 0, c_mean = 0, aux = 0, c_aux = 0;
          for (const Sample& s : p) {
            count++;
            double delta = s.v - (mean + c_mean);
            KahanSumInc(delta / count, &mean, &c_mean);
            KahanSumInc(delta * (s.v - (mean + c_mean)), &aux, &c_aux);
          }
          out = (aux + c_aux) / count;
          if (call.func == Func::kStddevOverTime) out = std::sqrt(out);
          break;
        }
        case Func::kAbsentOverTime:
          ok = false;
          break;
        default:
          return absl::InternalError("not a range function");
      }
      if (!ok) continue;
      // last_over_time returns the series itself, __name__ included.
      v.vec.push_back(
          Element{call.func == Func::kLastOverTime ? *r.labels : CopyWithoutName(*r.labels), out});
    }
    if (call.func == Func::kAbsentOverTime && !any) {
      v.vec.push_back(Element{AbsentLabels(ms), 1});
    }
    return v;
  }

  // createLabelsForAbsentFunction: the labels of the equality matchers; a
  // label matched more than once, or otherwise, is left out.
  static Labels AbsentLabels(const Expr& sel) {
    Labels out;
    std::vector<std::string_view> dropped;
    for (const Matcher& m : sel.matchers) {
      bool seen =
          std::any_of(out.begin(), out.end(), [&](const Label& l) { return l.name == m.name; }) ||
          std::find(dropped.begin(), dropped.end(), m.name) != dropped.end();
      if (m.op == Matcher::Op::kEq && !seen) {
        out.push_back(Label{m.name, m.value});
      } else {
        std::erase_if(out, [&](const Label& l) { return l.name == m.name; });
        dropped.push_back(m.name);
      }
    }
    std::erase_if(out, [](const Label& l) { return l.value.empty(); });
    std::sort(out.begin(), out.end());
    return out;
  }

  absl::StatusOr<Value> Call(const Expr& e) {
    Value v;
    switch (e.func) {
      case Func::kTime:
        v.scalar = true;
        v.s = static_cast<double>(t_) / 1000;
        return v;
      case Func::kVector: {
        absl::StatusOr<double> s = Scalar(*e.args[0]);
        if (!s.ok()) return s.status();
        v.vec.push_back(Element{{}, *s});
        return v;
      }
      case Func::kQuantileOverTime: {
        absl::StatusOr<double> q = Scalar(*e.args[0]);
        if (!q.ok()) return q.status();
        return RangeFunction(e, *e.args[1], *q);
      }
      case Func::kHistogramQuantile:
        return HistogramQuantile(e);
      default:
        break;
    }
    if (e.args[0]->kind == Expr::Kind::kMatrixSelector) return RangeFunction(e, *e.args[0], 0);

    absl::StatusOr<Value> arg = Run(*e.args[0]);
    if (!arg.ok()) return arg;
    Vector& in = arg->vec;
    double p1 = 0, p2 = 0;
    if (e.args.size() > 1) {
      absl::StatusOr<double> s = Scalar(*e.args[1]);
      if (!s.ok()) return s.status();
      p1 = *s;
    }
    if (e.args.size() > 2) {
      absl::StatusOr<double> s = Scalar(*e.args[2]);
      if (!s.ok()) return s.status();
      p2 = *s;
    }
    switch (e.func) {
      case Func::kScalar:
        v.scalar = true;
        v.s = in.size() == 1 ? in[0].v : kNaN;
        return v;
      case Func::kAbsent:
        if (in.empty()) {
          v.vec.push_back(Element{
              e.args[0]->kind == Expr::Kind::kVectorSelector ? AbsentLabels(*e.args[0]) : Labels{},
              1});
        }
        return v;
      case Func::kClamp:
        if (p2 < p1) return v;
        break;
      default:
        break;
    }
    double to_nearest_inverse = 1.0 / (e.args.size() > 1 ? p1 : 1.0);
    for (Element& el : in) {
      DropName(&el.labels);
      switch (e.func) {
        case Func::kAbs:
          el.v = std::abs(el.v);
          break;
        case Func::kCeil:
          el.v = std::ceil(el.v);
          break;
        case Func::kFloor:
          el.v = std::floor(el.v);
          break;
        case Func::kRound:
          el.v = std::floor(el.v * to_nearest_inverse + 0.5) / to_nearest_inverse;
          break;
        case Func::kClamp:
          el.v = GoMax(p1, GoMin(p2, el.v));
          break;
        case Func::kClampMin:
          el.v = GoMax(p1, el.v);
          break;
        case Func::kClampMax:
          el.v = GoMin(p1, el.v);
          break;
        default:
          return absl::InternalError("unexpected function");
      }
    }
    return arg;
  }

  absl::StatusOr<Value> HistogramQuantile(const Expr& e) {
    absl::StatusOr<double> q = Scalar(*e.args[0]);
    if (!q.ok()) return q.status();
    absl::StatusOr<Value> arg = Run(*e.args[1]);
    if (!arg.ok()) return arg;
    static const std::vector<std::string> kLe = {"le"};
    Projection p{&kLe, false, true};
    struct Group {
      const Labels* labels;
      std::vector<Bucket> buckets;
    };
    std::vector<Group> groups;
    std::vector<const Labels*> keys;
    SigTable table(p, arg->vec.size());
    for (const Element& el : arg->vec) {
      double upper = 0;
      if (!ParseLe(el.labels, &upper)) continue;
      uint64_t h = HashOf(el.labels, p);
      int i = table.Find(el.labels, h, keys);
      if (i < 0) {
        i = static_cast<int>(groups.size());
        groups.push_back(Group{&el.labels, {}});
        keys.push_back(&el.labels);
        table.Add(i, h);
      }
      groups[i].buckets.push_back(Bucket{upper, el.v});
    }
    Value v;
    v.vec.reserve(groups.size());
    for (Group& g : groups) {
      Labels ls;
      for (const Label& l : *g.labels) {
        if (l.name != kMetricName && l.name != "le") ls.push_back(l);
      }
      v.vec.push_back(Element{std::move(ls), BucketQuantile(*q, &g.buckets)});
    }
    if (ContainsSameLabelset(v.vec)) {
      return absl::InvalidArgumentError("vector cannot contain metrics with the same labelset");
    }
    return v;
  }

  static std::string_view Get(const Labels& ls, std::string_view name) {
    for (const Label& l : ls) {
      if (l.name == name) return l.value;
    }
    return {};
  }

  // strconv.ParseFloat of the le label.
  static bool ParseLe(const Labels& ls, double* out) {
    std::string_view s = Get(ls, "le");
    if (s.empty() || s.front() == ' ' || s.front() == '\t' || s.front() == '\n') return false;
    std::string str(s);
    char* end = nullptr;
    *out = std::strtod(str.c_str(), &end);
    return end == str.c_str() + str.size();
  }

  absl::StatusOr<Value> Aggregate(const Expr& e) {
    absl::StatusOr<Value> arg = Run(*e.args[0]);
    if (!arg.ok()) return arg;
    const Vector& in = arg->vec;
    Projection p{&e.grouping, !e.without};
    struct Group {
      Labels labels;
      double value;
      double mean;
      double count;
    };
    std::vector<Group> groups;
    std::vector<const Labels*> keys;
    SigTable table(p, in.size());
    for (const Element& el : in) {
      uint64_t h = HashOf(el.labels, p);
      int i = table.Find(el.labels, h, keys);
      if (i < 0) {
        i = static_cast<int>(groups.size());
        groups.push_back(Group{Project(el.labels, p), el.v, el.v, 1});
        keys.push_back(&el.labels);
        table.Add(i, h);
        continue;
      }
      Group& g = groups[i];
      switch (e.agg) {
        case AggOp::kSum:
          g.value += el.v;
          break;
        case AggOp::kAvg:
          g.count++;
          if (std::isinf(g.mean)) {
            if (std::isinf(el.v) && (g.mean > 0) == (el.v > 0)) break;
            if (!std::isinf(el.v) && !std::isnan(el.v)) break;
          }
          g.mean += el.v / g.count - g.mean / g.count;
          break;
        case AggOp::kMax:
          if (g.value < el.v || std::isnan(g.value)) g.value = el.v;
          break;
        case AggOp::kMin:
          if (g.value > el.v || std::isnan(g.value)) g.value = el.v;
          break;
        case AggOp::kCount:
          g.count++;
          break;
      }
    }
    Value v;
    v.vec.reserve(groups.size());
    for (Group& g : groups) {
      double out = g.value;
      if (e.agg == AggOp::kAvg) out = g.mean;
      if (e.agg == AggOp::kCount) out = g.count;
      v.vec.push_back(Element{std::move(g.labels), out});
    }
    return v;
  }

  absl::StatusOr<Value> Binary(const Expr& e) {
    absl::StatusOr<Value> lv = Run(*e.lhs);
    if (!lv.ok()) return lv;
    absl::StatusOr<Value> rv = Run(*e.rhs);
    if (!rv.ok()) return rv;
    bool cmp = IsComparison(e.op);
    if (lv->scalar && rv->scalar) {
      bool keep = true;
      double x = ElemBinop(e.op, lv->s, rv->s, &keep);
      if (e.return_bool) x = keep ? 1 : 0;
      lv->s = x;
      return lv;
    }
    if (lv->scalar || rv->scalar) {
      bool swap = lv->scalar;
      double s = swap ? lv->s : rv->s;
      Vector& vec = swap ? rv->vec : lv->vec;
      size_t out = 0;
      for (Element& el : vec) {
        double l = el.v, r = s;
        if (swap) std::swap(l, r);
        bool keep = true;
        double x = ElemBinop(e.op, l, r, &keep);
        // A comparison keeps the vector's value even with the scalar on the left.
        if (cmp && swap) x = r;
        if (e.return_bool) {
          x = keep ? 1 : 0;
        } else if (!keep) {
          continue;
        }
        if (!cmp || e.return_bool) DropName(&el.labels);
        el.v = x;
        if (&vec[out] != &el) vec[out] = std::move(el);
        ++out;
      }
      vec.resize(out);
      return swap ? rv : lv;
    }
    Vector& lhs = lv->vec;
    Vector& rhs = rv->vec;
    Projection p{&e.match_labels, e.matching_on};
    Value v;
    if (IsSetOp(e.op)) {
      if (e.op == BinOp::kOr) {
        return Or(std::move(*lv), std::move(rhs), p);
      }
      std::vector<const Labels*> keys;
      keys.reserve(rhs.size());
      SigTable table(p, rhs.size());
      for (const Element& el : rhs) {
        uint64_t h = HashOf(el.labels, p);
        if (table.Find(el.labels, h, keys) >= 0) continue;
        table.Add(static_cast<int>(keys.size()), h);
        keys.push_back(&el.labels);
      }
      bool want = e.op == BinOp::kAnd;
      for (Element& el : lhs) {
        bool found = table.Find(el.labels, HashOf(el.labels, p), keys) >= 0;
        if (found == want) v.vec.push_back(std::move(el));
      }
      return v;
    }
    // One-to-one matching: the right side must be unique per signature.
    std::vector<const Labels*> keys;
    keys.reserve(rhs.size());
    SigTable table(p, rhs.size());
    for (const Element& el : rhs) {
      uint64_t h = HashOf(el.labels, p);
      if (table.Find(el.labels, h, keys) >= 0) {
        return absl::InvalidArgumentError(
            "found duplicate series for the match group on the right hand-side of the "
            "operation;many-to-many matching not allowed: matching labels must be unique on "
            "one side");
      }
      table.Add(static_cast<int>(keys.size()), h);
      keys.push_back(&el.labels);
    }
    std::vector<bool> matched(rhs.size(), false);
    for (Element& el : lhs) {
      int i = table.Find(el.labels, HashOf(el.labels, p), keys);
      if (i < 0) continue;
      bool keep = true;
      double x = ElemBinop(e.op, el.v, rhs[i].v, &keep);
      if (e.return_bool) {
        x = keep ? 1 : 0;
      } else if (!keep) {
        continue;
      }
      if (matched[i]) {
        return absl::InvalidArgumentError(
            "multiple matches for labels: many-to-one matching must be explicit "
            "(group_left/group_right)");
      }
      matched[i] = true;
      Labels ls = std::move(el.labels);
      if (!cmp || e.return_bool) DropName(&ls);
      if (e.matching_on) {
        std::erase_if(ls, [&](const Label& l) {
          return !std::binary_search(e.match_labels.begin(), e.match_labels.end(), l.name);
        });
      } else {
        std::erase_if(ls, [&](const Label& l) {
          return std::binary_search(e.match_labels.begin(), e.match_labels.end(), l.name);
        });
      }
      v.vec.push_back(Element{std::move(ls), x});
    }
    return v;
  }

  static Value Or(Value lhs, Vector rhs, const Projection& p) {
    std::vector<const Labels*> keys;
    keys.reserve(lhs.vec.size());
    SigTable table(p, lhs.vec.size());
    for (const Element& el : lhs.vec) {
      uint64_t h = HashOf(el.labels, p);
      if (table.Find(el.labels, h, keys) >= 0) continue;
      table.Add(static_cast<int>(keys.size()), h);
      keys.push_back(&el.labels);
    }
    size_t n = lhs.vec.size();
    std::vector<bool> add(rhs.size());
    for (size_t i = 0; i < rhs.size(); ++i) {
      add[i] = table.Find(rhs[i].labels, HashOf(rhs[i].labels, p), keys) < 0;
    }
    // `keys` point into lhs.vec: append only after the lookups.
    lhs.vec.reserve(n + rhs.size());
    for (size_t i = 0; i < rhs.size(); ++i) {
      if (add[i]) lhs.vec.push_back(std::move(rhs[i]));
    }
    return lhs;
  }

  const Storage* storage_;
  int64_t t_;
  std::vector<Storage::SeriesRef> refs_;
  std::vector<Sample> points_;
  std::vector<double> values_;
};

}  // namespace

absl::StatusOr<Vector> Evaluator::Eval(const Expr& e, int64_t t_ms) {
  if (e.type == ValueType::kMatrix || e.type == ValueType::kString) {
    return absl::InvalidArgumentError("expression must evaluate to a scalar or instant vector");
  }
  Evaluation ev(storage_, t_ms);
  absl::StatusOr<Value> v = ev.Run(e);
  if (!v.ok()) return v.status();
  if (v->scalar) return Vector{Element{{}, v->s}};
  return std::move(v->vec);
}

}  // namespace novapulse::promql
