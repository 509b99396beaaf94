// libFuzzer target: the PromQL subset. Parses the input as an expression;
// when it parses, its type and reach must be answerable and evaluating it
// over a small fixed store (counters with a reset, a histogram, a gauge with
// a staleness marker) must return a result or an error, never crash; a
// parsed expression must parse again from the same text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "rules/promql.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

const novapulse::promql::SeriesStore& Store() {
  static const novapulse::promql::SeriesStore* store = [] {
    auto* s = new novapulse::promql::SeriesStore();
    using novapulse::promql::Labels;
    const uint32_t a = s->Ref({{"__name__", "x"}, {"job", "a"}});
    const uint32_t b = s->Ref({{"__name__", "x"}, {"job", "b"}});
    const uint32_t g = s->Ref({{"__name__", "g"}, {"type", "t"}});
    for (int i = 0; i < 40; ++i) {
      const int64_t t = i * 15'000;
      s->Append(a, t, i < 20 ? i * 3.0 : (i - 20) * 2.0);
      s->Append(b, t, i * 1.5);
      s->Append(g, t, i == 30 ? novapulse::promql::StaleNaN() : (i % 7) * 1.0);
      for (const char* le : {"0.1", "1", "+Inf"}) {
        const uint32_t h = s->Ref({{"__name__", "h_bucket"}, {"le", le}, {"route", "/r"}});
        s->Append(h, t, i * (le[0] == '0' ? 1.0 : le[0] == '1' ? 2.0 : 3.0));
      }
    }
    return s;
  }();
  return *store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<novapulse::promql::ExprPtr> expr = novapulse::promql::Parse(text);
  if (!expr.ok()) {
    FUZZ_CHECK(!expr.status().message().empty());
    return 0;
  }
  FUZZ_CHECK(novapulse::promql::Parse(text).ok());
  (void)novapulse::promql::TypeOf(**expr);
  for (const novapulse::promql::Reach& r : novapulse::promql::MetricReach(**expr)) {
    FUZZ_CHECK(!r.metric.empty());
  }
  const novapulse::promql::ValueType type = novapulse::promql::TypeOf(**expr);
  if (type == novapulse::promql::ValueType::kVector ||
      type == novapulse::promql::ValueType::kScalar) {
    novapulse::promql::Evaluator eval(&Store());
    for (int64_t t : {0, 300'000, 600'000}) (void)eval.Eval(**expr, t);
  }
  return 0;
}
