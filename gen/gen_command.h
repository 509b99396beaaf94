// `novapulse gen ...`: parses arguments (argv[0] is "gen"), writes files or
// produces to Kafka (paced to wall time), prints a summary.
//   return RunGenCommand(argc - 1, argv + 1);
#ifndef NOVAPULSE_GEN_GEN_COMMAND_H_
#define NOVAPULSE_GEN_GEN_COMMAND_H_

namespace novapulse {

// Returns the process exit status: 0, 1 on an error while generating, 2 on
// a usage error.
int RunGenCommand(int argc, char** argv);

}  // namespace novapulse

#endif  // NOVAPULSE_GEN_GEN_COMMAND_H_
