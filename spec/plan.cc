#include "spec/plan.h"

#include <re2/re2.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "base/str_cat.h"
#include "parsers/json_values.h"
#include "parsers/route.h"
#include "parsers/timestamp.h"

namespace novapulse::spec {
namespace {

// Key prefixes are built for words loaded from memory in this byte order.
static_assert(std::endian::native == std::endian::little);

// 9999-12-31T23:59:59Z and a bit: the last instant an event time may have.
constexpr double kMaxEventSeconds = 253402300800.0;

std::string Where(const MetricSpecSet& spec, const Position& pos) {
  return Cat(spec.file, ":", pos.line, ":", pos.column);
}

bool Compare(double a, Condition::Op op, double b) {
  switch (op) {
    case Condition::Op::kEq:
      return a == b;
    case Condition::Op::kNe:
      return a != b;
    case Condition::Op::kLt:
      return a < b;
    case Condition::Op::kLe:
      return a <= b;
    case Condition::Op::kGt:
      return a > b;
    case Condition::Op::kGe:
      return a >= b;
    default:
      return false;
  }
}

// Fields nothing reads but another field's fallback (see InputPlan::lazy).
std::vector<uint8_t> LazyFields(const MetricSpecSet& spec, size_t input) {
  const InputSpec& in = spec.inputs[input];
  std::vector<uint8_t> used(in.fields.size(), 0);
  std::vector<uint8_t> fallback(in.fields.size(), 0);
  std::vector<int> read;
  auto condition = [&](const Condition& c) { c.Fields(&read); };
  if (in.time_field >= 0) used[in.time_field] = 1;
  for (size_t f = 0; f < in.fields.size(); ++f) {
    const FieldSpec& field = in.fields[f];
    // A field whose presence or value is checked is decoded in full.
    if (field.required || !field.required_when.always() || !field.values.empty()) used[f] = 1;
    condition(field.required_when);
    if (field.fallback >= 0) fallback[field.fallback] = 1;
  }
  for (const MetricSpec& m : spec.metrics) {
    if (m.input != static_cast<int>(input)) continue;
    condition(m.when);
    for (const LabelSpec& l : m.labels) read.push_back(l.field);
    for (const GaugeOp& op : m.ops) condition(op.when);
    read.insert(read.end(), {m.value.field, m.value.minus, m.duration_field});
  }
  for (const int f : read) {
    if (f >= 0) used[f] = 1;
  }
  std::vector<uint8_t> lazy(in.fields.size(), 0);
  for (size_t f = 0; f < in.fields.size(); ++f) lazy[f] = fallback[f] && !used[f] ? 1 : 0;
  return lazy;
}

// Precomputes Condition::codes for the leaves over fields with a `values`
// list (at most 64 values).
void CompileCodes(const InputSpec& in, Condition* c) {
  for (Condition& child : c->children) CompileCodes(in, &child);
  if (c->field < 0) return;
  const FieldSpec& f = in.fields[c->field];
  const bool set_op = c->op == Condition::Op::kEq || c->op == Condition::Op::kNe ||
                      c->op == Condition::Op::kIn || c->op == Condition::Op::kNotIn;
  if (f.type != FieldType::kString || f.values.empty() || f.values.size() > 64 || !set_op) return;
  uint64_t matching = 0;
  for (size_t i = 0; i < f.values.size(); ++i) {
    for (const Literal& l : c->literals) {
      if (l.text == f.values[i]) matching |= uint64_t{1} << i;
    }
  }
  const bool negated = c->op == Condition::Op::kNe || c->op == Condition::Op::kNotIn;
  const uint64_t all = f.values.size() == 64 ? ~uint64_t{0} : (uint64_t{1} << f.values.size()) - 1;
  c->codes = negated ? (~matching & all) : matching;
  c->by_code = true;
}

// Fills Condition::flat_* when `c` is a conjunction of leaves that are
// `exists` or value-code tests (CompileCodes has run); a condition of one
// such leaf, or none (kTrue), counts.
void CompileFlat(Condition* c) {
  for (Condition& child : c->children) CompileFlat(&child);
  std::vector<const Condition*> leaves;
  if (c->op == Condition::Op::kAnd) {
    for (const Condition& child : c->children) leaves.push_back(&child);
  } else if (c->op != Condition::Op::kTrue) {
    leaves.push_back(c);
  }
  std::vector<int> present;
  std::vector<Condition::CodeTest> codes;
  for (const Condition* leaf : leaves) {
    if (leaf->op == Condition::Op::kExists) {
      present.push_back(leaf->field);
    } else if (leaf->by_code) {
      codes.push_back({leaf->field, leaf->codes});
    } else {
      return;
    }
  }
  c->flat = true;
  c->flat_present = std::move(present);
  c->flat_codes = std::move(codes);
}

// Each key's words and masks, as SpecDecoder::Match compares them, and the
// first-byte table.
void IndexKeys(SpecPlan::Level* l) {
  l->words.assign(l->keys.size(), {});
  l->by_first.fill(-1);
  for (size_t k = l->keys.size(); k-- > 0;) {
    // A raw key never holds a bare quote or backslash: a key with one is
    // escaped in the record, and found by its unescaped text (Walk).
    if (l->keys[k].find_first_of("\"\\") != std::string::npos) continue;
    const std::string quoted = l->keys[k] + '"';
    SpecPlan::Level::Words& w = l->words[k];
    w.len = static_cast<uint32_t>(l->keys[k].size());
    // Little-endian: the key's first byte is the word's lowest.
    for (size_t i = std::min<size_t>(quoted.size(), 16); i-- > 0;) {
      w.prefix[i / 8] |= uint64_t{static_cast<uint8_t>(quoted[i])} << (8 * (i % 8));
      w.mask[i / 8] |= uint64_t{0xff} << (8 * (i % 8));
    }
    int32_t& first = l->by_first[static_cast<uint8_t>(quoted[0])];
    w.next = first;
    first = static_cast<int32_t>(k);
  }
}

SpecPlan::DetectPlan CompileDetect(const MetricSpecSet& spec) {
  SpecPlan::DetectPlan d;
  auto bits = [&d](const std::vector<std::string>& keys) {
    uint64_t mask = 0;
    for (const std::string& key : keys) {
      auto it = std::find(d.keys.keys.begin(), d.keys.keys.end(), key);
      if (it == d.keys.keys.end()) {
        d.keys.keys.push_back(key);
        d.keys.targets.push_back(static_cast<int32_t>(d.keys.targets.size()));
        it = d.keys.keys.end() - 1;
      }
      const auto bit = static_cast<size_t>(it - d.keys.keys.begin());
      if (bit < 64) mask |= uint64_t{1} << bit;
    }
    return mask;
  };
  for (const InputSpec& in : spec.inputs) {
    d.all.push_back(bits(in.detect.all));
    d.any.push_back(bits(in.detect.any));
  }
  d.usable = d.keys.keys.size() <= 64;
  IndexKeys(&d.keys);
  return d;
}

// A number read as field f's: its range, then its scale. False when it is
// out of range.
bool SetNumber(const FieldSpec& f, double n, FieldValue* out) noexcept {
  if ((f.min && n < *f.min) || (f.max && n > *f.max)) return false;
  out->raw = n;
  out->number = n * f.scale;
  out->present = true;
  return true;
}

// An epoch number in field f's unit (seconds through nanoseconds) as an
// event time. False outside [1970, 9999].
bool SetEpoch(const FieldSpec& f, double n, FieldValue* out) noexcept {
  static constexpr double kToSeconds[] = {1, 1, 1, 1e-3, 1e-6, 1e-9};
  const double seconds = n * kToSeconds[static_cast<int>(f.time_format)];
  if (!(seconds >= 0 && seconds < kMaxEventSeconds)) return false;
  out->time_us = static_cast<int64_t>(std::floor(seconds * 1e6 + 0.5));
  out->present = true;
  return true;
}

// A string field's value; false when too long for it (Read names why).
bool ReadText(const FieldSpec& f, std::string_view text, FieldValue* out) noexcept {
  if (f.transforms.empty() && text.size() > f.max_bytes) return false;
  out->text = text;
  out->present = !text.empty();
  return true;
}

// Field f's value from its raw token (without escapes), as
// SpecDecoder::Read would decode it; false for anything but the plain
// cases (which Read then decodes or rejects).
bool ReadToken(const FieldSpec& f, std::string_view token, FieldValue* out) noexcept {
  if (token == "null") return f.nullable;  // absent
  const bool is_string = token.size() >= 2 && token[0] == '"';
  const std::string_view text = is_string ? token.substr(1, token.size() - 2) : std::string_view();
  switch (f.type) {
    case FieldType::kString:
      return is_string && ReadText(f, text, out);
    case FieldType::kInt: {
      int64_t n = 0;
      return json::detail::FastInt(token, &n) && SetNumber(f, static_cast<double>(n), out);
    }
    case FieldType::kNumber: {
      double n = 0;
      return json::detail::FastDouble(token, &n) && SetNumber(f, n, out);
    }
    case FieldType::kBool:
      if (token != "true" && token != "false") return false;
      out->number = token[0] == 't' ? 1 : 0;
      out->present = true;
      return true;
    case FieldType::kTime:
      break;
  }
  if (is_string) {
    out->present = (f.time_format == TimeFormat::kAuto || f.time_format == TimeFormat::kRfc3339) &&
                   ParseRfc3339(text, &out->time_us);
    return out->present;
  }
  double n = 0;
  if (f.time_format == TimeFormat::kRfc3339 || !json::detail::FastDouble(token, &n)) {
    return false;
  }
  if (f.time_format != TimeFormat::kAuto) return SetEpoch(f, n, out);
  out->present = EpochNumberToMicros(n, &out->time_us);
  return out->present;
}

// The length of the escape at `p` (a backslash, `n` bytes readable), 0 when
// it is not one the block path takes: the plain ones (\" \\ \/ \b \f \n \r
// \t) and \uXXXX outside the surrogates (a pair, or a lone one, is left to
// simdjson, which decides). Appends what it stands for to `out` if given,
// as simdjson's unescaping does (UTF-8).
size_t EscapeLength(const char* p, size_t n, std::string* out) noexcept {
  if (n < 2) return 0;
  char plain = 0;
  switch (p[1]) {
    case '"':
    case '\\':
    case '/':
      plain = p[1];
      break;
    case 'b':
      plain = '\b';
      break;
    case 'f':
      plain = '\f';
      break;
    case 'n':
      plain = '\n';
      break;
    case 'r':
      plain = '\r';
      break;
    case 't':
      plain = '\t';
      break;
    case 'u':
      break;
    default:
      return 0;
  }
  if (plain != 0) {
    if (out != nullptr) *out += plain;
    return 2;
  }
  if (n < 6) return 0;
  uint32_t code = 0;
  for (size_t i = 2; i < 6; ++i) {
    const char c = p[i];
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
    if (digit < 0) return 0;
    code = code << 4 | static_cast<uint32_t>(digit);
  }
  if (code >= 0xd800 && code <= 0xdfff) return 0;
  if (out != nullptr) {
    if (code < 0x80) {
      *out += static_cast<char>(code);
    } else if (code < 0x800) {
      *out += static_cast<char>(0xc0 | (code >> 6));
      *out += static_cast<char>(0x80 | (code & 0x3f));
    } else {
      *out += static_cast<char>(0xe0 | (code >> 12));
      *out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (code & 0x3f));
    }
  }
  return 6;
}

// A string token's text with its escapes (all taken by EscapeLength) undone.
void Unescape(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size();) {
    if (text[i] != '\\') {
      *out += text[i++];
      continue;
    }
    i += EscapeLength(text.data() + i, text.size() - i, out);
  }
}

// The raw token of index entry i: up to the next entry, less whitespace.
std::string_view Token(const char* w, const uint32_t* ix, uint32_t i) noexcept {
  return json::detail::Trim({w + ix[i], ix[i + 1] - ix[i]});
}

}  // namespace

absl::StatusOr<std::shared_ptr<const SpecPlan>> SpecPlan::Compile(MetricSpecSet spec) {
  auto plan = std::shared_ptr<SpecPlan>(new SpecPlan());
  std::vector<std::string> errors;
  for (const InputSpec& in : spec.inputs) {
    InputPlan ip;
    ip.levels.emplace_back();
    for (size_t f = 0; f < in.fields.size(); ++f) {
      const FieldSpec& field = in.fields[f];
      size_t level = 0;
      for (size_t s = 0; s < field.path.size(); ++s) {
        const bool last = s + 1 == field.path.size();
        Level& l = ip.levels[level];
        const auto it = std::find(l.keys.begin(), l.keys.end(), field.path[s]);
        if (it == l.keys.end()) {
          l.keys.push_back(field.path[s]);
          if (last) {
            l.targets.push_back(static_cast<int32_t>(f));
          } else {
            l.targets.push_back(-static_cast<int32_t>(ip.levels.size()) - 1);
            level = ip.levels.size();
            ip.levels.emplace_back();  // invalidates `l`
          }
          continue;
        }
        const int32_t target = l.targets[it - l.keys.begin()];
        if (last || target >= 0) {
          errors.push_back(Cat(Where(spec, field.pos), ": inputs.", in.name, ".fields.", field.name,
                               ": its path '", absl::StrJoin(field.path, "."),
                               "' meets another field's (one path, one field)"));
          break;
        }
        level = static_cast<size_t>(-target - 1);
      }
    }
    for (Level& l : ip.levels) IndexKeys(&l);
    ip.lazy = LazyFields(spec, static_cast<size_t>(&in - spec.inputs.data()));
    for (uint32_t f = 0; f < in.fields.size(); ++f) {
      const FieldSpec& field = in.fields[f];
      if (!field.transforms.empty() && !ip.lazy[f]) ip.eager_transforms.push_back(f);
      if (field.fallback >= 0 || field.has_default) ip.fallbacks.push_back(f);
      if (field.required) ip.required.push_back(f);
      if (!field.values.empty()) ip.with_values.push_back(f);
      if (!field.required_when.always()) ip.required_when.push_back(f);
    }
    plan->inputs_.push_back(std::move(ip));
  }
  for (const MetricSpec& m : spec.metrics) {
    const InputSpec& in = spec.inputs[m.input];
    auto unsupported = [&](std::string_view what) {
      errors.push_back(
          Cat(Where(spec, m.pos), ": metrics.", m.name, ": ", what, " is not supported yet"));
    };
    for (const GaugeOp& op : m.ops) {
      if (op.kind == GaugeOp::Kind::kSet) unsupported("a gauge's set");
      if (op.value.field >= 0) unsupported("a gauge's add of a field");
      if (op.amount != std::floor(op.amount)) unsupported("a gauge's fractional add");
    }
    if (m.kind == MetricKind::kGauge && m.floor != 0.0) {
      unsupported("a gauge without floor: 0");
    }
    if (m.kind == MetricKind::kCounter && m.value.field >= 0 &&
        in.fields[m.value.field].type != FieldType::kInt) {
      unsupported("a counter incremented by a non-integer field");
    }
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
  auto compile = [](const InputSpec& in, Condition* c) {
    CompileCodes(in, c);
    CompileFlat(c);
  };
  for (InputSpec& in : spec.inputs) {
    for (FieldSpec& f : in.fields) compile(in, &f.required_when);
  }
  for (MetricSpec& m : spec.metrics) {
    const InputSpec& in = spec.inputs[m.input];
    compile(in, &m.when);
    for (GaugeOp& op : m.ops) compile(in, &op.when);
  }
  plan->detect_ = CompileDetect(spec);
  plan->spec_ = std::move(spec);
  return std::shared_ptr<const SpecPlan>(std::move(plan));
}

SpecDecoder::SpecDecoder(const SpecPlan& plan, size_t max_record_bytes, size_t index_window_bytes)
    : plan_(plan), max_record_bytes_(max_record_bytes), index_(index_window_bytes) {
  size_t fields = 0;
  for (const InputSpec& in : plan.spec().inputs) fields = std::max(fields, in.fields.size());
  values_.resize(fields);
  seen_.resize(fields);
  transformed_.resize(fields);
  scratch_.resize(fields);
  // Allocation failure here leaves the parser to allocate on first use.
  (void)parser_.allocate(max_record_bytes_, kMaxJsonDepth);
}

std::optional<RejectReason> SpecDecoder::Decode(size_t input, std::string_view record) {
  if (record.size() > max_record_bytes_) return RejectReason::kOversize;
  padded_.assign(record);
  padded_.append(simdjson::SIMDJSON_PADDING, ' ');
  return Decode(input, padded_.data(), record.size(), padded_.size());
}

std::optional<RejectReason> SpecDecoder::Decode(size_t input, const char* data, size_t len,
                                                size_t capacity) noexcept {
  if (len > max_record_bytes_) return RejectReason::kOversize;
  if (capacity < len + simdjson::SIMDJSON_PADDING) {
    padded_.assign(data, len);
    padded_.append(simdjson::SIMDJSON_PADDING, ' ');
    data = padded_.data();
    capacity = padded_.size();
  }
  const InputSpec& in = plan_.spec().inputs[input];
  Clear(in);
  if (auto error = parser_.iterate(data, len, capacity).get(doc_)) return json::FromError(error);
  simdjson::ondemand::object root;
  if (auto error = doc_.get_object().get(root)) {
    // The type is read from the first character only: a valid non-object
    // is not_object, anything else malformed.
    simdjson::ondemand::json_type type;
    if (auto type_error = doc_.type().get(type)) return json::FromError(type_error);
    if (type == simdjson::ondemand::json_type::object) return json::FromError(error);
    simdjson::dom::parser dom;
    simdjson::dom::element element;
    if (auto dom_error = dom.parse(data, len, /*realloc_if_needed=*/false).get(element)) {
      return json::FromError(dom_error);
    }
    return RejectReason::kNotObject;
  }
  const bool escapes = std::memchr(data, '\\', len) != nullptr;
  if (auto reject = Walk(in, plan_.input(input), 0, root, 2, escapes)) return reject;
  const char* location;
  if (doc_.current_location().get(location) != simdjson::OUT_OF_BOUNDS) {
    return RejectReason::kMalformedJson;
  }
  return Finish(in);
}

void SpecDecoder::Clear(const InputSpec& in) noexcept {
  std::fill_n(values_.begin(), in.fields.size(), FieldValue{});
  std::fill_n(seen_.begin(), in.fields.size(), 0);
  std::fill_n(transformed_.begin(), in.fields.size(), 0);
}

bool SpecDecoder::Next(int input, size_t begin, size_t end, int* decoded_as) noexcept {
  uint32_t first;
  if (end - begin > max_record_bytes_ || !index_.Line(begin, &first)) return false;
  line_escapes_ = index_.Escapes(begin, end);
  if (line_escapes_ && !FindEscapes(begin, end)) return false;
  if (input < 0 && (input = DetectIndexed(first)) < 0) return false;
  const InputSpec& in = plan_.spec().inputs[input];
  Clear(in);
  uint32_t t = first;
  if (!WalkIndexed(in, plan_.input(input), 0, &t, 2) || !index_.EndsLine(t - 1, end) ||
      Finish(in)) {
    return false;
  }
  index_.Advance(t);
  *decoded_as = input;
  ++streamed_;
  return true;
}

bool SpecDecoder::WalkIndexed(const InputSpec& in, const SpecPlan::InputPlan& plan, int level,
                              uint32_t* t, size_t depth) noexcept {
  const char* const w = index_.window();
  const uint32_t* const ix = index_.index();
  const uint32_t count = index_.count();
  const SpecPlan::Level& l = plan.levels[level];
  uint32_t i = *t + 1;  // past the '{'
  if (i < count && w[ix[i]] == '}') {
    *t = i + 1;
    return true;
  }
  for (;;) {
    // A key, ':', a value, and what follows it.
    if (i + 3 >= count || w[ix[i]] != '"' || w[ix[i + 1]] != ':' || Escaped(i)) {
      return false;  // an escaped key might read as one the spec names
    }
    const int match = Match(l, w + ix[i] + 1);
    uint32_t v = i + 2;
    const char first = w[ix[v]];
    if (first == '{' || first == '[') {
      if (match < 0) {
        if (!SkipIndexed(&v, depth)) return false;
      } else if (l.targets[match] >= 0 || first != '{' || depth >= kMaxJsonDepth ||
                 !WalkIndexed(in, plan, -l.targets[match] - 1, &v, depth + 1)) {
        return false;  // a field's value is never a container
      }
      i = v;
    } else {
      const std::string_view token = Token(w, ix, v);
      if (match < 0) {
        if (first != '"' && !json::detail::IsValidToken(token)) return false;
      } else if (const int32_t target = l.targets[match]; target < 0) {
        if (token != "null") return false;  // an object's key holding a scalar
      } else {
        if (seen_[target]) return false;
        seen_[target] = 1;
        const FieldSpec& f = in.fields[target];
        if (!Escaped(v)) {
          if (!ReadToken(f, token, &values_[target])) return false;
        } else {
          // Only strings hold escapes; one that is not a string field's is
          // left to Read.
          if (f.type != FieldType::kString || first != '"') return false;
          Unescape(token.substr(1, token.size() - 2), &scratch_[target]);
          if (!ReadText(f, scratch_[target], &values_[target])) return false;
        }
      }
      i = v + 1;
    }
    if (i >= count) return false;
    const char separator = w[ix[i++]];
    if (separator == '}') {
      *t = i;
      return true;
    }
    if (separator != ',') return false;
  }
}

bool SpecDecoder::SkipIndexed(uint32_t* t, size_t depth) const noexcept {
  const char* const w = index_.window();
  const uint32_t* const ix = index_.index();
  const uint32_t count = index_.count();
  char closers[kMaxJsonDepth];
  size_t open = 0;
  enum class Want : uint8_t { kValue, kKey, kNext } want = Want::kValue;
  for (uint32_t i = *t; i < count;) {
    const char c = w[ix[i]];
    switch (want) {
      case Want::kValue:
        if (c == '{' || c == '[') {
          if (depth + open >= kMaxJsonDepth) return false;
          closers[open++] = c == '{' ? '}' : ']';
          ++i;
          want = c == '{' ? Want::kKey : Want::kValue;
          if (i < count && w[ix[i]] == closers[open - 1]) {  // empty
            --open;
            ++i;
            want = Want::kNext;
          }
          break;
        }
        if (i + 1 >= count || (c != '"' && !json::detail::IsValidToken(Token(w, ix, i)))) {
          return false;
        }
        ++i;
        want = Want::kNext;
        break;
      case Want::kKey:
        if (c != '"' || i + 1 >= count || w[ix[i + 1]] != ':') return false;
        i += 2;
        want = Want::kValue;
        break;
      case Want::kNext:
        if (open == 0) {
          *t = i;
          return true;
        }
        if (c == ',') {
          want = closers[open - 1] == '}' ? Want::kKey : Want::kValue;
        } else if (c == closers[open - 1]) {
          --open;
        } else {
          return false;
        }
        ++i;
        break;
    }
  }
  return false;
}

bool SpecDecoder::FindEscapes(size_t begin, size_t end) noexcept {
  // Outside strings a backslash is no JSON at all, and the walk rejects the
  // record; inside them, every escape is checked here once.
  escapes_.clear();
  const char* const w = index_.window();
  const char* const block = index_.block();
  const char* p = block + begin;
  const char* const stop = block + end;
  while ((p = static_cast<const char*>(std::memchr(p, '\\', static_cast<size_t>(stop - p))))) {
    const size_t length = EscapeLength(p, static_cast<size_t>(stop - p), nullptr);
    if (length == 0) return false;
    escapes_.push_back(static_cast<uint32_t>(p - w));
    p += length;
  }
  return true;
}

bool SpecDecoder::Escaped(uint32_t i) const noexcept {
  if (!line_escapes_) return false;
  const uint32_t* const ix = index_.index();
  const auto it = std::lower_bound(escapes_.begin(), escapes_.end(), ix[i]);
  return it != escapes_.end() && *it < ix[i + 1];
}

int SpecDecoder::DetectIndexed(uint32_t first) const noexcept {
  const std::vector<InputSpec>& inputs = plan_.spec().inputs;
  if (inputs.size() == 1) return 0;
  const SpecPlan::DetectPlan& d = plan_.detect();
  if (!d.usable) return -1;
  const char* const w = index_.window();
  const uint32_t* const ix = index_.index();
  const uint32_t count = index_.count();
  // Top-level keys only: a string at nesting 1 followed by ':'. The walk
  // after this checks the record's grammar.
  uint64_t seen = 0;
  size_t nesting = 0;
  for (uint32_t i = first; i < count; ++i) {
    const char c = w[ix[i]];
    if (c == '{' || c == '[') {
      ++nesting;
    } else if (c == '}' || c == ']') {
      if (--nesting == 0) break;
    } else if (nesting == 1 && c == '"' && i + 1 < count && w[ix[i + 1]] == ':') {
      if (Escaped(i)) return -1;
      const int k = Match(d.keys, w + ix[i] + 1);
      if (k >= 0) seen |= uint64_t{1} << d.keys.targets[k];
    }
  }
  for (size_t n = 0; n < inputs.size(); ++n) {
    if (d.all[n] != 0 && (seen & d.all[n]) == d.all[n]) return static_cast<int>(n);
  }
  for (size_t n = 0; n < inputs.size(); ++n) {
    if ((seen & d.any[n]) != 0) return static_cast<int>(n);
  }
  return -1;
}

std::optional<RejectReason> SpecDecoder::Walk(const InputSpec& in, const SpecPlan::InputPlan& plan,
                                              int level, simdjson::ondemand::object& object,
                                              size_t depth, bool escapes) noexcept {
  const json::Reader r(escapes);
  const SpecPlan::Level& l = plan.levels[level];
  for (auto field_result : object) {
    simdjson::ondemand::field field;
    if (auto error = std::move(field_result).get(field)) return json::FromError(error);
    const char* raw = field.key().raw();
    int match = Match(l, raw);
    if (match < 0 && escapes) {
      const std::string_view unescaped = json::UnescapedIfEscaped(field, raw);
      if (!unescaped.empty()) {
        const auto it = std::find(l.keys.begin(), l.keys.end(), unescaped);
        if (it != l.keys.end()) match = static_cast<int>(it - l.keys.begin());
      }
    }
    json::Value& v = field.value();
    if (match < 0) {
      if (auto reject = r.ValidateSkipped(v, depth)) return reject;
      continue;
    }
    const int32_t target = l.targets[match];
    if (target < 0) {
      if (json::IsNull(v)) continue;
      if (depth >= kMaxJsonDepth) return RejectReason::kTooDeep;
      simdjson::ondemand::object child;
      if (auto error = v.get_object().get(child)) {
        return error == simdjson::INCORRECT_TYPE ? json::detail::Mismatch(v)
                                                 : json::FromError(error);
      }
      if (auto reject = Walk(in, plan, -target - 1, child, depth + 1, escapes)) return reject;
      continue;
    }
    if (seen_[target]) return RejectReason::kDuplicateField;
    seen_[target] = 1;
    if (auto reject = Read(in.fields[target], v, escapes, &values_[target])) return reject;
  }
  return std::nullopt;
}

// The rest of a key of 16 bytes or more, past its first 16 (see Match).
[[gnu::noinline]] static bool LongKeyTail(const std::string& key, const char* raw) noexcept {
  // The raw key must close exactly where it does (memchr stops at the first
  // quote, so nothing past the raw key is read) before the rest is compared.
  const size_t len = key.size();
  return std::memchr(raw + 16, '"', len - 15) == raw + len &&
         std::memcmp(raw + 16, key.data() + 16, len - 16) == 0;
}

[[gnu::always_inline]] inline int SpecDecoder::Match(const SpecPlan::Level& l,
                                                     const char* raw) noexcept {
  // The input is padded, so 16 bytes from any key are readable; a key's
  // closing quote is in its words when it is shorter than 16 bytes.
  uint64_t word[2];
  std::memcpy(word, raw, sizeof(word));
  for (int32_t k = l.by_first[static_cast<uint8_t>(raw[0])]; k >= 0; k = l.words[k].next) {
    const SpecPlan::Level::Words& w = l.words[k];
    if (((word[0] & w.mask[0]) ^ w.prefix[0]) | ((word[1] & w.mask[1]) ^ w.prefix[1])) continue;
    if (w.len < 16 || LongKeyTail(l.keys[k], raw)) return k;
  }
  return -1;
}

std::optional<RejectReason> SpecDecoder::Read(const FieldSpec& f, simdjson::ondemand::value& v,
                                              bool escapes, FieldValue* out) noexcept {
  const json::Reader r(escapes);
  if (json::IsNull(v)) {  // absent, unless the field says otherwise
    return f.nullable ? std::nullopt : std::optional<RejectReason>(RejectReason::kWrongType);
  }
  switch (f.type) {
    case FieldType::kString: {
      bool is_null;
      if (auto reject = r.ReadStringFast(v, &out->text, &is_null)) return reject;
      out->present = !out->text.empty();
      // A value the transforms will reshape is checked for size after them.
      if (f.transforms.empty() && out->text.size() > f.max_bytes) return RejectReason::kOversize;
      return std::nullopt;
    }
    case FieldType::kNumber:
    case FieldType::kInt: {
      if (f.type == FieldType::kInt) {
        int64_t n = 0;
        if (auto reject = r.ReadInt(v, &n)) return reject;
        out->number = static_cast<double>(n);
      } else if (auto reject = r.ReadDouble(v, &out->number)) {
        return reject;
      }
      if (!SetNumber(f, out->number, out)) return RejectReason::kOutOfRange;
      return std::nullopt;
    }
    case FieldType::kBool: {
      bool b = false;
      if (v.get_bool().get(b)) return json::detail::Mismatch(v);
      out->number = b ? 1 : 0;
      out->present = true;
      return std::nullopt;
    }
    case FieldType::kTime:
      break;
  }
  if (f.time_format == TimeFormat::kAuto) {
    if (auto reject = r.ReadTimestamp(v, &out->time_us)) return reject;
    out->present = true;
    return std::nullopt;
  }
  if (f.time_format == TimeFormat::kRfc3339) {
    std::string_view text;
    if (auto reject = r.ReadString(v, &text)) return reject;
    if (!ParseRfc3339(text, &out->time_us)) return RejectReason::kBadTimestamp;
    out->present = true;
    return std::nullopt;
  }
  double n = 0;
  if (auto reject = r.ReadDouble(v, &n)) {
    return *reject == RejectReason::kOutOfRange ? RejectReason::kBadTimestamp : *reject;
  }
  if (!SetEpoch(f, n, out)) return RejectReason::kBadTimestamp;
  return std::nullopt;
}

void SpecDecoder::Transform(const FieldSpec& f, size_t index, FieldValue* v) {
  std::string& s = scratch_[index];
  for (const spec::Transform& t : f.transforms) {
    if (!v->present) return;
    switch (t.kind) {
      case Transform::Kind::kLowercase:
        if (v->text.data() != s.data()) s.assign(v->text);
        absl::AsciiStrToLower(&s);
        break;
      case Transform::Kind::kNormalizePath:
        // v->text may point into s: write elsewhere, then swap.
        NormaliseRoute(v->text, &tmp_);
        s.swap(tmp_);
        break;
      case Transform::Kind::kMap: {
        const auto it = std::find_if(t.map.begin(), t.map.end(),
                                     [&](const auto& kv) { return kv.first == v->text; });
        if (it == t.map.end()) continue;
        s.assign(it->second);
        break;
      }
      case Transform::Kind::kReplace:
        if (v->text.data() != s.data()) s.assign(v->text);
        re2::RE2::GlobalReplace(&s, *t.regex, t.replacement);
        break;
      case Transform::Kind::kExtract: {
        re2::StringPiece group;
        if (!re2::RE2::PartialMatch(re2::StringPiece(v->text.data(), v->text.size()), *t.regex,
                                    &group)) {
          v->present = false;
          return;
        }
        tmp_.assign(group.data(), group.size());
        s.swap(tmp_);
        break;
      }
    }
    v->text = s;
    v->present = !s.empty();
  }
}

std::optional<RejectReason> SpecDecoder::Finish(const InputSpec& in) noexcept {
  const size_t n = in.fields.size();
  const SpecPlan::InputPlan& plan = plan_.input(&in - plan_.spec().inputs.data());
  for (const uint32_t i : plan.eager_transforms) {
    FieldValue& v = values_[i];
    if (!v.present) continue;
    Transform(in.fields[i], i, &v);
    if (v.present && v.text.size() > in.fields[i].max_bytes) return RejectReason::kOversize;
  }
  for (const uint32_t i : plan.fallbacks) {
    const FieldSpec& f = in.fields[i];
    FieldValue& v = values_[i];
    // A chain of fallbacks is followed to its end, whatever the fields' order.
    for (int next = f.fallback, hops = 0; !v.present && next >= 0 && hops < static_cast<int>(n);
         next = in.fields[next].fallback, ++hops) {
      if (plan.lazy[next] && values_[next].present && !transformed_[next]) {
        transformed_[next] = 1;
        Transform(in.fields[next], next, &values_[next]);
        if (values_[next].present && values_[next].text.size() > in.fields[next].max_bytes) {
          return RejectReason::kOversize;
        }
      }
      if (values_[next].present) {
        v = values_[next];
        v.code = -1;  // its own `values` list (if any) gives the code, below
      }
    }
    if (!v.present && f.has_default) {
      v.present = true;
      v.text = f.default_text;
      v.number = f.default_number;  // given in the field's final unit
      v.raw = f.default_number / f.scale;
    }
  }
  for (const uint32_t i : plan.required) {
    if (!values_[i].present) return RejectReason::kMissingField;
  }
  for (const uint32_t i : plan.with_values) {
    const FieldSpec& f = in.fields[i];
    FieldValue& v = values_[i];
    if (!v.present) continue;
    const auto it = std::find(f.values.begin(), f.values.end(), v.text);
    if (it != f.values.end()) {
      v.code = static_cast<int32_t>(it - f.values.begin());
      continue;
    }
    if (!f.other_value) return f.reject_reason;
    v.text = *f.other_value;
    v.code = static_cast<int32_t>(std::find(f.values.begin(), f.values.end(), v.text) -
                                  f.values.begin());
  }
  for (const uint32_t i : plan.required_when) {
    if (!values_[i].present && Holds(in.fields[i].required_when, values_, in)) {
      return RejectReason::kMissingField;
    }
  }
  return std::nullopt;
}

int SpecDecoder::Detect(const char* data, size_t len, size_t capacity) noexcept {
  // An oversize record is told too: it is rejected as oversize under its
  // input, as the compiled-in NovaGift path does.
  if (capacity < len + simdjson::SIMDJSON_PADDING) {
    padded_.assign(data, len);
    padded_.append(simdjson::SIMDJSON_PADDING, ' ');
    data = padded_.data();
    capacity = padded_.size();
  }
  const std::vector<InputSpec>& inputs = plan_.spec().inputs;
  if (inputs.size() == 1) return 0;
  auto scan = [&]() -> int {
    const std::string_view record(data, len);
    for (size_t i = 0; i < inputs.size(); ++i) {
      for (const std::string& key : inputs[i].detect.text) {
        if (record.find(Cat("\"", key, "\"")) != std::string_view::npos) return static_cast<int>(i);
      }
    }
    return -1;
  };
  simdjson::ondemand::object root;
  if (parser_.iterate(data, len, capacity).get(doc_) || doc_.get_object().get(root)) return scan();
  // Top-level keys only; each input's `all` first, then its `any`.
  std::vector<std::string_view> keys;
  for (auto field_result : root) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return scan();
    keys.push_back(key);  // valid until the next parse
  }
  auto has = [&](const std::string& k) {
    return std::find(keys.begin(), keys.end(), k) != keys.end();
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    const DetectSpec& d = inputs[i].detect;
    if (!d.all.empty() && std::all_of(d.all.begin(), d.all.end(), has)) return static_cast<int>(i);
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const DetectSpec& d = inputs[i].detect;
    if (std::any_of(d.any.begin(), d.any.end(), has)) return static_cast<int>(i);
  }
  return -1;
}

bool Holds(const Condition& c, const std::vector<FieldValue>& values,
           const InputSpec& input) noexcept {
  if (c.flat) {
    for (const int f : c.flat_present) {
      if (!values[f].present) return false;
    }
    for (const Condition::CodeTest& t : c.flat_codes) {
      const FieldValue& v = values[t.field];
      if (!v.present || v.code < 0 || v.code >= 64 || ((t.codes >> v.code) & 1) == 0) return false;
    }
    return true;
  }
  switch (c.op) {
    case Condition::Op::kTrue:
      return true;
    case Condition::Op::kAnd:
      for (const Condition& child : c.children) {
        if (!Holds(child, values, input)) return false;
      }
      return true;
    case Condition::Op::kOr:
      for (const Condition& child : c.children) {
        if (Holds(child, values, input)) return true;
      }
      return false;
    case Condition::Op::kNot:
      return !Holds(c.children[0], values, input);
    case Condition::Op::kExists:
      return values[c.field].present;
    default:
      break;
  }
  const FieldValue& v = values[c.field];
  if (!v.present) return false;
  if (c.by_code) return v.code >= 0 && v.code < 64 && ((c.codes >> v.code) & 1) != 0;
  const bool is_string = input.fields[c.field].type == FieldType::kString;
  switch (c.op) {
    case Condition::Op::kMatch:
      return re2::RE2::FullMatch(v.text, *c.regex);
    case Condition::Op::kNotMatch:
      return !re2::RE2::FullMatch(v.text, *c.regex);
    case Condition::Op::kIn:
    case Condition::Op::kNotIn: {
      bool found = false;
      for (const Literal& l : c.literals) {
        found = found || (is_string ? v.text == l.text : v.number == l.number);
      }
      return found == (c.op == Condition::Op::kIn);
    }
    default:
      if (is_string) {
        return c.op == Condition::Op::kEq ? v.text == c.literals[0].text
                                          : v.text != c.literals[0].text;
      }
      return Compare(v.number, c.op, c.literals[0].number);
  }
}

}  // namespace novapulse::spec
