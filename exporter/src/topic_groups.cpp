#include "topic_groups.h"

#include <regex>

namespace billing::exporter {
namespace {

// Splits off the next level; `rest` becomes what follows the '/', and `done` is set after the last.
std::string_view NextLevel(std::string_view& rest, bool& done) {
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    done = true;
    return rest;
  }
  auto level = rest.substr(0, slash);
  rest.remove_prefix(slash + 1);
  return level;
}

}  // namespace

Status ValidateMqttUrl(const std::string& url) {
  static const std::regex pattern(
      R"(^(tcp|ssl|mqtt|mqtts)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5})(/.*)?$)");
  std::smatch match;
  if (!std::regex_match(url, match, pattern)) {
    if (url.rfind("ws://", 0) == 0 || url.rfind("wss://", 0) == 0) {
      return Error{
          "uses MQTT over WebSockets, which the exporter does not speak; point it at the "
          "broker's MQTT listener (tcp://host:1883 or ssl://host:8883)"};
    }
    if (url.find('@') != std::string::npos) {
      return Error{
          "must not contain credentials; set MQTT_USERNAME and MQTT_PASSWORD (or "
          "mqtt.username/password)"};
    }
    return Error{"'" + url + "' is not a broker address; write tcp://host:1883 or ssl://host:8883"};
  }
  const int port = std::stoi(match[3].str());
  if (port < 1 || port > 65535)
    return Error{"has port " + match[3].str() + ", which is not between 1 and 65535"};
  return Ok();
}

Status ValidateTopicFilter(std::string_view filter) {
  if (filter.empty())
    return Error{"is empty; write a topic filter such as # or devices/+/telemetry"};
  if (filter.size() > 65535) return Error{"is longer than MQTT allows (65535 bytes)"};
  if (filter.find('\0') != std::string_view::npos) return Error{"contains a NUL character"};
  std::string_view rest = filter;
  bool done = false;
  while (!done) {
    const auto level = NextLevel(rest, done);
    if (level.find('#') != std::string_view::npos && (level != "#" || !done)) {
      return Error{"has '#' other than as the whole last level"};
    }
    if (level.find('+') != std::string_view::npos && level != "+") {
      return Error{"has '+' other than as a whole level"};
    }
  }
  return Ok();
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic[0] == '$' && !filter.empty() &&
      (filter[0] == '+' || filter[0] == '#')) {
    return false;
  }
  bool filter_done = false;
  bool topic_done = false;
  while (!filter_done) {
    const auto f = NextLevel(filter, filter_done);
    if (f == "#") return true;  // also matches the parent level ("a/#" matches "a")
    if (topic_done) return false;
    const auto t = NextLevel(topic, topic_done);
    if (f != "+" && f != t) return false;
  }
  return topic_done;
}

std::string_view LeadingLevels(std::string_view topic, std::size_t levels) {
  std::size_t end = 0;
  for (std::size_t seen = 0; seen < levels; ++seen) {
    const auto slash = topic.find('/', end);
    if (slash == std::string_view::npos) return topic;
    end = slash + 1;
  }
  return topic.substr(0, end - 1);
}

}  // namespace billing::exporter
