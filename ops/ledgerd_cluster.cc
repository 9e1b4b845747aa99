#include "ops/ledgerd_cluster.h"

#include <cstdio>
#include <cstdlib>

#include "cluster/front.h"
#include "cluster/members.h"
#include "cluster/router.h"
#include "cluster/shard_map.h"
#include "cluster/shard_set.h"
#include "cluster/topics.h"
#include "kafka/kafka_consumer.h"
#include "ops/command_line.h"

namespace billing::ops {

namespace {

// The exit status after a storage failure (ledgerd.cc says why).
constexpr int kExitStorageFailure = 75;

void Say(const std::string& line) { std::fprintf(stderr, "ledgerd: %s\n", line.c_str()); }

// The cluster's topics exist with the partitions this instance expects; an
// error (exit 2) when the shards topic has another count: re-mapping orgs to
// other shards would fork their history.
Status CheckTopics(const ClusterConfig& c) {
  RETURN_IF_ERROR(cluster::EnsureTopic(c.brokers, cluster::ShardsTopic(c.group), c.shards,
                                       cluster::ShardsTopicConfigs(),
                                       cluster::kEnsureTopicTimeoutMsDefault));
  return cluster::EnsureTopic(c.brokers, cluster::MembersTopic(c.group), 1,
                              cluster::MembersTopicConfigs(), cluster::kEnsureTopicTimeoutMsDefault,
                              cluster::PartitionCheck::kAtLeast);
}

}  // namespace

int RunCluster(const ClusterConfig& c, const api::ServerOptions& server_options,
               api::ServiceOptions service_options, api::AccessLog log, const sigset_t& signals) {
  if (Status topics = CheckTopics(c); !topics.ok()) {
    Say("cluster: " + topics.message());
    return kExitUsage;
  }
  api::Metrics metrics;
  cluster::ShardSetOptions set_options;
  set_options.data_dir = c.data_dir;
  set_options.shards = c.shards;
  set_options.brokers = c.brokers;
  set_options.shards_topic = cluster::ShardsTopic(c.group);
  set_options.instance_id = c.instance_id;
  set_options.on_unrecoverable = [](const Status& why) {
    Say(why.message() + "; exiting so that a supervisor restarts it");
    std::fflush(stderr);
    std::_Exit(kExitStorageFailure);
  };
  auto shards = cluster::ShardSet::Create(set_options, metrics);
  if (!shards.ok()) {
    Say("cluster: " + shards.status().ToString());
    return 1;
  }
  auto members = cluster::Members::Start(cluster::MembersOptions{
      .brokers = c.brokers, .group = c.group, .instance_id = c.instance_id});
  if (!members.ok()) {
    Say("cluster: " + members.status().ToString());
    return kExitUsage;
  }
  // The Front exists before the Service that calls it, and is built with it:
  // the Service's ingest and /v1/cluster answers are the Front's.
  cluster::Front* front = nullptr;
  service_options.ingest = [&front](std::vector<ledger::Entry> entries,
                                    const api::HttpRequest& request, api::Respond respond) {
    front->Ingest(std::move(entries), request, std::move(respond));
  };
  service_options.cluster = [&front] { return front->ClusterJson(); };
  service_options.redrive = [&front](int shard, ledger::Entry entry, api::Respond respond) {
    front->Redrive(shard, std::move(entry), std::move(respond));
  };
  api::Service service(**shards, metrics, std::move(service_options));
  cluster::Front front_object(**shards, **members, service, metrics, c.instance_id,
                              c.standby_replicas);
  front = &front_object;

  api::KafkaOptions consumer_options;
  consumer_options.brokers = c.brokers;
  consumer_options.topic = cluster::ShardsTopic(c.group);
  consumer_options.group = c.group;
  consumer_options.session_timeout_ms = c.session_timeout_ms;
  auto consumer = api::KafkaConsumer::Start(consumer_options, **shards, metrics);
  if (!consumer.ok()) {
    Say("cluster: " + consumer.status().ToString());
    return kExitUsage;
  }
  // Standby replicas: a group-less reader of the shards this instance keeps
  // warm (docs/CLUSTER.md, "Standby replicas").
  std::unique_ptr<api::KafkaConsumer> standby;
  if (c.standby_replicas > 0) {
    api::KafkaOptions standby_options = consumer_options;
    standby_options.standby = true;
    auto started = api::KafkaConsumer::Start(standby_options, (*shards)->standby_host(), metrics);
    if (!started.ok()) {
      Say("cluster: " + started.status().ToString());
      return kExitUsage;
    }
    standby = std::move(started).value();
  }
  cluster::RouterOptions router_options;
  router_options.brokers = c.brokers;
  router_options.input_topic = c.input_topic;
  router_options.group = c.group;
  router_options.shards_topic = cluster::ShardsTopic(c.group);
  router_options.shards = c.shards;
  router_options.session_timeout_ms = c.session_timeout_ms;
  auto router = cluster::Router::Start(router_options, metrics);
  if (!router.ok()) {
    Say("cluster: " + router.status().ToString());
    return kExitUsage;
  }

  auto server = api::HttpServer::Start(
      server_options,
      [&front_object](api::HttpRequest&& req, api::Respond respond) {
        front_object.Handle(std::move(req), std::move(respond));
      },
      log, [&service](const api::HttpRequest& head) { return service.CheckHeaders(head); });
  if (!server.ok()) {
    Say(server.status().ToString());
    return 1;
  }
  const std::string listening =
      "http://" + server_options.host + ":" + std::to_string((*server)->port());
  front_object.SetAdvertise(c.advertise.empty() ? listening : c.advertise);
  service.set_ready(true);
  std::printf("listening on %s\n", listening.c_str());
  std::printf("cluster %s: instance %s, %d shards, advertised as %s\n", c.group.c_str(),
              c.instance_id.c_str(), c.shards,
              (c.advertise.empty() ? listening : c.advertise).c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  Say("signal " + std::to_string(sig) + ", stopping");
  service.set_ready(false);
  (*server)->Stop();
  service.StopHeavyWork();
  // Everything that may still answer a request (forwards, ingests waiting
  // for their apply) ends before the server that sends the answers goes.
  front_object.Stop();
  (*router)->Stop();
  if (standby != nullptr) standby->Stop();
  // The consumer writes its last batch while the shards are still open, and
  // releases them (they stop serving) as it leaves the group.
  (*consumer)->Stop();
  (*shards)->Stop();
  (*members)->Stop();
  server->reset();
  Say("stopped cleanly");
  return 0;
}

}  // namespace billing::ops
