#include "parsers/timestamp.h"

#include <cmath>
#include <cstring>

#include "base/time_math.h"

namespace novapulse {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
constexpr int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Civil {
  int64_t year, month, day;
};

constexpr Civil CivilFromDays(int64_t z) noexcept {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp + (mp < 10 ? 3 : -9);
  return {yoe + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

constexpr bool IsLeap(int64_t y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

constexpr int DaysInMonth(int64_t y, int64_t m) noexcept {
  constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads exactly `n` digits at `pos`.
bool Digits(std::string_view s, size_t pos, size_t n, int64_t* out) noexcept {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    const unsigned d = static_cast<unsigned char>(s[i]) - '0';
    if (d > 9) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// The largest epoch second we accept: 9999-12-31T23:59:59Z.
constexpr int64_t kMaxEpochSeconds = DaysFromCivil(9999, 12, 31) * 86400 + 86399;

// Consecutive records nearly always share their date: the day number of the
// last "YYYY-MM-DD" each thread parsed saves the calendar arithmetic.
struct DateCache {
  char date[10] = {'1', '9', '7', '0', '-', '0', '1', '-', '0', '1'};  // day 0
  int64_t days = 0;
};
thread_local DateCache date_cache;

bool ParseDate(std::string_view s, int64_t* days) noexcept {
  if (s.size() < 10) return false;
  if (std::memcmp(s.data(), date_cache.date, 10) == 0) {
    *days = date_cache.days;
    return true;
  }
  int64_t year, month, day;
  if (!Digits(s, 0, 4, &year) || s[4] != '-' || !Digits(s, 5, 2, &month) || s[7] != '-' ||
      !Digits(s, 8, 2, &day)) {
    return false;
  }
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) {
    return false;
  }
  *days = DaysFromCivil(year, month, day);
  std::memcpy(date_cache.date, s.data(), 10);
  date_cache.days = *days;
  return true;
}

}  // namespace

namespace {

// "YYYY-MM-DDTHH:MM:SS.mmmZ", the form nearly every producer writes: fixed
// offsets, no loops. False for anything else (and for out-of-range values),
// which then take the general path.
bool ParseCommonForm(std::string_view s, int64_t* out_us) noexcept {
  const char* p = s.data();
  if (s.size() != 24 || p[10] != 'T' || p[13] != ':' || p[16] != ':' || p[19] != '.' ||
      p[23] != 'Z') {
    return false;
  }
  auto digit = [p](int i) { return static_cast<unsigned>(static_cast<unsigned char>(p[i]) - '0'); };
  const unsigned d[] = {digit(11), digit(12), digit(14), digit(15), digit(17),
                        digit(18), digit(20), digit(21), digit(22)};
  for (unsigned v : d) {
    if (v > 9) return false;
  }
  const int64_t hour = d[0] * 10 + d[1], minute = d[2] * 10 + d[3], second = d[4] * 10 + d[5];
  if (hour > 23 || minute > 59 || second > 59) return false;
  int64_t days;
  if (!ParseDate(s, &days)) return false;
  const int64_t epoch_seconds = days * 86400 + hour * 3600 + minute * 60 + second;
  if (epoch_seconds > kMaxEpochSeconds) return false;
  *out_us = epoch_seconds * kMicrosPerSecond + (d[6] * 100 + d[7] * 10 + d[8]) * 1000;
  return true;
}

}  // namespace

bool ParseRfc3339(std::string_view s, int64_t* out_us) noexcept {
  if (ParseCommonForm(s, out_us)) return true;
  int64_t days, hour, minute, second;
  if (s.size() < 20 || !ParseDate(s, &days) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &hour) || s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' ||
      !Digits(s, 17, 2, &second)) {
    return false;
  }
  if (hour > 23 || minute > 59 || second > 60) {  // 60: a leap second, folded into :59
    return false;
  }
  if (second == 60) second = 59;
  size_t pos = 19;
  int64_t micros = 0;
  if (s[pos] == '.') {
    ++pos;
    const size_t start = pos;
    int64_t scale = 100000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      micros += (s[pos] - '0') * scale;  // digits past microseconds are truncated
      scale /= 10;
      ++pos;
    }
    if (pos == start) return false;
  }
  if (pos >= s.size()) return false;
  int64_t offset_seconds = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int64_t oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return false;
    }
    offset_seconds = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  const int64_t epoch_seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  if (epoch_seconds < 0 || epoch_seconds > kMaxEpochSeconds) return false;
  *out_us = epoch_seconds * kMicrosPerSecond + micros;
  return true;
}

bool EpochNumberToMicros(double value, int64_t* out_us) noexcept {
  if (!std::isfinite(value) || value < 0) return false;
  const bool millis = value >= 1e11;
  const double seconds = millis ? value / 1000.0 : value;
  if (seconds >= static_cast<double>(kMaxEpochSeconds + 1)) return false;
  // Scale whole numbers in integers: a double holds every integer up to 2^53
  // exactly, but not every product of one with 1000 or 1e6.
  const double scale = millis ? 1e3 : 1e6;
  const double whole = std::floor(value);
  *out_us = static_cast<int64_t>(whole) * static_cast<int64_t>(scale) +
            static_cast<int64_t>(std::llround((value - whole) * scale));
  return true;
}

void AppendRfc3339Millis(int64_t ts_us, std::string* out) {
  const int64_t seconds = FloorDiv(ts_us, kMicrosPerSecond);
  const int64_t micros = ts_us - seconds * kMicrosPerSecond;
  const int64_t days = FloorDiv(seconds, 86400);
  const int64_t sod = seconds - days * 86400;
  const Civil c = CivilFromDays(days);
  char buf[32];
  const int64_t fields[] = {c.year,        c.month,  c.day,        sod / 3600,
                            sod / 60 % 60, sod % 60, micros / 1000};
  // YYYY-MM-DDTHH:MM:SS.mmmZ written by hand: no locale, no allocation beyond `out`.
  auto put = [&buf](int at, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      buf[at + i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  put(0, fields[0], 4);
  buf[4] = '-';
  put(5, fields[1], 2);
  buf[7] = '-';
  put(8, fields[2], 2);
  buf[10] = 'T';
  put(11, fields[3], 2);
  buf[13] = ':';
  put(14, fields[4], 2);
  buf[16] = ':';
  put(17, fields[5], 2);
  buf[19] = '.';
  put(20, fields[6], 3);
  buf[23] = 'Z';
  out->append(buf, 24);
}

std::string FormatRfc3339Millis(int64_t ts_us) {
  std::string out;
  AppendRfc3339Millis(ts_us, &out);
  return out;
}

}  // namespace novapulse
