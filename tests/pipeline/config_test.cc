// Config loading: the shipped config, defaults, every class of error with its
// exact file:line:column, ${VAR} expansion, property passthrough, secrets kept
// out of errors and summaries, and `novapulse check-config` with the start-up
// checks `run` would fail.
#include "pipeline/config.h"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aggregators/novagift_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::HeldPort;
using ::novapulse::testing::ProcessResult;
using ::novapulse::testing::RunNovapulse;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::WriteWholeFile;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "hunter2-very-secret";

// The error message of parsing `yaml` as "test.yaml"; fails if it parses.
std::string ErrorOf(const std::string& yaml) {
  const absl::StatusOr<Config> c = ParseConfig(yaml, "test.yaml");
  EXPECT_FALSE(c.ok()) << "parsed:\n" << yaml;
  return c.ok() ? "" : std::string(c.status().message());
}

Config Parsed(const std::string& yaml) {
  absl::StatusOr<Config> c = ParseConfig(yaml, "test.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : Config{};
}

// Brokers, and an http.listen that can be bound (check-config binds it):
// port 0, the kernel's pick.
std::string Minimal() { return "kafka: {brokers: k:1}\nhttp: {listen: \"127.0.0.1:0\"}\n"; }

int CheckConfig(std::vector<std::string> args) {
  args.insert(args.begin(), "check-config");
  std::vector<char*> argv;
  argv.reserve(args.size());
  for (std::string& a : args) argv.push_back(a.data());
  return RunCheckConfigCommand(static_cast<int>(argv.size()), argv.data());
}

TEST(Config, ShippedConfigLoads) {
  ::unsetenv("KAFKA_BROKERS");
  const absl::StatusOr<Config> c =
      LoadConfig(std::string(NOVAPULSE_SOURCE_DIR) + "/configs/novapulse.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kafka.brokers, "127.0.0.1:9092");
  EXPECT_EQ(c->kafka.topics.access_log, "novagift.access-log");
  EXPECT_EQ(c->kafka.topics.outbox, "novagift.outbox");
  EXPECT_TRUE(c->rules.files.empty());
  EXPECT_THAT(c->alertmanager.urls, ::testing::ElementsAre("http://127.0.0.1:9093"));
  EXPECT_EQ(c->http.listen, "127.0.0.1:9464");
}

TEST(Config, OnlyBrokersGivesDocumentedDefaults) {
  const Config c = Parsed("kafka:\n  brokers: k:9092\n");
  EXPECT_EQ(c.kafka.brokers, "k:9092");
  EXPECT_EQ(c.kafka.group_id, "novapulse");
  EXPECT_EQ(c.kafka.topics.access_log, "novagift.access-log");
  EXPECT_EQ(c.kafka.topics.outbox, "novagift.outbox");
  EXPECT_TRUE(c.kafka.properties.empty());
  EXPECT_EQ(c.kafka.max_message_bytes, 1048576);
  EXPECT_EQ(c.kafka.batch_size, 10000);
  EXPECT_EQ(c.kafka.batch_timeout, absl::Milliseconds(100));
  EXPECT_EQ(c.kafka.commit_interval, absl::Seconds(5));
  EXPECT_EQ(c.http.listen, "127.0.0.1:9464");
  EXPECT_TRUE(c.http.web.tls.cert_file.empty());
  EXPECT_TRUE(c.http.web.basic_auth_users.empty());
  EXPECT_EQ(c.http.max_lag_ready, 10000);
  EXPECT_EQ(c.pipeline.threads, 0);
  EXPECT_EQ(c.pipeline.series_limit, 10000);
  EXPECT_EQ(c.pipeline.allowed_lateness, absl::Seconds(30));
  EXPECT_EQ(c.pipeline.max_future, absl::Minutes(5));
  EXPECT_TRUE(c.rules.files.empty());
  EXPECT_EQ(c.rules.evaluation_interval, absl::Seconds(15));
  EXPECT_EQ(c.rules.window_memory_bytes, 128 << 20);
  EXPECT_FALSE(c.rules.zero_new_series);
  EXPECT_TRUE(c.alertmanager.urls.empty());
  EXPECT_EQ(c.alertmanager.resend_delay, absl::Minutes(1));
  EXPECT_EQ(c.log.level, LogLevel::kInfo);
  EXPECT_EQ(c.log.format, LogFormat::kLogfmt);
}

TEST(Config, ParsesEveryKey) {
  const Config c = Parsed(R"(kafka:
  brokers: a:1,b:2
  group_id: g
  topics: {access_log: al, outbox: ob}
  max_message_bytes: 2000
  batch_size: 5
  batch_timeout: 250ms
  commit_interval: 1m30s
http:
  listen: ":9000"
  tls: {cert_file: c.pem, key_file: k.pem}
  basic_auth_users:
    prom: "$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"
  max_lag_ready: 7
pipeline: {threads: 4, series_limit: 50, allowed_lateness: 0, max_future: 1h}
rules: {files: [a.yml, b.yml], evaluation_interval: 30s, window_memory_bytes: 67108864,
        zero_new_series: true}
alertmanager: {urls: ["https://am:9093"], resend_delay: 2m}
dead_letter: {path: /var/lib/novapulse/rejected.ndjson, max_bytes: 10000, keep: 5}
log: {level: debug, format: json}
)");
  EXPECT_EQ(c.kafka.group_id, "g");
  EXPECT_EQ(c.kafka.topics.access_log, "al");
  EXPECT_EQ(c.kafka.topics.outbox, "ob");
  EXPECT_EQ(c.kafka.max_message_bytes, 2000);
  EXPECT_EQ(c.kafka.batch_size, 5);
  EXPECT_EQ(c.kafka.batch_timeout, absl::Milliseconds(250));
  EXPECT_EQ(c.kafka.commit_interval, absl::Seconds(90));
  EXPECT_EQ(c.http.listen, ":9000");
  EXPECT_EQ(c.http.web.tls.cert_file, "c.pem");
  EXPECT_EQ(c.http.web.tls.key_file, "k.pem");
  EXPECT_EQ(c.http.web.basic_auth_users.size(), 1U);
  EXPECT_EQ(c.http.max_lag_ready, 7);
  EXPECT_EQ(c.pipeline.threads, 4);
  EXPECT_EQ(c.pipeline.series_limit, 50);
  EXPECT_EQ(c.pipeline.allowed_lateness, absl::ZeroDuration());
  EXPECT_EQ(c.pipeline.max_future, absl::Hours(1));
  EXPECT_THAT(c.rules.files, ::testing::ElementsAre("a.yml", "b.yml"));
  EXPECT_EQ(c.rules.evaluation_interval, absl::Seconds(30));
  EXPECT_EQ(c.rules.window_memory_bytes, 64 << 20);
  EXPECT_TRUE(c.rules.zero_new_series);
  EXPECT_THAT(c.alertmanager.urls, ::testing::ElementsAre("https://am:9093"));
  EXPECT_EQ(c.alertmanager.resend_delay, absl::Minutes(2));
  EXPECT_EQ(c.log.level, LogLevel::kDebug);
  EXPECT_EQ(c.log.format, LogFormat::kJson);
  EXPECT_EQ(c.dead_letter.path, "/var/lib/novapulse/rejected.ndjson");
  EXPECT_EQ(c.dead_letter.max_bytes, 10000);
  EXPECT_EQ(c.dead_letter.keep, 5);
}

TEST(Config, DeadLetterSectionIsValidated) {
  EXPECT_TRUE(Parsed("kafka: {brokers: k:1}\n").dead_letter.path.empty());
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\ndead_letter: {max_bytes: 5000}\n"),
              HasSubstr("test.yaml:2:14: dead_letter: set exactly one of path (a file) and topic "
                        "(a Kafka topic)"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\ndead_letter: {path: x, topic: y}\n"),
              HasSubstr("dead_letter: set exactly one of path"));
  EXPECT_EQ(Parsed("kafka: {brokers: k:1}\ndead_letter: {topic: dlq}\n").dead_letter.topic, "dlq");
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\ndead_letter:\n  path: x\n  rotate: 1\n"),
              HasSubstr("test.yaml:4:3: dead_letter: unknown key 'rotate' (allowed: path, "
                        "topic, max_bytes, keep)"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\ndead_letter: {path: x, max_bytes: 10}\n"),
              HasSubstr("test.yaml:2:35: dead_letter.max_bytes: value out of range"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\ndead_letter: {path: x, keep: -1}\n"),
              HasSubstr("dead_letter.keep: value out of range"));
}

TEST(Config, CheckpointSectionIsValidated) {
  EXPECT_TRUE(Parsed("kafka: {brokers: k:1}\n").checkpoint.dir.empty());
  const Config c = Parsed("kafka: {brokers: k:1}\ncheckpoint: {dir: /var/lib/np, interval: 30s}\n");
  EXPECT_EQ(c.checkpoint.dir, "/var/lib/np");
  EXPECT_EQ(c.checkpoint.interval, absl::Seconds(30));
  EXPECT_EQ(Parsed("kafka: {brokers: k:1}\ncheckpoint: {dir: d}\n").checkpoint.interval,
            absl::Seconds(10));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\ncheckpoint: {interval: 5s}\n"),
              HasSubstr("test.yaml:2:13: checkpoint: missing required key 'dir'"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\ncheckpoint: {dir: d, interval: 10ms}\n"),
              HasSubstr("checkpoint.interval: value out of range"));
  // An empty dir, e.g. from an unset variable, turns checkpoints off.
  ::unsetenv("NP_TEST_CKPT_DIR");
  EXPECT_TRUE(Parsed("kafka: {brokers: k:1}\ncheckpoint: {dir: \"${NP_TEST_CKPT_DIR:-}\"}\n")
                  .checkpoint.dir.empty());
  ::setenv("NP_TEST_CKPT_DIR", "/var/lib/np", 1);
  EXPECT_EQ(Parsed("kafka: {brokers: k:1}\ncheckpoint: {dir: \"${NP_TEST_CKPT_DIR:-}\"}\n")
                .checkpoint.dir,
            "/var/lib/np");
  ::unsetenv("NP_TEST_CKPT_DIR");
}

TEST(Config, WindowMemoryIsAWholeNumberOfBytesFromOneMiB) {
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nrules: {window_memory_bytes: 1000}\n"),
              HasSubstr("test.yaml:2:30: rules.window_memory_bytes: value out of range: '1000' is "
                        "not in [1048576, 1099511627776]"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nrules: {window_memory_bytes: 128MiB}\n"),
              HasSubstr("test.yaml:2:30: rules.window_memory_bytes: expected an integer, got "
                        "'128MiB'"));
  EXPECT_THAT(RedactedSummary(Parsed("kafka: {brokers: k:1}\nrules: {window_memory_bytes: "
                                     "1048576}\n")),
              HasSubstr("rules.window_memory_bytes: 1048576\n"));
}

TEST(Config, RejectsUnknownKeyListingTheAllowedOnes) {
  const std::string e = ErrorOf("kafka:\n  brokers: k:1\n  brokerz: x\n");
  EXPECT_THAT(e, HasSubstr("test.yaml:3:3: kafka: unknown key 'brokerz' (allowed: brokers, "
                           "group_id, topics, properties,"));
}

TEST(Config, RejectsUnknownSection) {
  const std::string e = ErrorOf("kafka: {brokers: k:1}\nmetricz: {}\n");
  EXPECT_THAT(e, HasSubstr("test.yaml:2:1: 'metricz': unknown section (allowed: kafka, http, "
                           "pipeline, metrics, rules, alertmanager, remote_write, dead_letter, "
                           "checkpoint, log)"));
}

TEST(Config, RejectsDuplicateKey) {
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: a:1\n  brokers: b:1\n"),
              HasSubstr("test.yaml:3:3: kafka.brokers: duplicate key"));
}

TEST(Config, RejectsWrongType) {
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: [a, b]\n"),
              HasSubstr("test.yaml:2:12: kafka.brokers: expected a string, got a list"));
  EXPECT_THAT(ErrorOf("kafka: k:1\n"),
              HasSubstr("test.yaml:1:8: kafka: expected a mapping, got a scalar"));
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\n  batch_size: many\n"),
              HasSubstr("test.yaml:3:15: kafka.batch_size: expected an integer, got 'many'"));
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\nalertmanager:\n  urls: http://a\n"),
              HasSubstr("test.yaml:4:9: alertmanager.urls: expected a list, got a scalar"));
}

TEST(Config, RejectsBadDuration) {
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\n  batch_timeout: 5x\n"),
              HasSubstr("test.yaml:3:18: kafka.batch_timeout: bad duration '5x': unknown unit"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nrules: {evaluation_interval: 30m1h}\n"),
              HasSubstr("test.yaml:2:30: rules.evaluation_interval: bad duration '30m1h': units "
                        "must go from largest to smallest"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\npipeline: {max_future: 1.5s}\n"),
              HasSubstr("test.yaml:2:24: pipeline.max_future: bad duration '1.5s': no fractions"));
}

TEST(Config, RejectsValueOutOfRange) {
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\n  batch_size: 0\n"),
              HasSubstr("test.yaml:3:15: kafka.batch_size: value out of range: '0' is not in [1, "
                        "1000000]"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\npipeline:\n  threads: -1\n"),
              HasSubstr("test.yaml:3:12: pipeline.threads: value out of range"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nrules:\n  evaluation_interval: 0\n"),
              HasSubstr("test.yaml:3:24: rules.evaluation_interval: value out of range: '0' is "
                        "not in [1s, 1h]"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nlog:\n  level: verbose\n"),
              HasSubstr("test.yaml:3:10: log.level: expected one of debug, info, warn, error, got "
                        "'verbose'"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nhttp:\n  listen: localhost\n"),
              HasSubstr("test.yaml:3:11: http.listen: expected HOST:PORT"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nhttp:\n  listen: \"127.0.0.1:65536\"\n"),
              HasSubstr("http.listen: expected HOST:PORT (port 0-65535), got '127.0.0.1:65536'"));
  EXPECT_EQ(Parsed("kafka: {brokers: k:1}\nhttp:\n  listen: \"127.0.0.1:0\"\n").http.listen,
            "127.0.0.1:0")
      << "port 0: the kernel picks one";
  EXPECT_THAT(
      ErrorOf("kafka: {brokers: k:1}\nalertmanager:\n  urls: [am:9093]\n"),
      HasSubstr("test.yaml:3:10: alertmanager.urls[0]: expected an http:// or https:// URL"));
}

TEST(Config, RejectsMissingRequiredKeys) {
  EXPECT_THAT(ErrorOf("kafka:\n  group_id: g\n"),
              HasSubstr("test.yaml:2:3: kafka: missing required key 'brokers'"));
  EXPECT_THAT(ErrorOf("log: {level: info}\n"),
              HasSubstr("test.yaml:1:1: missing required section 'kafka'"));
  EXPECT_THAT(ErrorOf(""), HasSubstr("test.yaml:1:1: missing required section 'kafka'"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nhttp:\n  tls:\n    cert_file: c.pem\n"),
              HasSubstr("test.yaml:3:3: http.tls: missing one of key_file or key"));
}

TEST(Config, RejectsYamlSyntaxErrorsWithoutThrowing) {
  EXPECT_THAT(ErrorOf("kafka: [\n"), HasSubstr("test.yaml:2:1: YAML syntax error: "));
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\n  - item\n"),
              HasSubstr("test.yaml:3:3: YAML syntax error: end of map not found"));
}

// Found by tests/fuzz/config_fuzz: every mapping key was read through a
// reference into yaml-cpp's iterator proxy after the proxy was gone (ASan:
// stack-use-after-scope). Run under ASan (scripts/test does) to see it fail.
TEST(Config, ReadsMappingKeysAndValuesThatOutliveTheIterator) {
  const absl::StatusOr<Config> c = ParseConfig("kafka:\n  brokers: \"a:1\n  x: [\n", "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kafka.brokers, "a:1 x: [ ");
  const absl::StatusOr<Config> nested = ParseConfig(
      "kafka:\n  brokers: b:1\n  topics: {access_log: a, outbox: o}\nlog: {level: warn}\n",
      "test.yaml");
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(nested->kafka.topics.access_log, "a");
  EXPECT_EQ(nested->kafka.topics.outbox, "o");
  EXPECT_EQ(nested->log.level, LogLevel::kWarn);
}

// Found by tests/fuzz/config_fuzz: yaml-cpp's LoadAll never returned on a ','
// where a document starts, allocating empty documents until memory ran out.
TEST(Config, StrayCommaAtTopLevelIsASyntaxErrorNotAHang) {
  EXPECT_THAT(ErrorOf(","), HasSubstr("test.yaml:1:1: YAML syntax error: unexpected ','"));
  EXPECT_THAT(ErrorOf("\"a\","), HasSubstr("test.yaml:1:4: YAML syntax error: unexpected ','"));
  EXPECT_THAT(ErrorOf("{kafka: {brokers: a:1}},\n"),
              HasSubstr("test.yaml:1:24: YAML syntax error: unexpected ','"));
}

TEST(Config, SecondDocumentIsStillNamed) {
  EXPECT_THAT(ErrorOf("kafka: {brokers: a:1}\n---\nkafka: {brokers: b:1}\n"),
              HasSubstr("test.yaml:2:1: expected one YAML document, found several"));
}

TEST(Config, ReportsEveryErrorNotJustTheFirst) {
  const std::string e = ErrorOf("kafka:\n  bogus: 1\n  batch_size: 0\nlog: {format: xml}\n");
  EXPECT_THAT(e, HasSubstr("test.yaml:2:3: kafka: unknown key 'bogus'"));
  EXPECT_THAT(e, HasSubstr("test.yaml:3:15: kafka.batch_size: value out of range"));
  EXPECT_THAT(e, HasSubstr("test.yaml:2:3: kafka: missing required key 'brokers'"));
  EXPECT_THAT(e, HasSubstr("test.yaml:4:15: log.format: expected one of logfmt, json"));
}

TEST(Config, ExpandsEnvironmentVariables) {
  ::setenv("NP_TEST_BROKERS", "k1:9092,k2:9092", 1);
  ::setenv("NP_TEST_BATCH", "42", 1);
  ::unsetenv("NP_TEST_UNSET");
  ::setenv("NP_TEST_EMPTY", "", 1);
  const Config c = Parsed(R"(kafka:
  brokers: "${NP_TEST_BROKERS}"
  batch_size: ${NP_TEST_BATCH}
  group_id: "np-${NP_TEST_UNSET:-default}-${NP_TEST_EMPTY:-e}"
  topics: {outbox: "$${literal}"}
)");
  EXPECT_EQ(c.kafka.brokers, "k1:9092,k2:9092");
  EXPECT_EQ(c.kafka.batch_size, 42);
  EXPECT_EQ(c.kafka.group_id, "np-default-e");
  EXPECT_EQ(c.kafka.topics.outbox, "${literal}");
}

TEST(Config, UnsetVariableWithoutDefaultIsAnErrorNamingIt) {
  ::unsetenv("NP_TEST_UNSET");
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: ${NP_TEST_UNSET}\n"),
              HasSubstr("test.yaml:2:12: kafka.brokers: environment variable NP_TEST_UNSET is not "
                        "set"));
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: \"${NP_TEST_UNSET\"\n"),
              HasSubstr("test.yaml:2:12: kafka.brokers: unterminated '${'"));
}

TEST(Config, PassesPropertiesThroughVerbatim) {
  const Config c = Parsed(R"(kafka:
  brokers: k:1
  properties:
    security.protocol: SASL_SSL
    sasl.mechanisms: SCRAM-SHA-512
    fetch.wait.max.ms: 50
    enable.ssl.certificate.verification: false
)");
  EXPECT_THAT(c.kafka.properties,
              ::testing::UnorderedElementsAre(
                  ::testing::Pair("security.protocol", "SASL_SSL"),
                  ::testing::Pair("sasl.mechanisms", "SCRAM-SHA-512"),
                  ::testing::Pair("fetch.wait.max.ms", "50"),
                  ::testing::Pair("enable.ssl.certificate.verification", "false")));
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\n  properties:\n    bootstrap.servers: x:1\n"),
              HasSubstr("test.yaml:4:5: kafka.properties.bootstrap.servers: set with "
                        "kafka.brokers, not as a property"));
}

TEST(Config, SecretsNeverAppearInErrors) {
  ::setenv("NP_TEST_SECRET", kSecret, 1);
  const std::string yaml = absl::StrCat(
      "kafka:\n  brokers: k:1\n  properties:\n    sasl.password: [", kSecret,
      "]\n  batch_timeout: ${NP_TEST_SECRET}\nhttp:\n  basic_auth_users:\n    u: ", kSecret,
      "\nalertmanager:\n  urls: [", kSecret, "]\n");
  const std::string e = ErrorOf(yaml);
  EXPECT_THAT(e, HasSubstr("test.yaml:4:20: kafka.properties.sasl.password: expected a string"));
  EXPECT_THAT(e, HasSubstr("test.yaml:5:18: kafka.batch_timeout: bad duration '${NP_TEST_SECRET}' "
                           "(value from the environment not shown)"));
  EXPECT_THAT(e, HasSubstr("test.yaml:8:8: http.basic_auth_users.u: not a bcrypt hash"));
  EXPECT_THAT(e, HasSubstr("test.yaml:10:10: alertmanager.urls[0]: expected an http://"));
  EXPECT_THAT(e, Not(HasSubstr(kSecret)));
}

TEST(Config, SummaryRedactsSecrets) {
  ::setenv("NP_TEST_SECRET", kSecret, 1);
  const Config c = Parsed(R"(kafka:
  brokers: k:1
  properties:
    sasl.username: novapulse
    sasl.password: ${NP_TEST_SECRET}
    ssl.key.password: ${NP_TEST_SECRET}
    sasl.oauthbearer.client.secret: ${NP_TEST_SECRET}
    some.token: ${NP_TEST_SECRET}
http:
  basic_auth_users:
    prom: "$2y$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234"
)");
  EXPECT_EQ(c.kafka.properties.at("sasl.password"), kSecret);
  const std::string s = RedactedSummary(c);
  EXPECT_THAT(s, HasSubstr("kafka.properties.sasl.username: novapulse\n"));
  EXPECT_THAT(s, HasSubstr("kafka.properties.sasl.password: <redacted>\n"));
  EXPECT_THAT(s, HasSubstr("kafka.properties.ssl.key.password: <redacted>\n"));
  EXPECT_THAT(s, HasSubstr("kafka.properties.sasl.oauthbearer.client.secret: <redacted>\n"));
  EXPECT_THAT(s, HasSubstr("kafka.properties.some.token: <redacted>\n"));
  EXPECT_THAT(s, HasSubstr("http.basic_auth_users.prom: <redacted>\n"));
  EXPECT_THAT(s, HasSubstr("kafka.batch_timeout: 100ms\n"));
  EXPECT_THAT(s, Not(HasSubstr(kSecret)));
  EXPECT_THAT(s, Not(HasSubstr("$2y$")));
}

TEST(Config, LoadConfigNamesAnUnreadablePath) {
  const absl::StatusOr<Config> c = LoadConfig("/nonexistent/novapulse.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/novapulse.yaml: cannot open"));
}

TEST(Config, LoadConfigOfADirectorySaysSo) {
  ScratchDir dir;
  const absl::StatusOr<Config> c = LoadConfig(dir.path());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), dir.path() + ": is a directory");
}

// The families whose series may expire, as the errors list them.
constexpr char kExpiringFamilies[] =
    "http_requests_total, http_request_duration_seconds, http_errors_total, "
    "outbox_errors_total, gifts_created_total, gifts_claimed_total, gifts_expired_total, "
    "gift_value_usd, gift_claim_duration_seconds, wallet_transactions_total, "
    "wallet_transaction_amount_usd";

TEST(Config, SeriesExpiryIsOffByDefault) {
  const Config c = Parsed("kafka: {brokers: k:1}\n");
  EXPECT_EQ(c.metrics.expire_after, absl::ZeroDuration());
  EXPECT_TRUE(c.metrics.families.empty());
  EXPECT_FALSE(c.metrics.expires());
  // An empty section, and an explicit 0, are the same.
  EXPECT_FALSE(Parsed("kafka: {brokers: k:1}\nmetrics:\n").metrics.expires());
  EXPECT_FALSE(Parsed("kafka: {brokers: k:1}\nmetrics: {expire_after: 0}\n").metrics.expires());
  EXPECT_FALSE(Parsed("kafka: {brokers: k:1}\nmetrics:\n  families:\n    gifts_created_total: "
                      "{expire_after: 0}\n")
                   .metrics.expires());
}

TEST(Config, ParsesSeriesExpiryAndPerFamilyOverrides) {
  const Config c = Parsed(R"(kafka: {brokers: k:1}
metrics:
  expire_after: 10m
  families:
    http_request_duration_seconds: {expire_after: 1h}
    gifts_created_total:
      expire_after: 0
    wallet_transactions_total: {expire_after: 1d12h}
)");
  EXPECT_EQ(c.metrics.expire_after, absl::Minutes(10));
  EXPECT_THAT(
      c.metrics.families,
      ::testing::ElementsAre(::testing::Pair("http_request_duration_seconds", absl::Hours(1)),
                             ::testing::Pair("gifts_created_total", absl::ZeroDuration()),
                             ::testing::Pair("wallet_transactions_total", absl::Hours(36))));
  EXPECT_TRUE(c.metrics.expires());

  // A family override alone turns expiry on.
  const Config one = Parsed(
      "kafka: {brokers: k:1}\nmetrics:\n  families:\n    http_errors_total: {expire_after: 30s}\n");
  EXPECT_EQ(one.metrics.expire_after, absl::ZeroDuration());
  EXPECT_THAT(one.metrics.families,
              ::testing::ElementsAre(::testing::Pair("http_errors_total", absl::Seconds(30))));
  EXPECT_TRUE(one.metrics.expires());

  // The longest expiry accepted: 366 days.
  EXPECT_EQ(Parsed("kafka: {brokers: k:1}\nmetrics: {expire_after: 366d}\n").metrics.expire_after,
            absl::Hours(24 * 366));
}

TEST(Config, EveryFamilyThatCanExpireCanBeNamed) {
  const std::vector<std::string> names = NovaGiftMetrics::ExpiringFamilies();
  EXPECT_EQ(absl::StrJoin(names, ", "), kExpiringFamilies);
  std::string yaml = "kafka: {brokers: k:1}\nmetrics:\n  families:\n";
  for (const std::string& name : names) {
    EXPECT_TRUE(NovaGiftMetrics::CanExpire(name)) << name;
    absl::StrAppend(&yaml, "    ", name, ": {expire_after: 5m}\n");
  }
  const Config c = Parsed(yaml);
  ASSERT_EQ(c.metrics.families.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(c.metrics.families[i].first, names[i]);
    EXPECT_EQ(c.metrics.families[i].second, absl::Minutes(5));
  }
}

TEST(Config, SeriesExpiryRefusesFamiliesWhoseSeriesCannotExpire) {
  const std::string list =
      absl::StrCat("not a family whose series can expire; those are: ", kExpiringFamilies);
  // Self metrics, the outbox families labelled by type only, computed
  // families, and names that are no family at all.
  for (const char* name : {"novapulse_events_total", "novapulse_series", "outbox_queued_total",
                           "outbox_processed_total", "outbox_processing_duration_seconds",
                           "http_active_connections", "http_request_total", "nope"}) {
    SCOPED_TRACE(name);
    EXPECT_FALSE(NovaGiftMetrics::CanExpire(name));
    EXPECT_THAT(ErrorOf(absl::StrCat("kafka: {brokers: k:1}\nmetrics:\n  expire_after: 10m\n  "
                                     "families:\n    http_requests_total: {expire_after: 1h}\n    ",
                                     name, ": {expire_after: 1h}\n")),
                HasSubstr(absl::StrCat("test.yaml:6:5: metrics.families.", name, ": ", list)));
  }
  // Every bad name is reported, each at its own key.
  const std::string e = ErrorOf(
      "kafka: {brokers: k:1}\nmetrics:\n  families:\n    outbox_queued_total: {expire_after: 1h}\n"
      "    gifts_created_total: {expire_after: 1h}\n    bogus: {expire_after: 1h}\n");
  EXPECT_THAT(e, HasSubstr("test.yaml:4:5: metrics.families.outbox_queued_total: not a family"));
  EXPECT_THAT(e, HasSubstr("test.yaml:6:5: metrics.families.bogus: not a family"));
  EXPECT_THAT(e, Not(HasSubstr("metrics.families.gifts_created_total:")));
}

TEST(Config, SeriesExpirySectionIsValidated) {
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  expire_after: 1m\n  expire: 1m\n"),
              HasSubstr("test.yaml:4:3: metrics: unknown key 'expire' (allowed: spec, "
                        "expire_after, families)"));
  EXPECT_THAT(
      ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  families:\n    http_requests_total: {}\n"),
      HasSubstr("test.yaml:4:26: metrics.families.http_requests_total: missing required "
                "key 'expire_after'"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  families:\n    http_requests_total: "
                      "{expire_after: 1h, after: 1m}\n"),
              HasSubstr("test.yaml:4:45: metrics.families.http_requests_total: unknown key "
                        "'after' (allowed: expire_after)"));
  EXPECT_THAT(
      ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  families:\n    http_requests_total: 1h\n"),
      HasSubstr("test.yaml:4:26: metrics.families.http_requests_total: expected a "
                "mapping, got a scalar"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  families: [http_requests_total]\n"),
              HasSubstr("test.yaml:3:13: metrics.families: expected a mapping, got a list"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  families:\n    http_requests_total: "
                      "{expire_after: 1h}\n    http_requests_total: {expire_after: 2h}\n"),
              HasSubstr("test.yaml:5:5: metrics.families.http_requests_total: duplicate key"));
}

TEST(Config, SeriesExpiryRefusesNegativeAndNonDurationValues) {
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  expire_after: -1m\n"),
              HasSubstr("test.yaml:3:17: metrics.expire_after: bad duration '-1m': "));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  expire_after: soon\n"),
              HasSubstr("test.yaml:3:17: metrics.expire_after: bad duration 'soon': "));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  expire_after: 600\n"),
              HasSubstr("test.yaml:3:17: metrics.expire_after: bad duration '600': missing unit"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  expire_after: 1.5h\n"),
              HasSubstr("metrics.expire_after: bad duration '1.5h': no fractions"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  expire_after: [10m]\n"),
              HasSubstr("test.yaml:3:17: metrics.expire_after: expected a duration, got a list"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  expire_after: 367d\n"),
              HasSubstr("test.yaml:3:17: metrics.expire_after: value out of range: '367d' is not "
                        "in [0, 8784h]"));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  families:\n    gifts_claimed_total: "
                      "{expire_after: -30s}\n"),
              HasSubstr("test.yaml:4:41: metrics.families.gifts_claimed_total.expire_after: bad "
                        "duration '-30s': "));
  EXPECT_THAT(ErrorOf("kafka: {brokers: k:1}\nmetrics:\n  families:\n    gifts_claimed_total: "
                      "{expire_after: forever}\n"),
              HasSubstr("metrics.families.gifts_claimed_total.expire_after: bad duration "
                        "'forever': "));
}

TEST(Config, SeriesExpiryGoesWithRuleFiles) {
  const Config c =
      Parsed("kafka: {brokers: k:1}\nmetrics:\n  expire_after: 10m\nrules: {files: [a.yml]}\n");
  EXPECT_TRUE(c.metrics.expires());
  EXPECT_THAT(c.rules.files, ::testing::ElementsAre("a.yml"));
  EXPECT_TRUE(Parsed("kafka: {brokers: k:1}\nmetrics:\n  families:\n    http_requests_total: "
                     "{expire_after: 1h}\nrules: {files: [a.yml]}\n")
                  .metrics.expires());
}

TEST(Config, SummaryShowsSeriesExpiry) {
  EXPECT_THAT(RedactedSummary(Parsed("kafka: {brokers: k:1}\n")),
              HasSubstr("pipeline.max_future: 5m\nmetrics.spec: (none: the compiled-in NovaGift "
                        "set)\nmetrics.expire_after: 0 (never)\nrules.files: "
                        "[]\n"));
  const std::string s = RedactedSummary(Parsed(R"(kafka: {brokers: k:1}
metrics:
  expire_after: 10m
  families:
    http_request_duration_seconds: {expire_after: 1h}
    gifts_created_total: {expire_after: 90s}
)"));
  EXPECT_THAT(s, HasSubstr("pipeline.max_future: 5m\n"
                           "metrics.spec: (none: the compiled-in NovaGift set)\n"
                           "metrics.expire_after: 10m\n"
                           "metrics.families.http_request_duration_seconds.expire_after: 1h\n"
                           "metrics.families.gifts_created_total.expire_after: 1m30s\n"
                           "rules.files: []\n"));
  // Only overrides: the default stays "never".
  EXPECT_THAT(RedactedSummary(Parsed("kafka: {brokers: k:1}\nmetrics:\n  families:\n    "
                                     "http_errors_total: {expire_after: 2h}\n")),
              HasSubstr("metrics.expire_after: 0 (never)\n"
                        "metrics.families.http_errors_total.expire_after: 2h\n"));
}

TEST(CheckConfig, ExitCodes) {
  ScratchDir dir;
  const std::string good = dir.Path("good.yaml");
  const std::string bad = dir.Path("bad.yaml");
  WriteWholeFile(good, Minimal());
  WriteWholeFile(bad, "kafka: {brokers: k:1, nope: 1}\n");
  EXPECT_EQ(CheckConfig({good}), 0);
  EXPECT_EQ(CheckConfig({bad}), 1);
  EXPECT_EQ(CheckConfig({dir.Path("missing.yaml")}), 1);
  EXPECT_EQ(CheckConfig({}), 2);
  EXPECT_EQ(CheckConfig({good, bad}), 2);
  EXPECT_EQ(CheckConfig({"--bogus", good}), 2);
  EXPECT_EQ(CheckConfig({"--help"}), 0);
}

TEST(CheckConfig, PrintsOkAndRedactedSummaryOrTheErrors) {
  ScratchDir dir;
  const std::string good = dir.Path("good.yaml");
  const std::string bad = dir.Path("bad.yaml");
  WriteWholeFile(good, absl::StrCat("kafka:\n  brokers: k:1\n  properties: {sasl.password: ",
                                    kSecret, "}\nhttp: {listen: \"127.0.0.1:0\"}\n"));
  WriteWholeFile(bad, "kafka:\n  brokers: k:1\n  batch_size: -5\n");

  ProcessResult r = RunNovapulse({"check-config", good});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(good + ": ok\n"));
  EXPECT_THAT(r.out, HasSubstr("kafka.properties.sasl.password: <redacted>"));
  EXPECT_THAT(r.out, Not(HasSubstr(kSecret)));

  r = RunNovapulse({"check-config", bad});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(bad + ":3:15: kafka.batch_size: value out of range"));

  r = RunNovapulse({"check-config", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: novapulse check-config [OPTIONS] FILE"));

  r = RunNovapulse({"help"});
  EXPECT_THAT(r.out, HasSubstr("check-config"));
}

TEST(CheckConfig, PrintsSeriesExpiryAndItsErrors) {
  ScratchDir dir;
  const std::string good = dir.Path("good.yaml");
  WriteWholeFile(good, absl::StrCat(Minimal(),
                                    "metrics:\n  expire_after: 15m\n  families:\n"
                                    "    http_request_duration_seconds: {expire_after: 2h}\n"));
  ProcessResult r = RunNovapulse({"check-config", good});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(good + ": ok\n"));
  EXPECT_THAT(r.out,
              HasSubstr("\nmetrics.expire_after: 15m\n"
                        "metrics.families.http_request_duration_seconds.expire_after: 2h\n"));

  const std::string self = dir.Path("self.yaml");
  WriteWholeFile(self, absl::StrCat(Minimal(),
                                    "metrics:\n  families:\n"
                                    "    novapulse_events_total: {expire_after: 1h}\n"));
  r = RunNovapulse({"check-config", self});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat(self,
                                            ":5:5: metrics.families.novapulse_events_total: not a "
                                            "family whose series can expire; those are: ",
                                            kExpiringFamilies)));

  const std::string rules = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml";
  const std::string both = dir.Path("both.yaml");
  WriteWholeFile(both, absl::StrCat(Minimal(), "metrics: {expire_after: 10m}\nrules: {files: [",
                                    rules, "]}\n"));
  r = RunNovapulse({"check-config", both});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\nmetrics.expire_after: 10m\n"));
}

// What check-config prints on stderr for a config of `yaml`, written to
// `dir`/novapulse.yaml; expects exit status 1.
std::string StartupErrors(const ScratchDir& dir, const std::string& yaml) {
  const std::string path = dir.Path("novapulse.yaml");
  WriteWholeFile(path, yaml);
  const ProcessResult r = RunNovapulse({"check-config", path});
  EXPECT_EQ(r.exit_code, 1) << yaml << r.out;
  EXPECT_THAT(r.out, Not(HasSubstr(": ok")));
  return r.err;
}

TEST(CheckConfig, RuleFilesMustLoad) {
  ScratchDir dir;
  const std::string config = dir.Path("novapulse.yaml");
  std::string err =
      StartupErrors(dir, absl::StrCat(Minimal(), "rules: {files: [", dir.path(), "]}\n"));
  EXPECT_THAT(err, HasSubstr(config + ": rules.files: " + dir.path() + ": is a directory"));

  const std::string missing = dir.Path("missing.yml");
  err = StartupErrors(dir, absl::StrCat(Minimal(), "rules: {files: [", missing, "]}\n"));
  EXPECT_THAT(err, HasSubstr(config + ": rules.files: " + missing +
                             ": cannot open: No such file or directory"));

  const std::string bad = dir.Path("bad.yml");
  WriteWholeFile(bad,
                 "groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: topk(3, x)\n");
  err = StartupErrors(dir, absl::StrCat(Minimal(), "rules: {files: [", bad, "]}\n"));
  EXPECT_THAT(err,
              HasSubstr(config + ": rules.files: " + bad + ":5:15: unsupported: function topk"));
}

// A metric spec replaces the compiled-in set: the topics read are its
// inputs', kafka.topics names them by input, and metrics.families names its
// families.
std::string SpecPath(std::string_view name) {
  return absl::StrCat(NOVAPULSE_SOURCE_DIR, "/configs/metrics/", std::string(name));
}

TEST(Config, AMetricSpecNamesTheTopicsAndTheFamilies) {
  const Config novagift = Parsed("kafka: {brokers: k:1}\n");
  EXPECT_EQ(novagift.metrics.plan, nullptr);
  EXPECT_EQ(InputTopics(novagift),
            (std::vector<std::string>{"novagift.access-log", "novagift.outbox"}));

  const std::string shipped = SpecPath("novagift.yaml");
  Config c = Parsed(absl::StrCat("kafka:\n  brokers: k:1\n  topics: {access_log: prod.al}\n",
                                 "metrics:\n  spec: ", shipped,
                                 "\n  families: {outbox_errors_total: {expire_after: 1h}}\n"));
  ASSERT_NE(c.metrics.plan, nullptr);
  // access_log names the input access-log; outbox keeps its spec's topic.
  EXPECT_EQ(InputTopics(c), (std::vector<std::string>{"prod.al", "novagift.outbox"}));
  EXPECT_THAT(
      RedactedSummary(c),
      HasSubstr("kafka.topics.access-log: prod.al\nkafka.topics.outbox: novagift.outbox\n"));
  EXPECT_THAT(RedactedSummary(c), HasSubstr("metrics.spec: " + shipped + " ("));

  const std::string caddy = SpecPath("examples/caddy.yaml");
  c = Parsed(absl::StrCat("kafka:\n  brokers: k:1\n  topics: {caddy-access: web.logs}\n",
                          "metrics:\n  spec: ", caddy,
                          "\n  families: {caddy_http_requests_total: {expire_after: 1h}}\n"));
  EXPECT_EQ(InputTopics(c), (std::vector<std::string>{"web.logs"}));

  // NovaGift's names are not the Caddy spec's, nor its families.
  const std::string e = ErrorOf(
      absl::StrCat("kafka:\n  brokers: k:1\n  topics: {access_log: x}\nmetrics:\n  spec: ", caddy,
                   "\n  families: {http_requests_total: {expire_after: 1h}}\n"));
  EXPECT_THAT(e, HasSubstr("test.yaml:3:12: kafka.topics: \"access_log\" is not an input of the "
                           "metric spec " +
                           caddy + " (its inputs: caddy-access)"));
  EXPECT_THAT(e, HasSubstr("test.yaml:6:14: metrics.families.http_requests_total: not a family "
                           "whose series can expire; those are: caddy_http_requests_total, "
                           "caddy_http_requests_by_protocol_total"));
  // Without a spec, only the NovaGift topics.
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\n  topics: {caddy-access: x}\n"),
              HasSubstr("test.yaml:3:12: kafka.topics: unknown key \"caddy-access\" (allowed: "
                        "access_log, outbox)"));
  // Two inputs cannot read one topic.
  EXPECT_THAT(
      ErrorOf(absl::StrCat("kafka:\n  brokers: k:1\n  topics: {outbox: novagift.access-log}",
                           "\nmetrics: {spec: ", shipped, "}\n")),
      HasSubstr("kafka.topics: inputs access-log and outbox would both read topic "
                "novagift.access-log"));
}

TEST(Config, KafkaTopicsNameEachInputOnceAndByName) {
  const std::string shipped = SpecPath("novagift.yaml");
  // One input named twice, by its name and by its alias.
  EXPECT_THAT(
      ErrorOf(absl::StrCat("kafka:\n  brokers: k:1\n  topics: {access-log: a, access_log: b}",
                           "\nmetrics: {spec: ", shipped, "}\n")),
      HasSubstr("kafka.topics: \"access_log\" names the same input as \"access-log\""));
  // A pattern would read many topics as one input.
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\n  topics: {outbox: \"^novagift\\\\..*\"}\n"),
              HasSubstr("test.yaml:3:12: kafka.topics: topic ^novagift\\..*: a topic pattern"));
  // Without a spec too, two inputs cannot read one topic.
  EXPECT_THAT(ErrorOf("kafka:\n  brokers: k:1\n  topics: {access_log: t, outbox: t}\n"),
              HasSubstr("test.yaml:3:27: kafka.topics: inputs access_log and outbox would both "
                        "read topic t"));
  // An input whose name has a '_' is named exactly, not through another's alias.
  ScratchDir dir;
  const std::string spec = dir.Path("two.yaml");
  WriteWholeFile(spec, R"(inputs:
  - {name: a-b, format: json, time: ts, fields: {ts: {type: time}}}
  - {name: a_b, format: json, time: ts, fields: {ts: {type: time}}}
metrics:
  - {name: n_total, input: a-b, type: counter, help: n.}
)");
  const Config c = Parsed(
      absl::StrCat("kafka:\n  brokers: k:1\n  topics: {a_b: x}\nmetrics: {spec: ", spec, "}\n"));
  EXPECT_EQ(InputTopics(c), (std::vector<std::string>{"a-b", "x"}));
}

TEST(Config, AMetricSpecThatDoesNotLoadIsAnErrorAtItsKey) {
  ScratchDir dir;
  const std::string spec = dir.Path("bad.yaml");
  WriteWholeFile(spec, "inputs:\n  - name: a\n    bogus: 1\n");
  const std::string e =
      ErrorOf(absl::StrCat("kafka: {brokers: k:1}\nmetrics:\n  spec: ", spec, "\n"));
  EXPECT_THAT(e, HasSubstr("test.yaml:3:9: metrics.spec: " + spec + ":3:5: "));
  EXPECT_THAT(
      ErrorOf(absl::StrCat("kafka: {brokers: k:1}\nmetrics:\n  spec: ", dir.Path("none"), "\n")),
      HasSubstr("test.yaml:3:9: metrics.spec: "));
}

TEST(CheckConfig, RulesMustReadWhatTheMetricSpecDefines) {
  ScratchDir dir;
  const std::string config = dir.Path("novapulse.yaml");
  const std::string rules = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml";
  // The NovaGift rules read NovaGift's metrics: fine with the shipped spec,
  // not with Caddy's.
  WriteWholeFile(config, absl::StrCat(Minimal(), "metrics: {spec: ", SpecPath("novagift.yaml"),
                                      "}\nrules: {files: [", rules, "]}\n"));
  const ProcessResult ok = RunNovapulse({"check-config", config});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  const std::string err = StartupErrors(
      dir, absl::StrCat(Minimal(), "metrics: {spec: ", SpecPath("examples/caddy.yaml"),
                        "}\nrules: {files: [", rules, "]}\n"));
  EXPECT_THAT(err, HasSubstr(config + ": rules.files: " + rules + ":"));
  EXPECT_THAT(err, HasSubstr(" reads http_requests_total, which " +
                             SpecPath("examples/caddy.yaml") + " does not define"));
}

TEST(CheckConfig, AListenAddressInUseFails) {
  ScratchDir dir;
  HeldPort held;
  ASSERT_GT(held.port(), 0);
  const std::string listen = absl::StrCat("127.0.0.1:", held.port());
  const std::string err =
      StartupErrors(dir, absl::StrCat("kafka: {brokers: k:1}\nhttp: {listen: \"", listen, "\"}\n"));
  EXPECT_THAT(err, HasSubstr(dir.Path("novapulse.yaml") + ": http.listen: cannot bind " + listen +
                             ": port in use"));
}

TEST(CheckConfig, AListenAddressRunCannotBindFails) {
  if (testing::ReadWholeFile("/proc/sys/net/ipv4/ip_nonlocal_bind").starts_with("1")) {
    GTEST_SKIP() << "net.ipv4.ip_nonlocal_bind is on: any address binds";
  }
  ScratchDir dir;
  // TEST-NET-1 (RFC 5737): never an address of this machine.
  const std::string err =
      StartupErrors(dir, "kafka: {brokers: k:1}\nhttp: {listen: \"192.0.2.1:9464\"}\n");
  EXPECT_THAT(err, HasSubstr("http.listen: cannot bind 192.0.2.1:9464: "));
  // `run` takes IPv4 literals only.
  EXPECT_THAT(StartupErrors(dir, "kafka: {brokers: k:1}\nhttp: {listen: \"localhost:9464\"}\n"),
              HasSubstr("http.listen: bad listen address \"localhost:9464\": host must be an "
                        "IPv4 address"));
}

TEST(CheckConfig, TlsFilesMustBeReadable) {
  ScratchDir dir;
  const std::string cert = dir.Path("cert.pem");
  const std::string key = dir.Path("key.pem");
  const std::string err = StartupErrors(
      dir, absl::StrCat(
               "kafka: {brokers: k:1}\nhttp:\n  listen: \"127.0.0.1:0\"\n  tls: {cert_file: ", cert,
               ", key_file: ", key, "}\n"));
  EXPECT_THAT(
      err, HasSubstr("http.tls.cert_file: " + cert + ": cannot open: No such file or directory"));
  EXPECT_THAT(err,
              HasSubstr("http.tls.key_file: " + key + ": cannot open: No such file or directory"));
}

TEST(CheckConfig, TheCheckpointDirMustBeCreatable) {
  ScratchDir dir;
  const std::string file = dir.Path("file");
  WriteWholeFile(file, "x");
  std::string err =
      StartupErrors(dir, absl::StrCat(Minimal(), "checkpoint: {dir: ", file, "/state}\n"));
  EXPECT_THAT(err, HasSubstr("checkpoint.dir: cannot create " + file + "/state: " + file +
                             " is not a directory"));
  err = StartupErrors(dir, absl::StrCat(Minimal(), "checkpoint: {dir: ", file, "}\n"));
  EXPECT_THAT(err, HasSubstr("checkpoint.dir: " + file + " is not a directory"));
}

TEST(CheckConfig, TheDeadLetterDirectoryMustExist) {
  ScratchDir dir;
  const std::string path = dir.Path("missing/dead.ndjson");
  std::string err =
      StartupErrors(dir, absl::StrCat(Minimal(), "dead_letter: {path: ", path, "}\n"));
  EXPECT_THAT(err, HasSubstr("dead_letter.path: " + path + ": directory " + dir.Path("missing") +
                             " does not exist"));
  err = StartupErrors(dir, absl::StrCat(Minimal(), "dead_letter: {path: ", dir.path(), "}\n"));
  EXPECT_THAT(err, HasSubstr("dead_letter.path: " + dir.path() + " is a directory"));
}

TEST(CheckConfig, ReportsEveryStartupFailure) {
  ScratchDir dir;
  HeldPort held;
  ASSERT_GT(held.port(), 0);
  const std::string err = StartupErrors(
      dir, absl::StrCat("kafka: {brokers: k:1}\nhttp: {listen: \"127.0.0.1:", held.port(),
                        "\"}\nrules: {files: [", dir.Path("missing.yml"),
                        "]}\ndead_letter: {path: ", dir.Path("no/dead.ndjson"), "}\n"));
  EXPECT_THAT(err, HasSubstr(": rules.files: "));
  EXPECT_THAT(err, HasSubstr(": http.listen: "));
  EXPECT_THAT(err, HasSubstr(": dead_letter.path: "));
}

TEST(CheckConfig, AConfigRunCanStartWithIsOkAndLeavesNoTrace) {
  ScratchDir dir;
  const std::string rules = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml";
  const std::string path = dir.Path("novapulse.yaml");
  WriteWholeFile(path, absl::StrCat(Minimal(), "rules: {files: [", rules, "]}\n",
                                    "checkpoint: {dir: ", dir.Path("state/novapulse"), "}\n",
                                    "dead_letter: {path: ", dir.Path("dead.ndjson"), "}\n"));
  const ProcessResult r = RunNovapulse({"check-config", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(path + ": ok\n"));
  EXPECT_FALSE(std::filesystem::exists(dir.Path("state")));
  EXPECT_FALSE(std::filesystem::exists(dir.Path("dead.ndjson")));
}

TEST(CheckConfig, SyntaxOnlySkipsTheStartupChecks) {
  ScratchDir dir;
  const std::string path = dir.Path("novapulse.yaml");
  WriteWholeFile(path, absl::StrCat(Minimal(), "rules: {files: [", dir.path(), "]}\n"));
  EXPECT_EQ(CheckConfig({path}), 1);
  EXPECT_EQ(CheckConfig({"--syntax-only", path}), 0);
  WriteWholeFile(path, "kafka: {brokers: k:1, nope: 1}\n");
  EXPECT_EQ(CheckConfig({"--syntax-only", path}), 1);
}

}  // namespace
}  // namespace novapulse

namespace novapulse {
namespace {

TEST(Config, RemoteWriteSectionIsValidated) {
  const absl::StatusOr<Config> c = ParseConfig(
      "kafka: {brokers: \"k:1\"}\nremote_write:\n  url: http://127.0.0.1:9090/api/v1/write\n"
      "  interval: 5s\n  max_samples_per_send: 500\n  queue_samples: 5000\n",
      "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->remote_write.url, "http://127.0.0.1:9090/api/v1/write");
  EXPECT_EQ(c->remote_write.interval, absl::Seconds(5));
  EXPECT_EQ(c->remote_write.max_samples_per_send, 500);
  EXPECT_EQ(c->remote_write.queue_samples, 5000);

  auto error = [](std::string_view yaml) {
    const absl::StatusOr<Config> bad = ParseConfig(
        absl::StrCat("kafka: {brokers: \"k:1\"}\nremote_write:\n", std::string(yaml)), "test.yaml");
    return bad.ok() ? std::string() : std::string(bad.status().message());
  };
  EXPECT_THAT(error("  url: https://x/api/v1/write\n"),
              HasSubstr("test.yaml:3:8: remote_write.url: https is not supported"));
  EXPECT_THAT(error("  interval: 5s\n"), HasSubstr("remote_write: missing required key 'url'"));
  EXPECT_THAT(error("  url: http://x/w\n  max_samples_per_send: 100\n  queue_samples: 10\n"),
              HasSubstr("queue_samples must be at least max_samples_per_send"));
  // The URL's password is not shown.
  const absl::StatusOr<Config> secret = ParseConfig(
      "kafka: {brokers: \"k:1\"}\nremote_write:\n  url: http://u:pw@x:9/w\n", "test.yaml");
  ASSERT_TRUE(secret.ok());
  EXPECT_THAT(RedactedSummary(*secret), HasSubstr("remote_write.url: http://<redacted>@x:9/w\n"));
  EXPECT_THAT(RedactedSummary(*secret), ::testing::Not(HasSubstr("pw")));
}

TEST(Config, RemoteWriteExternalLabelsHeadersAndBearerToken) {
  const absl::StatusOr<Config> c = ParseConfig(
      "kafka: {brokers: \"k:1\"}\nremote_write:\n  url: http://x:9/w\n"
      "  external_labels: {cluster: eu1, replica: a}\n"
      "  headers: {X-Scope-OrgID: tenant-1}\n  bearer_token: s3cret\n",
      "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->remote_write.external_labels,
            (std::map<std::string, std::string>{{"cluster", "eu1"}, {"replica", "a"}}));
  EXPECT_EQ(c->remote_write.headers,
            (std::map<std::string, std::string>{{"X-Scope-OrgID", "tenant-1"}}));
  EXPECT_EQ(c->remote_write.bearer_token, "s3cret");
  const std::string summary = RedactedSummary(*c);
  EXPECT_THAT(summary, HasSubstr("remote_write.external_labels.cluster: eu1\n"));
  EXPECT_THAT(summary, HasSubstr("remote_write.headers.X-Scope-OrgID: <redacted>\n"));
  EXPECT_THAT(summary, HasSubstr("remote_write.bearer_token: <redacted>\n"));
  EXPECT_THAT(summary, ::testing::Not(HasSubstr("s3cret")));
  EXPECT_THAT(summary, ::testing::Not(HasSubstr("tenant-1")));

  auto error = [](std::string_view yaml) {
    const absl::StatusOr<Config> bad = ParseConfig(
        absl::StrCat("kafka: {brokers: \"k:1\"}\nremote_write:\n  url: http://u:pw@x:9/w\n",
                     std::string(yaml)),
        "test.yaml");
    return bad.ok() ? std::string() : std::string(bad.status().message());
  };
  EXPECT_THAT(error("  external_labels: {__name__: x}\n"),
              HasSubstr("test.yaml:4:21: remote_write.external_labels.__name__: not a label name"));
  EXPECT_THAT(error("  external_labels: {a-b: x}\n"),
              HasSubstr("remote_write.external_labels.a-b: not a label name"));
  EXPECT_THAT(error("  headers: {Content-Type: text/plain}\n"),
              HasSubstr("remote_write.headers.Content-Type: Content-Type is set by novapulse"));
  EXPECT_THAT(error("  headers: {authorization: Basic x}\n"),
              HasSubstr("Authorization is set by novapulse (use bearer_token"));
  EXPECT_THAT(error("  headers: {\"a b\": x}\n"), HasSubstr("not a header name"));
  EXPECT_THAT(error("  bearer_token: t\n"),
              HasSubstr("set a password in the url or bearer_token, not both"));
}

}  // namespace
}  // namespace novapulse
