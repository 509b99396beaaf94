#include "gen/traffic_gen.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <numbers>
#include <queue>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "base/duration.h"
#include "base/str_cat.h"
#include "base/time_math.h"
#include "gen/rng.h"

namespace novapulse {
namespace {

using gen::Rng;
using gen::Weighted;

constexpr int64_t kUsPerMs = 1000;
constexpr int64_t kUsPerSec = 1'000'000;
constexpr int64_t kUsPerMin = 60 * kUsPerSec;
constexpr int64_t kUsPerHour = 60 * kUsPerMin;
constexpr int64_t kUsPerDay = 24 * kUsPerHour;
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// Gifts that are not claimed expire this long after creation.
constexpr int64_t kGiftLifetimeUs = 7 * kUsPerDay;
// 88% claimed keeps the normal expired share near 12%, clearly below the 20%
// "High Gift Expiry Rate" threshold, so only expiry_spike crosses it.
constexpr double kClaimProbability = 0.88;
constexpr int kMaxOutboxAttempts = 5;
// A stalled outbox (outbox_backlog) drains at this pace once the stall ends.
constexpr int64_t kBacklogDrainGapUs = 20 * kUsPerMs;

// Diurnal shape: 1 + 0.7 cos(...) peaks at 1.7x at 15:00 UTC, bottoms at 0.3x
// at 03:00 UTC and averages exactly 1.0 over a day.
constexpr double kDiurnalAmplitude = 0.7;
constexpr double kDiurnalMax = 1.0 + kDiurnalAmplitude;
constexpr int64_t kDiurnalPeakUs = 15 * kUsPerHour;

// Years 1970..9999 keep timestamps four-digit and non-negative.
constexpr int64_t kMaxTimeUs = 253402300800LL * kUsPerSec;

constexpr std::array<std::string_view, kIncidentKindCount> kIncidentNames = {
    "error_spike", "latency_spike", "outbox_failures", "outbox_backlog",
    "claim_drop",  "expiry_spike",  "creation_drought"};

// A line under construction. Every generated line is far below kCapacity (the
// longest, an access line with a UUID path, is under 400 bytes), so appends
// need no bounds checks.
class Line {
 public:
  void Clear() { size_ = 0; }
  std::string_view View() const { return {buf_, size_}; }

  void Add(std::string_view s) {
    std::memcpy(buf_ + size_, s.data(), s.size());
    size_ += s.size();
  }
  void Add(char c) { buf_[size_++] = c; }

  void AddUint(uint64_t v) {
    size_ = static_cast<size_t>(std::to_chars(buf_ + size_, buf_ + kCapacity, v).ptr - buf_);
  }

  // `scaled` / 10^decimals with trailing fractional zeros dropped ("12.5", "7").
  void AddFixed(uint64_t scaled, int decimals) {
    uint64_t unit = 1;
    for (int i = 0; i < decimals; ++i) unit *= 10;
    AddUint(scaled / unit);
    uint64_t frac = scaled % unit;
    if (frac == 0) return;
    while (frac % 10 == 0) {
      frac /= 10;
      unit /= 10;
    }
    Add('.');
    for (unit /= 10; unit > 0; unit /= 10) Add(static_cast<char>('0' + (frac / unit) % 10));
  }

  void AddHex(uint64_t v, int digits) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; --i) buf_[size_++] = kHex[(v >> (4 * i)) & 0xf];
  }

  // A random version-4 UUID.
  void AddUuid(Rng& rng) {
    const uint64_t hi = (rng.Next() & ~0xf000ULL) | 0x4000ULL;
    const uint64_t lo = (rng.Next() & ~(3ULL << 62)) | (2ULL << 62);
    AddHex(hi >> 32, 8);
    Add('-');
    AddHex(hi >> 16, 4);
    Add('-');
    AddHex(hi, 4);
    Add('-');
    AddHex(lo >> 48, 4);
    Add('-');
    AddHex(lo, 12);
  }

 private:
  static constexpr size_t kCapacity = 2048;
  char buf_[kCapacity];
  size_t size_ = 0;
};

// RFC 3339 UTC with milliseconds. Consecutive timestamps mostly share the
// second, so the "YYYY-MM-DDTHH:MM:SS." prefix is rebuilt only when it changes.
class TimestampFormatter {
 public:
  void Append(Line& line, int64_t us) {
    const int64_t sec = FloorDiv(us, kUsPerSec);
    const int64_t ms = (us - sec * kUsPerSec) / kUsPerMs;
    if (sec != cached_sec_) Rebuild(sec);
    line.Add(std::string_view(prefix_, sizeof(prefix_)));
    line.Add(static_cast<char>('0' + ms / 100));
    line.Add(static_cast<char>('0' + ms / 10 % 10));
    line.Add(static_cast<char>('0' + ms % 10));
    line.Add('Z');
  }

 private:
  // Howard Hinnant's civil_from_days.
  void Rebuild(int64_t sec) {
    cached_sec_ = sec;
    const int64_t days = FloorDiv(sec, 86400);
    const int64_t sod = sec - days * 86400;
    const int64_t z = days + 719468;
    const int64_t era = FloorDiv(z, 146097);
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    const int64_t day = doy - (153 * mp + 2) / 5 + 1;
    const int64_t month = mp < 10 ? mp + 3 : mp - 9;
    const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    Put(0, year, 4);
    prefix_[4] = '-';
    Put(5, month, 2);
    prefix_[7] = '-';
    Put(8, day, 2);
    prefix_[10] = 'T';
    Put(11, sod / 3600, 2);
    prefix_[13] = ':';
    Put(14, sod / 60 % 60, 2);
    prefix_[16] = ':';
    Put(17, sod % 60, 2);
    prefix_[19] = '.';
  }

  void Put(int pos, int64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) {
      prefix_[pos + i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  }

  int64_t cached_sec_ = std::numeric_limits<int64_t>::min();
  char prefix_[20] = {};
};

enum class PathKind : uint8_t { kStatic, kNumericId, kUuid };

// Client software seen by the API; fields the consumer ignores, kept so
// lines have the size of real access logs (~280 bytes).
constexpr std::string_view kUserAgents[] = {
    "NovaGift-iOS/4.12.0 (iPhone15,2; iOS 17.1; Scale/3.00)",
    "NovaGift-Android/4.11.3 (Pixel 8; Android 14)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/119.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Safari/605.1.15",
    "NovaGift-Web/2026.11.3 (+https://novagift.com)",
    "okhttp/4.12.0",
};

struct ApiError {
  uint16_t status;
  std::string_view code;
};

struct RouteSpec {
  std::string_view method;
  std::string_view route;
  std::string_view path_prefix;  // path before the id (the whole path when static)
  std::string_view path_suffix;  // path after the id
  PathKind path_kind;
  double weight;
  double median_ms;
  double sigma;
  uint16_t ok_status;
  uint32_t ok_bytes;  // typical response size; actual is uniform in [0.5x, 1.5x)
  ApiError client_error_a;
  ApiError client_error_b;
};

// Latency is lognormal with the given median and sigma; client errors are
// split evenly between the two listed.
constexpr RouteSpec Route(std::string_view method, std::string_view route,
                          std::string_view path_prefix, std::string_view path_suffix,
                          PathKind path_kind, double weight, double median_ms, double sigma,
                          uint16_t ok_status, uint32_t ok_bytes, ApiError client_error_a,
                          ApiError client_error_b) {
  return {method,    route, path_prefix, path_suffix, path_kind,      weight,
          median_ms, sigma, ok_status,   ok_bytes,    client_error_a, client_error_b};
}

// The NovaGift API as seen in its access log. Weights are per mille of requests.
constexpr std::array<RouteSpec, 12> kRoutes = {
    Route("GET", "/api/gifts/:id", "/api/gifts/", "", PathKind::kNumericId, 200, 18, 0.55, 200,
          1200, {404, "GIFT_NOT_FOUND"}, {401, "UNAUTHORIZED"}),
    Route("GET", "/api/gifts", "/api/gifts", "", PathKind::kStatic, 130, 35, 0.6, 200, 8000,
          {400, "INVALID_QUERY"}, {401, "UNAUTHORIZED"}),
    Route("POST", "/api/gifts", "/api/gifts", "", PathKind::kStatic, 70, 85, 0.6, 201, 900,
          {400, "INSUFFICIENT_FUNDS"}, {400, "VALIDATION_FAILED"}),
    Route("POST", "/api/gifts/:id/claim", "/api/gifts/", "/claim", PathKind::kNumericId, 60, 60,
          0.6, 201, 700, {404, "GIFT_NOT_FOUND"}, {409, "ALREADY_CLAIMED"}),
    Route("DELETE", "/api/gifts/:id", "/api/gifts/", "", PathKind::kNumericId, 10, 45, 0.5, 204, 0,
          {404, "GIFT_NOT_FOUND"}, {409, "GIFT_ALREADY_CLAIMED"}),
    Route("GET", "/api/wallet", "/api/wallet", "", PathKind::kStatic, 120, 25, 0.5, 200, 600,
          {401, "UNAUTHORIZED"}, {401, "TOKEN_EXPIRED"}),
    Route("POST", "/api/wallet/topup", "/api/wallet/topup", "", PathKind::kStatic, 25, 120, 0.7,
          200, 400, {400, "PAYMENT_DECLINED"}, {409, "DUPLICATE_TOPUP"}),
    Route("GET", "/health", "/health", "", PathKind::kStatic, 90, 10, 0.5, 200, 60,
          {400, "BAD_REQUEST"}, {400, "BAD_REQUEST"}),
    Route("POST", "/api/auth/login", "/api/auth/login", "", PathKind::kStatic, 45, 110, 0.5, 200,
          700, {401, "INVALID_CREDENTIALS"}, {400, "VALIDATION_FAILED"}),
    Route("GET", "/api/themes", "/api/themes", "", PathKind::kStatic, 60, 12, 0.5, 200, 3000,
          {401, "UNAUTHORIZED"}, {400, "BAD_REQUEST"}),
    Route("GET", "/api/users/:id/gifts", "/api/users/", "/gifts", PathKind::kUuid, 70, 45, 0.7, 200,
          5000, {404, "USER_NOT_FOUND"}, {401, "UNAUTHORIZED"}),
    Route("POST", "/api/webhooks/payment", "/api/webhooks/payment", "", PathKind::kStatic, 15, 70,
          0.8, 200, 50, {400, "INVALID_SIGNATURE"}, {409, "DUPLICATE_EVENT"}),
};

constexpr std::array<ApiError, 3> kServerErrors = {
    {{500, "INTERNAL"}, {502, "UPSTREAM_ERROR"}, {503, "UPSTREAM_TIMEOUT"}}};

constexpr double kClientErrorShare = 0.03;
constexpr double kServerErrorShare = 0.005;
constexpr double kSpikeServerErrorShare = 0.15;
constexpr double kLatencySpikeFactor = 10;
constexpr double kRouteOmittedShare = 0.05;

constexpr std::array<std::string_view, 4> kModes = {"instant", "scheduled", "group", "anonymous"};
constexpr std::array<std::string_view, 6> kThemes = {"birthday", "thank_you",   "holiday",
                                                     "congrats", "anniversary", "just_because"};
constexpr std::array<std::string_view, 4> kWalletKinds = {"topup", "purchase", "refund",
                                                          "withdrawal"};
constexpr std::array<std::string_view, 3> kWalletStatuses = {"completed", "failed", "pending"};
constexpr std::array<std::string_view, 4> kOutboxErrors = {"timeout", "smtp_unavailable",
                                                           "connection_reset", "rate_limited"};
constexpr double kNormalAttemptFailure = 0.01;
constexpr double kIncidentAttemptFailure = 0.70;
constexpr int64_t kOutboxTimeoutUs = 5 * kUsPerSec;

struct Gift {
  uint64_t id = 0;
  int64_t created_us = 0;
  uint32_t value_cents = 0;
  uint8_t mode = 0;
  uint8_t theme = 0;
};

enum class StepKind : uint8_t { kClaim, kExpire, kInFlight, kProcessed, kFailed };

// A future event: a gift's claim or expiry, or the next lifecycle step of an
// outbox message. Ordered by time, then by scheduling order so that ties are
// deterministic.
struct Step {
  int64_t t_us = 0;
  uint64_t seq = 0;
  StepKind kind = StepKind::kClaim;
  OutboxType type = OutboxType::kGiftCreated;
  uint8_t attempt = 1;
  uint8_t error = 0;
  uint64_t msg_id = 0;
  int64_t processing_us = 0;
  Gift gift;
};

struct StepLater {
  bool operator()(const Step& a, const Step& b) const {
    return a.t_us != b.t_us ? a.t_us > b.t_us : a.seq > b.seq;
  }
};

// A Poisson process with a time-varying rate, drawn by thinning: candidates at
// `max_rate`, each kept with probability rate(t) / max_rate.
struct PoissonStream {
  explicit PoissonStream(uint64_t seed) : rng(seed) {}
  Rng rng;
  double rel_us = 0;         // last candidate, relative to the generation start
  double max_rate = 0;       // per microsecond; bounds the rate everywhere
  int64_t next_us = kNever;  // absolute time of the next arrival
};

// Distinct PRNG streams per source, so that e.g. adding gift traffic does not
// change the access log.
enum StreamId : uint64_t { kAccess = 1, kGifts, kWallet, kExpirySpike, kPreexisting, kOutbox };

uint64_t StreamSeed(uint64_t seed, StreamId id) {
  uint64_t x = seed ^ (id * 0xd1b54a32d192ed03ULL);
  return Rng::SplitMix64(x);
}

class Generator {
 public:
  using ProgressFn = absl::FunctionRef<void(int64_t, const GenStats&)>;

  Generator(const GenConfig& config, TrafficSink& sink, ProgressFn progress,
            uint64_t progress_every)
      : sink_(sink),
        progress_(progress),
        progress_every_(std::max<uint64_t>(1, progress_every)),
        lines_to_progress_(progress_every_),
        start_us_(config.start_us),
        duration_us_(static_cast<double>(config.duration_us)),
        end_us_(config.start_us + config.duration_us),
        access_per_us_(config.access_rate / kUsPerSec),
        gifts_per_us_(config.gifts_per_minute / kUsPerMin),
        wallet_per_us_(config.wallet_per_minute / kUsPerMin),
        phase0_(kOmega *
                static_cast<double>(((config.start_us % kUsPerDay) + kUsPerDay) % kUsPerDay -
                                    kDiurnalPeakUs)),
        access_(StreamSeed(config.seed, kAccess)),
        gifts_(StreamSeed(config.seed, kGifts)),
        wallet_(StreamSeed(config.seed, kWallet)),
        expiry_spike_(StreamSeed(config.seed, kExpirySpike)),
        outbox_rng_(StreamSeed(config.seed, kOutbox)),
        preexisting_seed_(StreamSeed(config.seed, kPreexisting)) {
    for (const IncidentSpan& span : config.incidents) {
      spans_[static_cast<int>(span.kind)].emplace_back(span.start_us, span.end_us);
    }
    for (auto& spans : spans_) std::sort(spans.begin(), spans.end());
    backlog_drain_cursor_.assign(Spans(IncidentKind::kOutboxBacklog).size(), 0);
    for (const RouteSpec& r : kRoutes) {
      heads_.push_back(
          Cat("\",\"method\":\"", Av(r.method), "\",\"route\":\"", Av(r.route), "\",\"path\":\""));
      heads_without_route_.push_back(Cat("\",\"method\":\"", Av(r.method), "\",\"path\":\""));
    }

    access_.max_rate = access_per_us_ * kDiurnalMax;
    gifts_.max_rate = std::max(gifts_per_us_ * kDiurnalMax, kDroughtPerUs);
    wallet_.max_rate = wallet_per_us_ * kDiurnalMax;
    if (!Spans(IncidentKind::kExpirySpike).empty()) {
      expiry_spike_.max_rate = kExpirySpikeFactor * gifts_per_us_ * kDiurnalMax;
    }
  }

  absl::Status Run() {
    SeedPreexistingGifts();
    Advance(access_, [&](double rel) { return access_per_us_ * Diurnal(rel); });
    AdvanceGifts();
    AdvanceWallet();
    AdvanceExpirySpike();
    for (;;) {
      const int64_t t_queue = queue_.empty() ? kNever : queue_.top().t_us;
      const int64_t t_other =
          std::min({t_queue, gifts_.next_us, wallet_.next_us, expiry_spike_.next_us});
      // Access lines dominate the volume: emit them in a tight loop up to the
      // next outbox event.
      while (access_.next_us < t_other) {
        if (absl::Status s = EmitAccess(access_.next_us); !s.ok()) return s;
        Advance(access_, [&](double rel) { return access_per_us_ * Diurnal(rel); });
      }
      if (t_other == kNever) break;
      absl::Status s;
      if (t_queue == t_other) {
        const Step step = queue_.top();
        queue_.pop();
        s = RunStep(step);
      } else if (gifts_.next_us == t_other) {
        s = CreateGift(t_other);
        AdvanceGifts();
      } else if (wallet_.next_us == t_other) {
        s = CreateWalletTransaction(t_other);
        AdvanceWallet();
      } else {
        s = EmitExpirySpikeGift(t_other);
        AdvanceExpirySpike();
      }
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  const GenStats& stats() const { return stats_; }

 private:
  static constexpr double kOmega = 2 * std::numbers::pi / static_cast<double>(kUsPerDay);
  static constexpr double kDroughtPerUs = 2.0 / kUsPerHour;
  // During expiry_spike, extra expiries arrive at this multiple of the
  // creation rate: expired / (claimed + expired) rises from ~12% to ~70%.
  static constexpr double kExpirySpikeFactor = 2.0;
  static constexpr double kClaimDropShare = 0.9;

  double Diurnal(double rel_us) const {
    return 1.0 + kDiurnalAmplitude * std::cos(phase0_ + kOmega * rel_us);
  }

  int64_t ToAbs(double rel_us) const {
    return start_us_ + static_cast<int64_t>(std::floor(rel_us));
  }

  const std::vector<std::pair<int64_t, int64_t>>& Spans(IncidentKind kind) const {
    return spans_[static_cast<int>(kind)];
  }

  bool Active(IncidentKind kind, int64_t t_us) const {
    for (const auto& [start, end] : Spans(kind)) {
      if (start <= t_us && t_us < end) return true;
    }
    return false;
  }

  // Moves `s` to its next arrival before `end_rel_us`, or to kNever.
  template <typename RateFn>
  static void AdvanceTo(PoissonStream& s, RateFn rate, double end_rel_us, int64_t start_us) {
    if (s.max_rate <= 0) {
      s.next_us = kNever;
      return;
    }
    for (;;) {
      s.rel_us += s.rng.Exponential() / s.max_rate;
      if (s.rel_us >= end_rel_us) {
        s.next_us = kNever;
        return;
      }
      if (s.rng.Uniform() * s.max_rate < rate(s.rel_us)) {
        s.next_us = start_us + static_cast<int64_t>(std::floor(s.rel_us));
        return;
      }
    }
  }

  template <typename RateFn>
  void Advance(PoissonStream& s, RateFn rate) {
    AdvanceTo(s, rate, duration_us_, start_us_);
  }

  double GiftRate(double rel_us) const {
    const double normal = gifts_per_us_ * Diurnal(rel_us);
    if (Active(IncidentKind::kCreationDrought, ToAbs(rel_us))) {
      return std::min(normal, kDroughtPerUs);
    }
    return normal;
  }

  void AdvanceGifts() {
    Advance(gifts_, [&](double rel) { return GiftRate(rel); });
  }
  void AdvanceWallet() {
    Advance(wallet_, [&](double rel) { return wallet_per_us_ * Diurnal(rel); });
  }
  void AdvanceExpirySpike() {
    Advance(expiry_spike_, [&](double rel) {
      return Active(IncidentKind::kExpirySpike, ToAbs(rel))
                 ? kExpirySpikeFactor * gifts_per_us_ * Diurnal(rel)
                 : 0.0;
    });
  }

  void Push(Step step) {
    if (step.t_us >= end_us_) return;
    step.seq = next_seq_++;
    queue_.push(step);
  }

  Gift NewGift(Rng& rng, int64_t created_us) {
    Gift g;
    g.id = next_gift_id_++;
    g.created_us = created_us;
    g.mode = static_cast<uint8_t>(mode_pick_.Pick(rng));
    g.theme = static_cast<uint8_t>(theme_pick_.Pick(rng));
    const double usd = std::clamp(rng.LogNormal(30, 0.8), 1.0, 1000.0);
    g.value_cents = static_cast<uint32_t>(std::llround(usd * 100));
    return g;
  }

  // Draws whether a gift created at `created_us` is claimed (and when) or
  // expires; claim_drop turns most claims inside its span into expiries.
  std::pair<StepKind, int64_t> DrawFate(Rng& rng, int64_t created_us) const {
    if (rng.Uniform() < kClaimProbability) {
      const double delay =
          std::clamp(rng.LogNormal(2.0 * kUsPerHour, 1.5), static_cast<double>(kUsPerMin),
                     static_cast<double>(kGiftLifetimeUs - kUsPerMin));
      const int64_t claim_us = created_us + static_cast<int64_t>(delay);
      if (!Active(IncidentKind::kClaimDrop, claim_us) || rng.Uniform() >= kClaimDropShare) {
        return {StepKind::kClaim, claim_us};
      }
    }
    return {StepKind::kExpire, created_us + kGiftLifetimeUs};
  }

  void ScheduleFate(Rng& rng, const Gift& gift) {
    const auto [kind, t_us] = DrawFate(rng, gift.created_us);
    Step step;
    step.t_us = t_us;
    step.kind = kind;
    step.gift = gift;
    Push(step);
  }

  // Gifts created in the 7 days before the start, at the steady-state rate,
  // so that claims and expiries flow from the first hour as in a long-running
  // system. Only their claims and expiries inside the run are kept.
  void SeedPreexistingGifts() {
    PoissonStream pre(preexisting_seed_);
    pre.rel_us = -static_cast<double>(kGiftLifetimeUs);
    pre.max_rate = gifts_per_us_ * kDiurnalMax;
    for (;;) {
      AdvanceTo(
          pre, [&](double rel) { return gifts_per_us_ * Diurnal(rel); }, 0.0, start_us_);
      if (pre.next_us == kNever) break;
      const auto [kind, t_us] = DrawFate(pre.rng, pre.next_us);
      if (t_us < start_us_ || t_us >= end_us_) continue;
      Step step;
      step.t_us = t_us;
      step.kind = kind;
      step.gift = NewGift(pre.rng, pre.next_us);
      Push(step);
    }
  }

  // A stalled outbox moves nothing to in_flight inside an outbox_backlog span;
  // what would have started there starts after it, one every
  // kBacklogDrainGapUs.
  int64_t DeferPastBacklog(int64_t t_us) {
    const auto& spans = Spans(IncidentKind::kOutboxBacklog);
    for (bool moved = true; moved;) {
      moved = false;
      for (size_t i = 0; i < spans.size(); ++i) {
        if (spans[i].first <= t_us && t_us < spans[i].second) {
          t_us = std::max(spans[i].second, backlog_drain_cursor_[i]) + kBacklogDrainGapUs;
          backlog_drain_cursor_[i] = t_us;
          moved = true;
        }
      }
    }
    return t_us;
  }

  void ScheduleInFlight(int64_t t_us, uint64_t msg_id, OutboxType type, int attempt) {
    Step step;
    step.t_us = DeferPastBacklog(t_us);
    step.kind = StepKind::kInFlight;
    step.type = type;
    step.msg_id = msg_id;
    step.attempt = static_cast<uint8_t>(attempt);
    Push(step);
  }

  absl::Status Emit(Topic topic, int64_t t_us) {
    const std::string_view v = line_.View();
    if (topic == Topic::kAccessLog) {
      ++stats_.access_lines;
      stats_.access_bytes += v.size() + 1;
    } else {
      ++stats_.outbox_lines;
      stats_.outbox_bytes += v.size() + 1;
    }
    if (--lines_to_progress_ == 0) {
      lines_to_progress_ = progress_every_;
      progress_(t_us, stats_);
    }
    return sink_.Write(topic, v);
  }

  absl::Status EmitAccess(int64_t t_us) {
    Rng& rng = access_.rng;
    const int r = route_pick_.Pick(rng);
    const RouteSpec& route = kRoutes[r];

    const double server_share =
        Active(IncidentKind::kErrorSpike, t_us) ? kSpikeServerErrorShare : kServerErrorShare;
    uint16_t status = route.ok_status;
    std::string_view error_code;
    const double u = rng.Uniform();
    if (u < server_share) {
      const ApiError& e = kServerErrors[server_error_pick_.Pick(rng)];
      status = e.status;
      error_code = e.code;
    } else if (u < server_share + kClientErrorShare) {
      const ApiError& e = rng.Below(2) == 0 ? route.client_error_a : route.client_error_b;
      status = e.status;
      error_code = e.code;
    }

    double ms = rng.LogNormal(route.median_ms, route.sigma);
    if (Active(IncidentKind::kLatencySpike, t_us)) ms *= kLatencySpikeFactor;
    const uint64_t duration_us = std::max<uint64_t>(100, std::llround(ms * 1000));

    uint64_t bytes = 0;
    if (status >= 400) {
      bytes = 60 + rng.Below(120);
    } else if (route.ok_bytes > 0) {
      bytes = route.ok_bytes / 2 + rng.Below(route.ok_bytes);
    }

    line_.Clear();
    line_.Add("{\"ts\":\"");
    access_ts_.Append(line_, t_us);
    line_.Add(rng.Uniform() < kRouteOmittedShare ? heads_without_route_[r] : heads_[r]);
    line_.Add(route.path_prefix);
    if (route.path_kind == PathKind::kNumericId) {
      line_.AddUint(1 + rng.Below(999'999));
    } else if (route.path_kind == PathKind::kUuid) {
      line_.AddUuid(rng);
    }
    line_.Add(route.path_suffix);
    line_.Add("\",\"status\":");
    line_.AddUint(status);
    line_.Add(",\"duration_ms\":");
    line_.AddFixed(duration_us, 3);
    line_.Add(",\"bytes_out\":");
    line_.AddUint(bytes);
    line_.Add(",\"request_id\":\"req-");
    line_.AddHex(rng.Next(), 12);
    line_.Add("\",\"instance\":\"api-");
    line_.Add(static_cast<char>('1' + rng.Below(4)));
    line_.Add("\",\"client_ip\":\"10.");
    line_.AddUint(rng.Below(256));
    line_.Add('.');
    line_.AddUint(rng.Below(256));
    line_.Add('.');
    line_.AddUint(1 + rng.Below(254));
    line_.Add("\",\"user_agent\":\"");
    line_.Add(kUserAgents[rng.Below(std::size(kUserAgents))]);
    line_.Add('"');
    if (!error_code.empty()) {
      line_.Add(",\"error_code\":\"");
      line_.Add(error_code);
      line_.Add('"');
    }
    line_.Add('}');
    return Emit(Topic::kAccessLog, t_us);
  }

  // Starts an outbox line: {"ts":...,"id":...,"type":...,"status":...,"attempt":N
  void BeginOutbox(int64_t t_us, uint64_t msg_id, OutboxType type, OutboxStatus status,
                   int attempt) {
    line_.Clear();
    line_.Add("{\"ts\":\"");
    outbox_ts_.Append(line_, t_us);
    line_.Add("\",\"id\":\"evt-");
    line_.AddUint(msg_id);
    line_.Add("\",\"type\":\"");
    line_.Add(OutboxTypeName(type));
    line_.Add("\",\"status\":\"");
    line_.Add(OutboxStatusName(status));
    line_.Add("\",\"attempt\":");
    line_.AddUint(static_cast<uint64_t>(attempt));
  }

  void AddGiftFields(const Gift& g, bool with_value) {
    line_.Add("\"gift_id\":\"g-");
    line_.AddUint(g.id);
    line_.Add("\",\"mode\":\"");
    line_.Add(kModes[g.mode]);
    line_.Add("\",\"theme\":\"");
    line_.Add(kThemes[g.theme]);
    line_.Add('"');
    if (with_value) {
      line_.Add(",\"value_usd\":");
      line_.AddFixed(g.value_cents, 2);
    }
  }

  // Emits the `queued` line of a new message, `add_data` writing the fields
  // of its data object, and schedules its first attempt.
  template <typename AddData>
  absl::Status EmitQueued(int64_t t_us, OutboxType type, AddData add_data) {
    const uint64_t msg_id = next_msg_id_++;
    BeginOutbox(t_us, msg_id, type, OutboxStatus::kQueued, 1);
    line_.Add(",\"data\":{");
    add_data();
    line_.Add("}}");
    const double pickup_ms = std::clamp(outbox_rng_.LogNormal(80, 0.8), 20.0, 500.0);
    ScheduleInFlight(t_us + static_cast<int64_t>(pickup_ms * kUsPerMs), msg_id, type, 1);
    return Emit(Topic::kOutbox, t_us);
  }

  absl::Status CreateGift(int64_t t_us) {
    const Gift gift = NewGift(gifts_.rng, t_us);
    ScheduleFate(gifts_.rng, gift);
    return EmitQueued(t_us, OutboxType::kGiftCreated, [&] { AddGiftFields(gift, true); });
  }

  absl::Status EmitClaimOrExpiry(int64_t t_us, const Gift& gift, bool claimed) {
    return EmitQueued(t_us, claimed ? OutboxType::kGiftClaimed : OutboxType::kGiftExpired, [&] {
      AddGiftFields(gift, claimed);
      line_.Add(",\"created_at\":\"");
      created_at_ts_.Append(line_, gift.created_us);
      line_.Add('"');
    });
  }

  absl::Status EmitExpirySpikeGift(int64_t t_us) {
    const Gift gift = NewGift(expiry_spike_.rng, t_us - kGiftLifetimeUs);
    return EmitClaimOrExpiry(t_us, gift, false);
  }

  absl::Status CreateWalletTransaction(int64_t t_us) {
    Rng& rng = wallet_.rng;
    const int kind = wallet_kind_pick_.Pick(rng);
    const int status = wallet_status_pick_.Pick(rng);
    const double usd = std::clamp(rng.LogNormal(25, 0.9), 1.0, 2000.0);
    return EmitQueued(t_us, OutboxType::kWalletTransaction, [&] {
      line_.Add("\"kind\":\"");
      line_.Add(kWalletKinds[kind]);
      line_.Add("\",\"amount_usd\":");
      line_.AddFixed(static_cast<uint64_t>(std::llround(usd * 100)), 2);
      line_.Add(",\"status\":\"");
      line_.Add(kWalletStatuses[status]);
      line_.Add('"');
    });
  }

  void AddProcessingMs(int64_t processing_us) {
    line_.Add(",\"processing_ms\":");
    line_.AddFixed(static_cast<uint64_t>(processing_us), 3);
  }

  absl::Status RunStep(const Step& step) {
    switch (step.kind) {
      case StepKind::kClaim:
        return EmitClaimOrExpiry(step.t_us, step.gift, true);
      case StepKind::kExpire:
        return EmitClaimOrExpiry(step.t_us, step.gift, false);
      case StepKind::kInFlight: {
        BeginOutbox(step.t_us, step.msg_id, step.type, OutboxStatus::kInFlight, step.attempt);
        line_.Add('}');
        Step next = step;
        const double fail_p = Active(IncidentKind::kOutboxFailures, step.t_us)
                                  ? kIncidentAttemptFailure
                                  : kNormalAttemptFailure;
        double ms;
        if (outbox_rng_.Uniform() < fail_p) {
          next.kind = StepKind::kFailed;
          next.error = static_cast<uint8_t>(outbox_error_pick_.Pick(outbox_rng_));
          ms = next.error == 0
                   ? static_cast<double>(kOutboxTimeoutUs) / kUsPerMs + 200 * outbox_rng_.Uniform()
                   : std::clamp(outbox_rng_.LogNormal(15, 0.6), 1.0, 5000.0);
        } else {
          next.kind = StepKind::kProcessed;
          ms = std::clamp(outbox_rng_.LogNormal(40, 0.7), 1.0, 30000.0);
        }
        next.processing_us = std::llround(ms * kUsPerMs);
        next.t_us = step.t_us + next.processing_us;
        Push(next);
        return Emit(Topic::kOutbox, step.t_us);
      }
      case StepKind::kProcessed:
        BeginOutbox(step.t_us, step.msg_id, step.type, OutboxStatus::kProcessed, step.attempt);
        AddProcessingMs(step.processing_us);
        line_.Add('}');
        return Emit(Topic::kOutbox, step.t_us);
      case StepKind::kFailed: {
        BeginOutbox(step.t_us, step.msg_id, step.type, OutboxStatus::kFailed, step.attempt);
        AddProcessingMs(step.processing_us);
        line_.Add(",\"error\":\"");
        line_.Add(kOutboxErrors[step.error]);
        line_.Add("\"}");
        if (absl::Status s = Emit(Topic::kOutbox, step.t_us); !s.ok()) return s;
        if (step.attempt >= kMaxOutboxAttempts) {
          BeginOutbox(step.t_us, step.msg_id, step.type, OutboxStatus::kDead, step.attempt);
          line_.Add(",\"error\":\"");
          line_.Add(kOutboxErrors[step.error]);
          line_.Add("\"}");
          return Emit(Topic::kOutbox, step.t_us);
        }
        // Exponential backoff 1 s, 2 s, 4 s, 8 s, with jitter.
        const int64_t backoff = (kUsPerSec << (step.attempt - 1)) +
                                static_cast<int64_t>(outbox_rng_.Below(250 * kUsPerMs));
        ScheduleInFlight(step.t_us + backoff, step.msg_id, step.type, step.attempt + 1);
        return absl::OkStatus();
      }
    }
    return absl::OkStatus();
  }

  TrafficSink& sink_;
  ProgressFn progress_;
  const uint64_t progress_every_;
  uint64_t lines_to_progress_;
  const int64_t start_us_;
  const double duration_us_;
  const int64_t end_us_;
  const double access_per_us_;
  const double gifts_per_us_;
  const double wallet_per_us_;
  const double phase0_;

  PoissonStream access_;
  PoissonStream gifts_;
  PoissonStream wallet_;
  PoissonStream expiry_spike_;
  Rng outbox_rng_;
  const uint64_t preexisting_seed_;

  std::array<std::vector<std::pair<int64_t, int64_t>>, kIncidentKindCount> spans_;
  std::vector<int64_t> backlog_drain_cursor_;  // per outbox_backlog span
  std::priority_queue<Step, std::vector<Step>, StepLater> queue_;
  uint64_t next_seq_ = 0;
  uint64_t next_msg_id_ = 1;
  uint64_t next_gift_id_ = 100'000;

  const Weighted route_pick_{[] {
    std::vector<double> w;
    w.reserve(std::size(kRoutes));
    for (const RouteSpec& r : kRoutes) w.push_back(r.weight);
    return w;
  }()};
  const Weighted server_error_pick_{0.5, 0.25, 0.25};
  const Weighted mode_pick_{0.55, 0.20, 0.15, 0.10};
  const Weighted theme_pick_{0.35, 0.15, 0.15, 0.15, 0.10, 0.10};
  const Weighted wallet_kind_pick_{0.35, 0.45, 0.08, 0.12};
  const Weighted wallet_status_pick_{0.94, 0.04, 0.02};
  const Weighted outbox_error_pick_{0.4, 0.3, 0.2, 0.1};
  std::vector<std::string> heads_;
  std::vector<std::string> heads_without_route_;

  Line line_;
  TimestampFormatter access_ts_;
  TimestampFormatter outbox_ts_;
  TimestampFormatter created_at_ts_;
  GenStats stats_;
};

}  // namespace

absl::Status ValidateGenConfig(const GenConfig& c) {
  const auto bad_rate = [](double r) { return !std::isfinite(r) || r < 0; };
  if (bad_rate(c.access_rate) || bad_rate(c.gifts_per_minute) || bad_rate(c.wallet_per_minute)) {
    return absl::InvalidArgumentError("rates must be finite and >= 0");
  }
  if (c.duration_us < 0) return absl::InvalidArgumentError("duration must be >= 0");
  if (c.start_us < kGiftLifetimeUs || c.start_us > kMaxTimeUs - c.duration_us) {
    return absl::InvalidArgumentError(
        "start and end must lie between 1970-01-08 and year 9999 (pre-existing gifts reach 7 "
        "days back)");
  }
  for (const IncidentSpan& span : c.incidents) {
    if (static_cast<int>(span.kind) >= kIncidentKindCount) {
      return absl::InvalidArgumentError("unknown incident kind");
    }
    if (span.end_us <= span.start_us) {
      return absl::InvalidArgumentError(
          Cat("incident ", IncidentName(span.kind), " has an empty time span"));
    }
  }
  return absl::OkStatus();
}

// A duration (base/duration.h: "90m", "1h30m", "45s", "2d") in microseconds.
absl::StatusOr<int64_t> ParseDurationUs(std::string_view s) {
  const absl::StatusOr<absl::Duration> d = ParseDuration(s);
  if (!d.ok())
    return absl::InvalidArgumentError(Cat("bad duration '", s, "': ", d.status().message()));
  // A bound far beyond any sensible run keeps later arithmetic from overflowing.
  if (*d > absl::Hours(24 * 100'000)) {
    return absl::InvalidArgumentError(Cat("bad duration '", s, "': too long"));
  }
  return absl::ToInt64Microseconds(*d);
}

std::string_view IncidentName(IncidentKind kind) {
  const int i = static_cast<int>(kind);
  return i < kIncidentKindCount ? kIncidentNames[i] : "unknown";
}

absl::StatusOr<IncidentKind> ParseIncidentName(std::string_view name) {
  for (int i = 0; i < kIncidentKindCount; ++i) {
    if (kIncidentNames[i] == name) return static_cast<IncidentKind>(i);
  }
  std::string known;
  for (std::string_view n : kIncidentNames)
    absl::StrAppend(&known, known.empty() ? "" : ", ", Av(n));
  return absl::InvalidArgumentError(Cat("unknown incident '", name, "' (known: ", known, ")"));
}

absl::StatusOr<IncidentSpan> ParseIncidentSpec(std::string_view spec, int64_t gen_start_us) {
  const auto fail = [&](absl::string_view why) {
    return absl::InvalidArgumentError(Cat("incident '", spec, "': ", why));
  };
  const size_t at = spec.find('@');
  if (at == std::string_view::npos) {
    return fail("expected NAME@OFFSET+DURATION, e.g. error_spike@10h+30m");
  }
  const size_t plus = spec.find('+', at + 1);
  if (plus == std::string_view::npos) {
    return fail("missing '+DURATION' after the offset, e.g. error_spike@10h+30m");
  }
  absl::StatusOr<IncidentKind> kind = ParseIncidentName(spec.substr(0, at));
  if (!kind.ok()) return fail(kind.status().message());
  absl::StatusOr<int64_t> offset = ParseDurationUs(spec.substr(at + 1, plus - at - 1));
  if (!offset.ok()) return fail(Cat("offset: ", offset.status().message()));
  absl::StatusOr<int64_t> duration = ParseDurationUs(spec.substr(plus + 1));
  if (!duration.ok()) return fail(Cat("duration: ", duration.status().message()));
  if (*duration <= 0) return fail("duration must be positive");
  IncidentSpan span;
  span.kind = *kind;
  span.start_us = gen_start_us + *offset;
  span.end_us = span.start_us + *duration;
  return span;
}

absl::StatusOr<GenStats> GenerateTraffic(const GenConfig& config, TrafficSink& sink) {
  return GenerateTraffic(config, sink, [](int64_t, const GenStats&) {});
}

absl::StatusOr<GenStats> GenerateTraffic(
    const GenConfig& config, TrafficSink& sink,
    absl::FunctionRef<void(int64_t event_time_us, const GenStats& so_far)> progress) {
  return GenerateTraffic(config, sink, progress, kDefaultProgressEvery);
}

absl::StatusOr<GenStats> GenerateTraffic(
    const GenConfig& config, TrafficSink& sink,
    absl::FunctionRef<void(int64_t event_time_us, const GenStats& so_far)> progress,
    uint64_t progress_every) {
  if (absl::Status s = ValidateGenConfig(config); !s.ok()) return s;
  Generator generator(config, sink, progress, progress_every);
  if (absl::Status s = generator.Run(); !s.ok()) return s;
  return generator.stats();
}

}  // namespace novapulse
