// ledgerd as one instance of a cluster (docs/CLUSTER.md): the shards it owns
// in the consumer group, the router, the members' table and the front that
// sends every request to its shard's owner. ledgerd.cc runs this instead of
// the single ledger when --instance-id is given.
#pragma once

#include <signal.h>

#include <string>

#include "http/http_server.h"
#include "service/service.h"

namespace billing::ops {

struct ClusterConfig {
  std::string data_dir;
  std::string brokers;
  std::string input_topic;
  std::string group;
  std::string instance_id;
  std::string advertise;
  int shards = 0;
  int standby_replicas = 0;  // --standby-replicas
  int session_timeout_ms = 0;
};

// Runs until one of `signals` arrives; the process's exit status (2 for a
// configuration the cluster refuses, e.g. another shard count).
int RunCluster(const ClusterConfig& config, const api::ServerOptions& server_options,
               api::ServiceOptions service_options, api::AccessLog log, const sigset_t& signals);

}  // namespace billing::ops
