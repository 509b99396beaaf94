#include "pipeline/kafka_source.h"

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/kafka_conf.h"
#include "base/log.h"

namespace novapulse {
namespace {

constexpr int kStopCheckMs = 100;

std::string PartitionList(const rd_kafka_topic_partition_list_t* partitions) {
  std::string out;
  for (int i = 0; i < partitions->cnt; ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, partitions->elems[i].topic, "/", partitions->elems[i].partition);
  }
  return out;
}

}  // namespace

const std::vector<MetricDef>& KafkaMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_KAFKA_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

void KafkaBatch::Clear() {
  used = 0;
  records.clear();
  offsets.clear();
  ends.clear();
}

std::vector<std::string> KafkaTopicsOf(const KafkaConfig& config) {
  return {config.topics.access_log, config.topics.outbox};
}

absl::StatusOr<std::unique_ptr<KafkaSource>> KafkaSource::Build(const KafkaConfig& config,
                                                                bool checkpointed,
                                                                std::vector<std::string> topics) {
  if (config.brokers.empty()) return absl::InvalidArgumentError("kafka.brokers is empty");
  if (topics.empty()) topics = KafkaTopicsOf(config);
  // Defaults first, so properties override them: a partition that has no
  // committed offset is read from its start, not from the next message
  // produced (librdkafka's default), which loses what came before a new
  // group's first assignment or to a partition that had nothing committed.
  KafkaSettings settings = {{"auto.offset.reset", "earliest"}};
  settings.insert(settings.end(), config.properties.begin(), config.properties.end());
  // Explicit settings last, so properties cannot turn at-least-once off.
  settings.emplace_back("bootstrap.servers", config.brokers);
  settings.emplace_back("group.id", config.group_id);
  settings.emplace_back("enable.auto.offset.store", "false");
  // KafkaSource commits by itself, one commit at a time (see StartCommit).
  settings.emplace_back("enable.auto.commit", "false");
  settings.emplace_back("partition.assignment.strategy", "cooperative-sticky");
  // The end-of-partition events carry the position of partitions that have
  // nothing to consume, which the consumer lag needs.
  settings.emplace_back("enable.partition.eof", "true");
  // Broker and coordinator states for Reachable().
  settings.emplace_back("statistics.interval.ms", absl::StrCat(kStatisticsIntervalMs));
  absl::StatusOr<rd_kafka_conf_t*> made = MakeKafkaConf(settings);
  if (!made.ok()) return made.status();
  rd_kafka_conf_t* conf = *made;
  rd_kafka_conf_set_error_cb(conf, OnError);
  rd_kafka_conf_set_rebalance_cb(conf, OnRebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, OnCommit);
  rd_kafka_conf_set_stats_cb(conf, OnStatistics);
  // The rebalance callback gets the KafkaSource as its opaque, so the
  // source exists before its handle.
  std::unique_ptr<KafkaSource> source(new KafkaSource(config, std::move(topics)));
  source->checkpointed_ = checkpointed;
  rd_kafka_conf_set_opaque(conf, source.get());
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(absl::StrCat("creating the Kafka consumer: ", err));
  }
  source->rk_ = rk;
  source->commit_answers_ = rd_kafka_queue_new(rk);
  rd_kafka_poll_set_consumer(rk);

  rd_kafka_topic_partition_list_t* subscription =
      rd_kafka_topic_partition_list_new(static_cast<int>(source->topics_.size()));
  for (const std::string& topic : source->topics_) {
    rd_kafka_topic_partition_list_add(subscription, topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  const rd_kafka_resp_err_t subscribed = rd_kafka_subscribe(rk, subscription);
  rd_kafka_topic_partition_list_destroy(subscription);
  if (subscribed != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("subscribing to ",
                                               absl::StrJoin(source->topics_, ","), ": ",
                                               rd_kafka_err2str(subscribed)));
  }
  Log(LogLevel::kInfo, "kafka consumer started",
      {{"brokers", config.brokers},
       {"group", config.group_id},
       {"topics", absl::StrJoin(source->topics_, ",")}});
  return source;
}

KafkaSource::KafkaSource(const KafkaConfig& config, std::vector<std::string> topics)
    : topics_(std::move(topics)),
      max_message_bytes_(static_cast<size_t>(config.max_message_bytes)),
      batch_size_(static_cast<size_t>(std::max<int64_t>(1, config.batch_size))),
      batch_timeout_(config.batch_timeout),
      commit_interval_(config.commit_interval),
      next_commit_(absl::Now() + config.commit_interval) {}

KafkaSource::~KafkaSource() {
  if (rk_ == nullptr) return;
  if (!closed_) {
    if (absl::Status status = Close(); !status.ok()) {
      Log(LogLevel::kWarn, "closing the kafka consumer", {{"error", status.ToString()}});
    }
  }
  // librdkafka's handle cannot be destroyed while a queue of it remains.
  rd_kafka_queue_destroy(commit_answers_);
  // After an abandoned close, destroying must not try to close again.
  rd_kafka_destroy_flags(rk_, abandoned_ ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
}

void KafkaSource::OnCommit(rd_kafka_t* /*rk*/, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* /*offsets*/, void* opaque) {
  auto* source = static_cast<KafkaSource*>(opaque);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    source->commits_ok_.fetch_add(1, std::memory_order_relaxed);
  } else if (err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    source->commits_failed_.fetch_add(1, std::memory_order_relaxed);
  }
}

void KafkaSource::OnError(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    static_cast<KafkaSource*>(opaque)->RecordFatalError();
    return;
  }
  Log(LogLevel::kWarn, "kafka error",
      {{"error", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))}, {"reason", reason}});
}

void KafkaSource::RecordFatalError() {
  if (fatal_.load(std::memory_order_relaxed)) return;
  char text[512];
  const rd_kafka_resp_err_t cause = rd_kafka_fatal_error(rk_, text, sizeof(text));
  {
    absl::MutexLock lock(&mu_);
    fatal_error_ = absl::StrCat(rd_kafka_err2name(cause), ": ", text);
    Log(LogLevel::kError, "kafka consumer failed for good", {{"error", fatal_error_}});
  }
  fatal_.store(true, std::memory_order_relaxed);
}

int KafkaSource::OnStatistics(rd_kafka_t* /*rk*/, char* json, size_t json_len, void* opaque) {
  auto* source = static_cast<KafkaSource*>(opaque);
  // A few KiB a second: copied into padding the parser can read.
  const simdjson::padded_string stats(json, json_len);
  simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  std::string unreachable;
  int brokers_up = 0;
  std::string_view group_state;
  bool parsed = parser.iterate(stats).get(doc) == simdjson::SUCCESS;
  if (parsed) {
    simdjson::ondemand::object brokers;
    if (doc["brokers"].get_object().get(brokers) == simdjson::SUCCESS) {
      for (auto field : brokers) {
        simdjson::ondemand::object broker;
        if (field.value().get_object().get(broker) != simdjson::SUCCESS) {
          parsed = false;
          break;
        }
        int64_t node = -1;
        std::string_view state;
        // Fields in librdkafka's order: nodeid before state.
        if (broker["nodeid"].get_int64().get(node) != simdjson::SUCCESS ||
            broker["state"].get_string().get(state) != simdjson::SUCCESS) {
          parsed = false;
          break;
        }
        // Bootstrap (-1) and logical brokers stand for no real connection.
        if (node >= 0 && state == "UP") ++brokers_up;
      }
    } else {
      parsed = false;
    }
    simdjson::ondemand::object group;
    if (parsed && doc["cgrp"].get_object().get(group) == simdjson::SUCCESS) {
      std::string_view state;
      if (group["state"].get_string().get(state) == simdjson::SUCCESS) group_state = state;
    }
  }
  if (!parsed) {
    Log(LogLevel::kDebug, "kafka statistics not understood");
    return 0;
  }
  if (brokers_up == 0) {
    unreachable = "no kafka broker reachable";
  } else if (!group_state.empty() && group_state != "up") {
    unreachable =
        absl::StrCat("kafka group coordinator not reachable (", std::string(group_state), ")");
  }
  absl::MutexLock lock(&source->mu_);
  if (unreachable.empty() && !source->unreachable_.empty()) {
    Log(LogLevel::kInfo, "kafka reachable");
  } else if (!unreachable.empty() && unreachable != source->unreachable_) {
    Log(LogLevel::kWarn, "kafka not reachable", {{"reason", unreachable}});
  }
  source->unreachable_ = std::move(unreachable);
  return 0;  // librdkafka frees `json`
}

bool KafkaSource::Reachable(std::string* reason) const {
  absl::MutexLock lock(&mu_);
  if (unreachable_.empty()) return true;
  *reason = unreachable_;
  return false;
}

std::string KafkaSource::fatal_error() const {
  if (!fatal_.load(std::memory_order_relaxed)) return "";
  absl::MutexLock lock(&mu_);
  return fatal_error_;
}

void KafkaSource::OnRebalance(rd_kafka_t* /*rk*/, rd_kafka_resp_err_t err,
                              rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  static_cast<KafkaSource*>(opaque)->Rebalance(err, partitions);
}

void KafkaSource::Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions) {
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk_)) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    Log(LogLevel::kInfo, "partitions assigned",
        {{"partitions", PartitionList(partitions)}, {"cooperative", cooperative ? "1" : "0"}});
    if (checkpointed_) StartFromCheckpoint(partitions);
    if (cooperative) {
      if (rd_kafka_error_t* error = rd_kafka_incremental_assign(rk_, partitions)) {
        Log(LogLevel::kError, "incremental assign failed",
            {{"error", rd_kafka_error_string(error)}});
        rd_kafka_error_destroy(error);
      }
    } else if (rd_kafka_resp_err_t e = rd_kafka_assign(rk_, partitions)) {
      Log(LogLevel::kError, "assign failed", {{"error", rd_kafka_err2str(e)}});
    }
    NotifyAssignment(partitions, /*assigned=*/true);
  } else {
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
      Log(LogLevel::kError, "rebalance failed", {{"error", rd_kafka_err2str(err)}});
    }
    // Lost: the group gave the partitions to others already (the session
    // timed out while no broker answered, or the consumer was fenced), so
    // a commit would be refused, after waiting for a coordinator that may
    // be gone.
    const bool lost = rd_kafka_assignment_lost(rk_) != 0;
    Log(lost ? LogLevel::kWarn : LogLevel::kInfo, lost ? "partitions lost" : "partitions revoked",
        {{"partitions", PartitionList(partitions)}, {"cooperative", cooperative ? "1" : "0"}});
    // Messages of these partitions not handed out yet are left to their
    // next owner.
    if (filling_ != nullptr) DropPartitions(partitions, filling_);
    // What was aggregated from these partitions must be committed before
    // another member starts reading them.
    if (checkpointed_) {
      if (on_revoke_) on_revoke_(lost);
    } else if (!lost) {
      CommitSync("revoke");
    }
    NotifyAssignment(partitions, /*assigned=*/false);
    {
      absl::MutexLock lock(&mu_);
      for (int i = 0; i < partitions->cnt; ++i) {
        const PartitionKey key{InputOf(partitions->elems[i].topic), partitions->elems[i].partition};
        positions_.erase(key);
        // The state still holds what was counted of the partition: if it
        // comes back (after an outage, most often), it resumes there, not
        // at an older commit.
        if (auto it = processed_.find(key); it != processed_.end()) {
          int64_t& held = held_[key];
          held = std::max(held, it->second);
          processed_.erase(it);
        }
      }
    }
    if (cooperative) {
      if (rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk_, partitions)) {
        Log(LogLevel::kError, "incremental unassign failed",
            {{"error", rd_kafka_error_string(error)}});
        rd_kafka_error_destroy(error);
      }
    } else if (rd_kafka_resp_err_t e = rd_kafka_assign(rk_, nullptr)) {
      Log(LogLevel::kError, "unassign failed", {{"error", rd_kafka_err2str(e)}});
    }
  }
  UpdateAssigned();
}

void KafkaSource::NotifyAssignment(const rd_kafka_topic_partition_list_t* partitions,
                                   bool assigned) {
  if (!on_assignment_) return;
  for (int i = 0; i < partitions->cnt; ++i) {
    on_assignment_(InputOf(partitions->elems[i].topic), partitions->elems[i].partition, assigned);
  }
}

void KafkaSource::UpdateAssigned() {
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(rk_, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    assigned_.store(assignment->cnt, std::memory_order_relaxed);
    rd_kafka_topic_partition_list_destroy(assignment);
  }
}

bool KafkaSource::AwaitCommit(absl::Time deadline) {
  while (commits_in_flight_ > 0) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    rd_kafka_event_t* event = rd_kafka_queue_poll(
        commit_answers_, static_cast<int>(std::clamp<int64_t>(left_ms, 0, kStopCheckMs)));
    if (event == nullptr) {
      if (absl::Now() >= deadline) return false;
      continue;
    }
    if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
      --commits_in_flight_;
      const rd_kafka_resp_err_t err = rd_kafka_event_error(event);
      last_commit_error_ = err;
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        Log(LogLevel::kWarn, "offset commit failed", {{"error", rd_kafka_err2str(err)}});
      }
    }
    rd_kafka_event_destroy(event);
  }
  return true;
}

bool KafkaSource::StartCommit(const rd_kafka_topic_partition_list_t* offsets,
                              bool even_if_in_flight) {
  if (!AwaitCommit(absl::InfinitePast()) && !even_if_in_flight) return false;
  const rd_kafka_resp_err_t err =
      rd_kafka_commit_queue(rk_, offsets, commit_answers_, /*cb=*/nullptr, /*opaque=*/nullptr);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Log(LogLevel::kWarn, "offset commit not started", {{"error", rd_kafka_err2str(err)}});
    return false;
  }
  ++commits_in_flight_;
  return true;
}

void KafkaSource::CommitOnInterval() {
  if (checkpointed_) return;
  const absl::Time now = absl::Now();
  // While the previous commit is unanswered, the next waits for it and then
  // starts at once.
  if (now < next_commit_ || !AwaitCommit(absl::InfinitePast())) return;
  next_commit_ = now + commit_interval_;
  StartCommit(nullptr);
}

void KafkaSource::CommitSync(const char* why, const rd_kafka_topic_partition_list_t* offsets) {
  if (fatal_.load(std::memory_order_relaxed)) {
    Log(LogLevel::kWarn, "offsets not committed: the consumer has failed", {{"reason", why}});
    return;
  }
  // Committing anyway never leaves the group's offsets behind where not
  // committing would: they end at these offsets, or at the earlier commit's
  // if that one is answered last.
  if (!AwaitCommit(absl::Now() + kCommitWait)) {
    Log(LogLevel::kWarn, "an earlier offset commit is still unanswered: committing anyway",
        {{"reason", why}, {"waited", absl::FormatDuration(kCommitWait)}});
  }
  if (!StartCommit(offsets, /*even_if_in_flight=*/true)) return;
  if (!AwaitCommit(absl::Now() + kCommitAnswerWait)) {
    // librdkafka sends it once a coordinator answers; until then the group
    // keeps the older offsets, so what came since may be read again.
    Log(LogLevel::kWarn, "offset commit unanswered: going on without it",
        {{"reason", why}, {"waited", absl::FormatDuration(kCommitAnswerWait)}});
  } else if (last_commit_error_ == RD_KAFKA_RESP_ERR_NO_ERROR) {
    Log(LogLevel::kInfo, "offsets committed", {{"reason", why}});
  } else if (last_commit_error_ == RD_KAFKA_RESP_ERR__NO_OFFSET) {
    Log(LogLevel::kDebug, "no new offsets to commit", {{"reason", why}});
  }
}

int KafkaSource::InputOf(const rd_kafka_message_t* message) const {
  return InputOf(rd_kafka_topic_name(message->rkt));
}

int KafkaSource::InputOf(std::string_view topic) const {
  // Only subscribed topics are assigned: a handful, compared in order.
  for (size_t i = 0; i < topics_.size(); ++i) {
    if (topics_[i] == topic) return static_cast<int>(i);
  }
  return 0;
}

void KafkaSource::DropPartitions(const rd_kafka_topic_partition_list_t* partitions,
                                 KafkaBatch* batch) const {
  auto revoked = [&](int input, int32_t partition) {
    for (int i = 0; i < partitions->cnt; ++i) {
      if (partitions->elems[i].partition == partition &&
          InputOf(partitions->elems[i].topic) == input) {
        return true;
      }
    }
    return false;
  };
  std::erase_if(batch->records,
                [&](const KafkaRecord& r) { return revoked(r.input, r.partition); });
  std::erase_if(batch->offsets,
                [&](const KafkaPartitionOffset& o) { return revoked(o.input, o.partition); });
  std::erase_if(batch->ends,
                [&](const KafkaPartitionOffset& o) { return revoked(o.input, o.partition); });
}

void KafkaSource::StartFromCheckpoint(rd_kafka_topic_partition_list_t* partitions) {
  // The committed offsets, asked once for the whole assignment: a
  // checkpoint's offset is used unless another member committed further
  // (it took the partition over meanwhile and counted those messages).
  rd_kafka_topic_partition_list_t* committed = rd_kafka_topic_partition_list_copy(partitions);
  const rd_kafka_resp_err_t err = rd_kafka_committed(rk_, committed, /*timeout_ms=*/10'000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    Log(LogLevel::kWarn, "committed offsets not known",
        {{"error", rd_kafka_err2str(err)}, {"partitions", PartitionList(partitions)}});
  }
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < partitions->cnt; ++i) {
    rd_kafka_topic_partition_t& p = partitions->elems[i];
    const PartitionKey key{InputOf(p.topic), p.partition};
    const int64_t done =
        err == RD_KAFKA_RESP_ERR_NO_ERROR && committed->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR
            ? committed->elems[i].offset
            : RD_KAFKA_OFFSET_INVALID;
    int64_t start = done;
    if (auto it = held_.find(key); it != held_.end()) {
      start = std::max(it->second, done);
      p.offset = start;
      Log(LogLevel::kInfo, "partition resumes where the state ends",
          {{"partition", absl::StrCat(p.topic, "/", p.partition)},
           {"offset", absl::StrCat(start)},
           {"state", absl::StrCat(it->second)},
           {"committed", absl::StrCat(done)}});
      held_.erase(it);
    }
    // Known from the start, so that a checkpoint taken before the partition
    // brings anything still holds its offset.
    if (start >= 0) processed_[key] = start;
  }
  rd_kafka_topic_partition_list_destroy(committed);
}

void KafkaSource::SetResumeOffsets(const std::vector<KafkaPartitionOffset>& offsets) {
  absl::MutexLock lock(&mu_);
  for (const KafkaPartitionOffset& o : offsets) held_[{o.input, o.partition}] = o.next_offset;
}

std::vector<KafkaPartitionOffset> KafkaSource::CoveredOffsets() {
  absl::MutexLock lock(&mu_);
  std::map<PartitionKey, int64_t> covered = held_;
  for (const auto& [key, next] : processed_) covered[key] = next;
  std::vector<KafkaPartitionOffset> out;
  out.reserve(covered.size());
  for (const auto& [key, next] : covered) out.push_back({key.first, key.second, next});
  return out;
}

std::vector<KafkaPartitionOffset> KafkaSource::ProcessedOffsets() {
  absl::MutexLock lock(&mu_);
  std::vector<KafkaPartitionOffset> out;
  out.reserve(processed_.size());
  for (const auto& [key, next] : processed_) out.push_back({key.first, key.second, next});
  return out;
}

void KafkaSource::Commit(const std::vector<KafkaPartitionOffset>& offsets, bool sync) {
  if (offsets.empty()) return;
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  for (const KafkaPartitionOffset& o : offsets) {
    rd_kafka_topic_partition_list_add(list, topics_[static_cast<size_t>(o.input)].c_str(),
                                      o.partition)
        ->offset = o.next_offset;
  }
  if (sync) {
    CommitSync("checkpoint", list);
  } else if (!StartCommit(list)) {
    Log(LogLevel::kDebug, "offset commit skipped: the previous one is unanswered");
  }
  rd_kafka_topic_partition_list_destroy(list);
}

void KafkaSource::UpdatePositions(const KafkaBatch& batch) {
  if (batch.offsets.empty()) return;
  absl::MutexLock lock(&mu_);
  for (const KafkaPartitionOffset& o : batch.offsets) {
    int64_t& position = positions_[{o.input, o.partition}];
    // An end-of-partition event may have published a later position already.
    position = std::max(position, o.next_offset);
  }
}

bool KafkaSource::Append(const rd_kafka_message_t* message, KafkaBatch* batch) {
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (message->err == RD_KAFKA_RESP_ERR__FATAL) {
      // A consumer's fatal error comes this way, not to the error callback.
      RecordFatalError();
    } else if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // Rare (once per catch-up), so published at once rather than with the
      // batch, which may not end while the partitions stay idle.
      const int input = InputOf(message);
      {
        absl::MutexLock lock(&mu_);
        int64_t& position = positions_[{input, message->partition}];
        position = std::max(position, message->offset);
      }
      for (KafkaPartitionOffset& end : batch->ends) {
        if (end.input == input && end.partition == message->partition) {
          end.next_offset = message->offset;
          return true;
        }
      }
      batch->ends.push_back({input, message->partition, message->offset});
      return true;
    } else {
      Log(LogLevel::kWarn, "kafka consume error",
          {{"error", rd_kafka_err2str(message->err)},
           {"topic", message->rkt ? rd_kafka_topic_name(message->rkt) : ""}});
    }
    return false;
  }
  const int input = InputOf(message);
  KafkaRecord record;
  record.input = input;
  record.begin = batch->used;
  record.partition = message->partition;
  record.offset = message->offset;
  record.size = message->len;
  if (message->len > max_message_bytes_) {
    record.oversize = true;
  } else {
    const size_t need = batch->used + message->len + simdjson::SIMDJSON_PADDING;
    if (batch->buffer.size() < need) batch->buffer.resize(std::max(need, batch->buffer.size() * 2));
    if (message->len > 0) {
      std::memcpy(batch->buffer.data() + batch->used, message->payload, message->len);
    }
    batch->used += message->len;
  }
  batch->records.push_back(record);
  // A record after the partition's end: it is no longer at its end.
  if (!batch->ends.empty()) {
    std::erase_if(batch->ends, [&](const KafkaPartitionOffset& end) {
      return end.input == input && end.partition == message->partition;
    });
  }

  const int64_t next = message->offset + 1;
  for (KafkaPartitionOffset& o : batch->offsets) {
    if (o.input == input && o.partition == message->partition) {
      o.next_offset = std::max(o.next_offset, next);
      return true;
    }
  }
  batch->offsets.push_back({input, message->partition, next});
  return true;
}

bool KafkaSource::Fill(KafkaBatch* batch, const std::atomic<bool>& stop, absl::Time idle_until) {
  batch->Clear();
  filling_ = batch;
  absl::Cleanup done = [this] { filling_ = nullptr; };
  absl::Time deadline = absl::InfiniteFuture();
  CommitOnInterval();
  while (batch->records.size() < batch_size_) {
    if (stop.load(std::memory_order_relaxed) || fatal_.load(std::memory_order_relaxed)) {
      // Messages already copied belong to this batch; the caller still
      // processes them, so only an empty batch ends the stream.
      UpdatePositions(*batch);
      return !batch->records.empty();
    }
    int timeout_ms = kStopCheckMs;
    if (batch->records.empty() && idle_until != absl::InfiniteFuture()) {
      const absl::Duration left = idle_until - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      timeout_ms =
          static_cast<int>(std::min<int64_t>(kStopCheckMs, absl::ToInt64Milliseconds(left) + 1));
    }
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      timeout_ms =
          static_cast<int>(std::min<int64_t>(kStopCheckMs, absl::ToInt64Milliseconds(left) + 1));
    }
    rd_kafka_message_t* message = rd_kafka_consumer_poll(rk_, timeout_ms);
    if (message == nullptr) {
      CommitOnInterval();
      continue;
    }
    // A partition's end also ends the batch soon, so that the event clock
    // learns of it while no further record comes.
    const bool appended = Append(message, batch);
    rd_kafka_message_destroy(message);
    if (appended && deadline == absl::InfiniteFuture()) deadline = absl::Now() + batch_timeout_;
  }
  UpdatePositions(*batch);
  return true;
}

std::vector<KafkaPartitionLag> KafkaSource::Lag() {
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    if (now - lag_time_ < kLagRefresh) return lag_;
  }
  // librdkafka is asked without mu_ held: the rebalance callback takes mu_
  // while librdkafka waits for it.
  std::vector<KafkaPartitionLag> lag;
  std::vector<int64_t> high;
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(rk_, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < assignment->cnt; ++i) {
      const rd_kafka_topic_partition_t& p = assignment->elems[i];
      lag.push_back({InputOf(p.topic), p.partition, -1});
      int64_t low = 0;
      int64_t hi = -1;
      if (rd_kafka_get_watermark_offsets(rk_, p.topic, p.partition, &low, &hi) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        hi = -1;
      }
      high.push_back(hi);
    }
    rd_kafka_topic_partition_list_destroy(assignment);
  }
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < lag.size(); ++i) {
    const auto position = positions_.find({lag[i].input, lag[i].partition});
    if (position != positions_.end() && high[i] >= 0) {
      lag[i].lag = std::max<int64_t>(0, high[i] - position->second);
    }
  }
  std::sort(lag.begin(), lag.end(), [](const KafkaPartitionLag& a, const KafkaPartitionLag& b) {
    return std::pair(a.input, a.partition) < std::pair(b.input, b.partition);
  });
  lag_ = lag;
  lag_time_ = now;
  return lag;
}

void KafkaSource::CollectMetrics(MetricFamilies* out) {
  const std::vector<MetricDef>& defs = KafkaMetricDefs();
  const std::vector<KafkaPartitionLag> lags = Lag();
  FamilySnapshot& lag = out->Start(defs[kKafkaConsumerLag]);
  for (const KafkaPartitionLag& l : lags) {
    if (l.lag < 0) continue;
    out->Add(lag, {topics_[static_cast<size_t>(l.input)], absl::StrCat(l.partition)},
             static_cast<double>(l.lag));
  }
  FamilySnapshot& commits = out->Start(defs[kKafkaCommitsTotal]);
  for (const bool success : {false, true}) {
    out->Add(commits, {success ? "success" : "failure"},
             static_cast<double>(this->commits(success)));
  }
}

void KafkaSource::StoreOffsets(const KafkaBatch& batch) {
  if (batch.offsets.empty()) return;
  if (checkpointed_) {
    absl::MutexLock lock(&mu_);
    for (const KafkaPartitionOffset& o : batch.offsets) {
      auto it = processed_.find({o.input, o.partition});
      if (it != processed_.end()) {
        it->second = std::max(it->second, o.next_offset);
      } else {
        processed_[{o.input, o.partition}] = o.next_offset;
      }
    }
    return;
  }
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(batch.offsets.size()));
  for (const KafkaPartitionOffset& o : batch.offsets) {
    rd_kafka_topic_partition_list_add(list, topics_[static_cast<size_t>(o.input)].c_str(),
                                      o.partition)
        ->offset = o.next_offset;
  }
  const rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk_, list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Typically a partition revoked while its batch was in flight.
    for (int i = 0; i < list->cnt; ++i) {
      if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        Log(LogLevel::kDebug, "offset not stored",
            {{"partition", absl::StrCat(list->elems[i].topic, "/", list->elems[i].partition)},
             {"error", rd_kafka_err2str(list->elems[i].err)}});
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(list);
}

absl::Status KafkaSource::Close() {
  closed_ = true;
  if (!checkpointed_) CommitSync("shutdown");
  // Asynchronously, so that shutdown has a bound: librdkafka's close waits
  // for the group (an unanswered rejoin can hold it for the whole session
  // timeout), and by now the offsets are committed.
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk_);
  absl::Status status;
  if (rd_kafka_error_t* error = rd_kafka_consumer_close_queue(rk_, queue)) {
    status = absl::UnavailableError(
        absl::StrCat("closing the consumer: ", rd_kafka_error_string(error)));
    rd_kafka_error_destroy(error);
  } else {
    const absl::Time deadline = absl::Now() + kCloseTimeout;
    // The final revocation comes as an event on `queue`, not as a callback.
    while (!rd_kafka_consumer_closed(rk_)) {
      if (absl::Now() >= deadline) {
        abandoned_ = true;
        Log(LogLevel::kWarn, "the consumer group did not let go in time: leaving without it",
            {{"waited", absl::FormatDuration(kCloseTimeout)}});
        break;
      }
      rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 100);
      if (event == nullptr) continue;
      if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE) {
        Rebalance(rd_kafka_event_error(event), rd_kafka_event_topic_partition_list(event));
      }
      rd_kafka_event_destroy(event);
    }
  }
  rd_kafka_queue_destroy(queue);
  assigned_.store(0, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    positions_.clear();
  }
  if (!status.ok()) return status;
  Log(LogLevel::kInfo, "kafka consumer closed");
  return absl::OkStatus();
}

}  // namespace novapulse
