// MQTT throughput, side by side on one broker in one run: for rising publish rates, does the
// exporter count every message, and does a plain `mosquitto_sub` receive every message? Reports
// the highest zero-loss rate of each and their ratio, plus CPU per message. QoS 0 (the broker
// does not retry, so a slow subscriber loses messages rather than slowing the publisher).
//
//   build/bench/mqtt_throughput [--seconds-per-step 3] [--max-rate 200000]
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "testbed.h"

namespace {

using namespace billing::testbed;

constexpr int kPublishers = 3;
using namespace std::chrono_literals;

double ExporterCount(const ExporterProcess& exporter) {
  double total = 0;
  for (const auto& s : FindAll(exporter.Scrape(), "iotistic_mqtt_messages_total")) total += s.value;
  return total;
}

std::size_t Lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  return static_cast<std::size_t>(std::count(std::istreambuf_iterator<char>(in), {}, '\n'));
}

}  // namespace

int main(int argc, char** argv) {
  double seconds_per_step = 3;
  double max_rate = 200000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--seconds-per-step")
      seconds_per_step = std::stod(argv[i + 1]);
    else if (flag == "--max-rate")
      max_rate = std::stod(argv[i + 1]);
  }
  MosquittoServer broker(1);
  TempDir dir;
  ExporterProcess exporter(BILLING_EXPORTER_PATH, {},
                           {{"MQTT_URL", broker.Url()}, {"SAMPLE_INTERVAL", "250ms"}});
  if (!exporter.WaitHealthy() ||
      !WaitFor([&] { return FindValue(exporter.Scrape(), "iotistic_mqtt_up") == 1.0; }, 30s)) {
    std::cerr << "exporter did not connect\n" << exporter.process().Log();
    return 1;
  }

  std::printf("%10s %10s %12s %12s %16s %16s\n", "target/s", "sent/s", "plain sub", "exporter",
              "plain us/msg", "exporter us/msg");
  double plain_best = 0, exporter_best = 0, last_exporter_total = ExporterCount(exporter);
  for (double rate = 10000; rate <= max_rate; rate *= 1.5) {
    const long messages = static_cast<long>(rate * seconds_per_step);
    const auto out = dir.path() / ("sub-" + std::to_string(static_cast<long>(rate)) + ".txt");
    Process sub({.argv = {"mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()),
                          "-q", "0", "-t", "devices/#"},
                 .env = {},
                 .unset_env = {},
                 .log_path = out,
                 .run_as_user = std::nullopt});
    // Subscribed when the broker counts three subscriptions: the exporter's two and this one.
    WaitFor(
        [&] { return FindValue(exporter.Scrape(), "iotistic_mqtt_broker_subscriptions") >= 3.0; },
        10s);
    const double sub_cpu0 = ProcessCpuSeconds(sub.pid());
    const double exp_cpu0 = ProcessCpuSeconds(exporter.process().pid());

    // Several simulators in parallel: one Paho publisher alone tops out below the broker's rate.
    std::vector<std::unique_ptr<Process>> publishers;
    for (int p = 0; p < kPublishers; ++p) {
      publishers.push_back(std::make_unique<Process>(Process::Options{
          .argv = {BILLING_SIMULATOR_PATH, "--url", broker.Url(), "--devices", "500", "--messages",
                   std::to_string(messages / kPublishers), "--rate",
                   std::to_string(rate / kPublishers), "--qos", "0", "--payload-max", "200",
                   "--client-id", "bench-publisher-" + std::to_string(p), "--seed",
                   std::to_string(p + 1)},
          .env = {},
          .unset_env = {},
          .log_path = dir.path() / ("pub-" + std::to_string(static_cast<long>(rate)) + "-" +
                                    std::to_string(p) + ".txt"),
          .run_as_user = std::nullopt}));
    }
    long sent = 0;
    double sent_rate = 0;
    for (auto& publisher : publishers) {
      const auto code = publisher->Wait(300s);
      std::smatch m;
      const std::string log = publisher->Log();
      if (code != 0 ||
          !std::regex_search(log, m, std::regex(R"re("messages":(\d+).*"rate":([0-9.]+))re"))) {
        std::cerr << "simulator failed: " << log;
        return 1;
      }
      sent += std::stol(m[1]);
      sent_rate += std::stod(m[2]);
    }
    // Both have until these waits end to catch up; what they have then is what they got.
    WaitFor(
        [&] { return ExporterCount(exporter) - last_exporter_total >= static_cast<double>(sent); },
        20s);
    WaitFor([&] { return Lines(out) >= static_cast<std::size_t>(sent); }, 20s);
    const double sub_cpu = ProcessCpuSeconds(sub.pid()) - sub_cpu0;
    const double exp_cpu = ProcessCpuSeconds(exporter.process().pid()) - exp_cpu0;
    sub.Stop(SIGTERM);
    const double exporter_total = ExporterCount(exporter);
    const double exporter_got = exporter_total - last_exporter_total;
    last_exporter_total = exporter_total;
    const double plain_got = static_cast<double>(Lines(out));
    std::printf("%10.0f %10.0f %11.2f%% %11.2f%% %16.2f %16.2f\n", rate, sent_rate,
                100 * plain_got / sent, 100 * exporter_got / sent, 1e6 * sub_cpu / sent,
                1e6 * exp_cpu / sent);
    std::fflush(stdout);
    if (plain_got == static_cast<double>(sent)) plain_best = std::max(plain_best, sent_rate);
    if (exporter_got == static_cast<double>(sent))
      exporter_best = std::max(exporter_best, sent_rate);
    if (sent_rate < rate * 0.9) break;  // the publisher's own limit: higher targets mean nothing
  }
  std::printf(
      "\nhighest zero-loss rate: plain mosquitto_sub %.0f/s, billing-exporter %.0f/s, ratio %.3f\n",
      plain_best, exporter_best, plain_best > 0 ? exporter_best / plain_best : 0.0);
  return 0;
}
