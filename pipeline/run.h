// `novapulse run --config FILE`: the Kafka consumer service. Loads the
// config, consumes the access-log and outbox topics in the consumer group
// through the same oneTBB pipeline shape as replay (serial Kafka batch input
// -> parallel parse + aggregate into the worker's shard -> serial in-order
// offset store), and serves /metrics, /healthz and /readyz. SIGTERM or SIGINT
// stops fetching, finishes the batches in flight, commits their offsets and
// leaves the group.
//
// Runs on the calling (main) thread, which owns the process's signal
// handling for SIGTERM and SIGINT while it runs.
//   return RunServiceCommand(argc - 1, argv + 1);
#ifndef NOVAPULSE_PIPELINE_RUN_H_
#define NOVAPULSE_PIPELINE_RUN_H_

namespace novapulse {

// 0 after a clean shutdown, 1 on a start-up or runtime error, 2 on a usage
// error.
int RunServiceCommand(int argc, char** argv);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_RUN_H_
