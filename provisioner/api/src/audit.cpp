#include "audit.h"

#include <algorithm>
#include <array>

namespace billing::provisioner {
namespace {

// PostgreSQL's jsonb has no NUL character: one is stored as U+FFFD, so that no request can keep
// itself out of the trail by making its entry fail.
std::string WithoutNul(std::string text) {
  for (auto at = text.find('\0'); at != std::string::npos; at = text.find('\0', at)) {
    text.replace(at, 1, "\xEF\xBF\xBD");
  }
  return text;
}

// Deeper than any request of the API, and far from PostgreSQL's own limit on nesting (its JSON
// parser recurses and stops at max_stack_depth): a body nested deeper cannot fail the row.
constexpr int kMaxRecordedDepth = 32;
constexpr char kTooDeep[] = "[nested too deep]";

nlohmann::json Redacted(const nlohmann::json& json, int depth) {
  if ((json.is_object() || json.is_array()) && depth >= kMaxRecordedDepth) return kTooDeep;
  if (json.is_object()) {
    nlohmann::json object = nlohmann::json::object();
    for (const auto& [key, value] : json.items()) {
      object[WithoutNul(key)] =
          IsSecretName(key) ? nlohmann::json(kRedacted) : Redacted(value, depth + 1);
    }
    return object;
  }
  if (json.is_array()) {
    nlohmann::json array = nlohmann::json::array();
    for (const auto& element : json) array.push_back(Redacted(element, depth + 1));
    return array;
  }
  if (json.is_string()) return WithoutNul(json.get<std::string>());
  return json;
}

// "%41b" -> "Ab"; '+' is a space. A malformed escape is kept as it is.
std::string PercentDecoded(std::string_view text) {
  std::string decoded;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto hex = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
      decoded += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      decoded += text[i] == '+' ? ' ' : text[i];
    }
  }
  return decoded;
}

}  // namespace

bool IsSecretName(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  constexpr std::array<std::string_view, 6> kSecretWords = {"password", "token", "secret",
                                                            "key",      "hash",  "credential"};
  for (const auto word : kSecretWords) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

nlohmann::json RedactedRequest(std::string_view query, std::string_view body) {
  nlohmann::json request = nlohmann::json::object();
  nlohmann::json parameters = nlohmann::json::object();
  std::size_t start = 0;
  while (start < query.size()) {
    const auto end = std::min(query.find('&', start), query.size());
    const auto pair = query.substr(start, end - start);
    const auto equals = pair.find('=');
    const auto name = PercentDecoded(pair.substr(0, equals));
    const auto value =
        equals == std::string_view::npos ? std::string() : PercentDecoded(pair.substr(equals + 1));
    if (!name.empty()) {
      parameters[WithoutNul(name)] = IsSecretName(name) ? kRedacted : WithoutNul(value);
    }
    start = end + 1;
  }
  if (!parameters.empty()) request["query"] = std::move(parameters);
  if (!body.empty()) {
    const auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_discarded()) {
      request["body_bytes"] = body.size();
    } else {
      request["body"] = Redacted(json, 0);
    }
  }
  return request;
}

bool IsStateChanging(std::string_view method, std::string_view path) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS" && path.starts_with("/api/");
}

bool IsAudited(std::string_view method, std::string_view route, int status,
               std::string_view credential) {
  if (!IsStateChanging(method, route) || status == 429) return false;
  const bool anonymous = credential == "none" || credential == "invalid";
  return !anonymous || status < 400;
}

std::string AuditedClient(std::string_view peer, std::string_view forwarded_for) {
  constexpr std::size_t kMaxForwardedForBytes = 256;
  std::string client(peer);
  if (!forwarded_for.empty()) {
    client += " (X-Forwarded-For: ";
    client += forwarded_for.substr(0, kMaxForwardedForBytes);
    client += ")";
  }
  // Whatever the header holds, the row is valid text (PostgreSQL refuses invalid UTF-8, and a
  // refused row would keep the call out of the trail): printable ASCII, anything else as '?'.
  for (char& c : client) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return client;
}

}  // namespace billing::provisioner
