// KafkaDeadLetters: the dead letters of `novapulse run` produced to a Kafka
// topic instead of a file: each one the same JSON line as in the file
// (sinks/dead_letter.h), without its newline, keyed by the record's topic,
// partition and offset ("novagift.outbox/3/812"). The producer uses the
// consumer's brokers and properties (so SASL and TLS apply to it too), with
// acks=all and idempotence.
//
// Write never blocks the pipeline: when librdkafka's queue is full the dead
// letter is counted as dropped. A dead letter counts as written once the
// broker acknowledges it; a thread of its own serves the acknowledgements.
// The destructor waits up to 10 s for the rest.
//
// Threads: Write from one thread at a time (the completion stage); the
// counters and error() from any thread.
//   auto sink = KafkaDeadLetters::Build({.brokers = ..., .topic = "novagift.dead-letters"});
//   (*sink)->Write(batch);
#ifndef NOVAPULSE_SINKS_KAFKA_DEAD_LETTERS_H_
#define NOVAPULSE_SINKS_KAFKA_DEAD_LETTERS_H_

#include <librdkafka/rdkafka.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "sinks/dead_letter.h"

namespace novapulse {

struct KafkaDeadLetterOptions {
  std::string brokers;
  // The consumer's properties: those of a producer too (security,
  // client.id) apply, those only a consumer knows are left out.
  std::vector<std::pair<std::string, std::string>> properties;
  std::string topic;  // where the dead letters go
  // Names written as "topic", by input (DeadLetterInputName).
  std::vector<std::string> topic_names = NovaGiftDeadLetterNames();
};

class KafkaDeadLetters : public DeadLetterSink {
 public:
  // Errors name the property librdkafka refused (never its value).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KafkaDeadLetters>> Build(
      const KafkaDeadLetterOptions& options);
  ~KafkaDeadLetters() override;
  KafkaDeadLetters(const KafkaDeadLetters&) = delete;
  KafkaDeadLetters& operator=(const KafkaDeadLetters&) = delete;

  void Write(const DeadLetterBatch& batch, std::string_view source = {},
             uint64_t line_base = 0) override;
  // The first delivery or produce error.
  absl::Status error() const override;

 private:
  explicit KafkaDeadLetters(const KafkaDeadLetterOptions& options);
  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  void Fail(std::string_view what);

  std::vector<std::string> topic_names_;
  std::string topic_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* rkt_ = nullptr;
  std::string line_;  // scratch; Write's thread
  std::atomic<bool> stop_{false};
  std::thread poller_;  // serves delivery reports
  mutable absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_KAFKA_DEAD_LETTERS_H_
