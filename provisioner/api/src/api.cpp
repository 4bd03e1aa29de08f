#include "api.h"

#include <civetweb.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

#include "billing/common/civet_server.h"
#include "billing/common/compare.h"
#include "billing/common/customer_id.h"
#include "billing/common/log.h"
#include "billing/provisioner/value.h"
#include "signup.h"
#include "upgrade_request.h"
#include "value_json.h"

namespace billing::provisioner {
namespace {

using billing::common::Log;
using billing::common::LogLevel;
using Response = ApiServer::Response;

constexpr int kMaxIdAttempts = 8;

// Invalid UTF-8 (from a path, say) is replaced rather than thrown on.
std::string Dump(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Response Json(int status, const nlohmann::json& body) {
  return {status, "application/json", Dump(body), ""};
}

Response ErrorResponse(int status, const std::string& message) {
  return Json(status, {{"error", message}});
}

std::int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double MonotonicSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// "from=a&to=b" -> value of `name` (percent-decoded), or nullopt.
std::optional<std::string> QueryParameter(const std::string& query, const std::string& name) {
  std::size_t start = 0;
  while (start <= query.size()) {
    const auto end = std::min(query.find('&', start), query.size());
    const auto item = query.substr(start, end - start);
    const auto equals = item.find('=');
    if (item.substr(0, equals) == name) {
      const auto raw = equals == std::string::npos ? std::string() : item.substr(equals + 1);
      std::string decoded(raw.size() + 1, '\0');
      const int n = mg_url_decode(raw.c_str(), static_cast<int>(raw.size()), decoded.data(),
                                  static_cast<int>(decoded.size()), 1);
      if (n < 0) return std::nullopt;
      decoded.resize(static_cast<std::size_t>(n));
      return decoded;
    }
    start = end + 1;
  }
  return std::nullopt;
}

Response UnknownCustomer(const std::string& id) {
  return ErrorResponse(404, "customer_id: no customer \"" + id + "\"");
}

void SetLicenseKey(Value& values, std::string key) {
  Value* license = values.Find("license");
  if (license == nullptr || !license->IsMap()) license = &values.Set("license", Value::EmptyMap());
  license->Set("key", std::move(key));
}

}  // namespace

ApiServer::ApiServer(ApiOptions options, ApiDependencies dependencies)
    : options_(std::move(options)),
      deps_(std::move(dependencies)),
      signup_limiter_(options_.signup_per_minute, options_.signup_burst),
      hashing_slots_(std::clamp(options_.max_concurrent_hashes, 1, 1024)) {
  server_ = std::make_unique<common::CivetServer>(
      common::CivetOptions{options_.listen, options_.threads, 10000, 5000, false, {}},
      std::vector<common::CivetHandler>{{"/", &ApiServer::HandleConnection, this}});
}

ApiServer::~ApiServer() = default;

int ApiServer::port() const { return server_->port(); }

int ApiServer::HandleConnection(mg_connection* conn, void* self_ptr) {
  auto& self = *static_cast<ApiServer*>(self_ptr);
  const auto started = std::chrono::steady_clock::now();
  const mg_request_info* info = mg_get_request_info(conn);
  Request request;
  request.method = info->request_method ? info->request_method : "";
  request.path = info->local_uri ? info->local_uri : "";
  request.query = info->query_string ? info->query_string : "";
  request.client = info->remote_addr;
  auto header = [&](const char* name) {
    const char* value = mg_get_header(conn, name);
    return value ? std::string(value) : std::string();
  };
  request.authorization = header("Authorization");
  request.content_type = header("Content-Type");
  request.accept = header("Accept");
  request.forwarded_for = header("X-Forwarded-For");

  Response response;
  std::string route = "other";
  bool body_too_large = info->content_length > static_cast<long long>(self.options_.max_body_bytes);
  if (!body_too_large) {
    // Read at most one byte past the limit: a body without Content-Length is cut off too.
    std::array<char, 4096> buffer{};
    while (request.body.size() <= self.options_.max_body_bytes) {
      const int n = mg_read(conn, buffer.data(), buffer.size());
      if (n <= 0) break;
      request.body.append(buffer.data(), static_cast<std::size_t>(n));
    }
    body_too_large = request.body.size() > self.options_.max_body_bytes;
  }
  if (body_too_large) {
    response = ErrorResponse(
        413, "body: larger than " + std::to_string(self.options_.max_body_bytes) + " bytes");
    response.extra_headers = "Connection: close\r\n";
  } else {
    try {
      if (request.path.starts_with("/api/")) {
        // CivetWeb's worker threads have small stacks (a compile-time 100-odd KiB), and
        // rendering and validation use std::regex, which recurses per character: API work runs
        // on a thread with the default stack instead.
        response =
            std::async(std::launch::async, [&] { return self.Handle(request, route); }).get();
      } else {
        response = self.Handle(request, route);
      }
    } catch (const std::exception& e) {
      // The store or a library failed: answer, log without the request body, keep serving.
      Log(LogLevel::kError, "api", request.method + " " + route + ": " + e.what());
      response = ErrorResponse(503, "service temporarily unavailable; retry later");
    }
  }
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s\r\n",
            response.status, mg_get_response_code_text(conn, response.status),
            response.content_type.c_str(), response.body.size(), response.extra_headers.c_str());
  if (request.method != "HEAD") mg_write(conn, response.body.data(), response.body.size());
  self.deps_.metrics.ObserveHttp(
      route, request.method, response.status,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  return response.status;
}

bool ApiServer::IsAdmin(const Request& request) const {
  return !options_.admin_token.empty() &&
         common::ConstantTimeEquals(request.authorization, "Bearer " + options_.admin_token);
}

ApiServer::Response ApiServer::Handle(const Request& request, std::string& route) {
  const std::string& path = request.path;
  const std::string& method = request.method;
  auto only = [&](const char* allowed) -> std::optional<Response> {
    if (method == allowed || (std::string(allowed) == "GET" && method == "HEAD")) {
      return std::nullopt;
    }
    auto response = ErrorResponse(405, std::string("method: use ") + allowed);
    response.extra_headers = std::string("Allow: ") + allowed + "\r\n";
    return response;
  };

  if (path == "/healthz") {
    route = "/healthz";
    if (auto refused = only("GET")) return *refused;
    return {200, "text/plain; charset=utf-8", "ok\n", ""};
  }
  if (path == "/metrics") {
    route = "/metrics";
    if (auto refused = only("GET")) return *refused;
    return {200, "text/plain; version=0.0.4; charset=utf-8", deps_.metrics.Serialize(), ""};
  }
  if (path == "/api/customers/signup") {
    route = "/api/customers/signup";
    if (auto refused = only("POST")) return *refused;
    return Signup(request);
  }

  static const std::regex customer_route(
      "/api/customers/([^/]+)/(deployment/status|deployment/upgrade|deployment|usage)");
  std::smatch match;
  if (!std::regex_match(path, match, customer_route)) {
    return ErrorResponse(404, "path: no such endpoint; see the API in README.md");
  }
  const std::string id = match[1];
  const std::string action = match[2];
  route = "/api/customers/{id}/" + action;
  const char* allowed = action == "deployment/upgrade" ? "POST"
                        : action == "deployment"       ? "DELETE"
                                                       : "GET";
  if (auto refused = only(allowed)) return *refused;
  if (!IsAdmin(request)) {
    auto response = ErrorResponse(401, "Authorization: a valid admin bearer token is required");
    response.extra_headers = "WWW-Authenticate: Bearer realm=\"provisioner\"\r\n";
    return response;
  }
  if (!common::IsValidCustomerId(id)) return UnknownCustomer(id);
  if (action == "deployment/status") return Status(id);
  if (action == "deployment/upgrade") return Upgrade(id, request);
  if (action == "deployment") return Delete(id);
  return Usage(id, request);
}

ApiServer::Response ApiServer::Signup(const Request& request) {
  double retry_after = 0;
  const auto client = ClientKey(request.client, request.forwarded_for, options_.trusted_proxies);
  if (!signup_limiter_.Allow(client, MonotonicSeconds(), &retry_after)) {
    auto response = ErrorResponse(429, "too many signups from this address; retry later");
    response.extra_headers =
        "Retry-After: " + std::to_string(static_cast<long long>(retry_after) + 1) + "\r\n";
    return response;
  }
  if (!request.content_type.empty() && request.content_type.rfind("application/json", 0) != 0) {
    return ErrorResponse(415, "Content-Type: send application/json");
  }
  auto parsed = ParseSignupRequest(request.body);
  if (!parsed.ok()) return ErrorResponse(400, parsed.error());
  const SignupRequest& signup = parsed.value();

  const auto now = UnixNow();
  NewCustomer customer;
  customer.email = signup.email;
  customer.company_name = signup.company_name;
  customer.plan = options_.default_plan;
  {
    // Argon2id is memory-hard by design: bound how many hashes run at once.
    if (!hashing_slots_.try_acquire_for(std::chrono::seconds(10))) {
      auto response = ErrorResponse(503, "too many signups in progress; retry shortly");
      response.extra_headers = "Retry-After: 5\r\n";
      return response;
    }
    struct Release {
      std::counting_semaphore<1024>& slots;
      ~Release() { slots.release(); }
    } release{hashing_slots_};
    customer.password_hash = HashPassword(signup.password);
  }
  const auto postgres_password = RandomToken(24);

  for (int attempt = 0; attempt < kMaxIdAttempts; ++attempt) {
    customer.id = MakeCustomerId(signup.company_name, RandomIdSuffix(6));
    const auto license = deps_.signer.Issue(
        {customer.id, customer.plan, now, now + options_.license_validity_seconds});
    customer.chart_values = {
        {"customer",
         {{"id", customer.id}, {"email", customer.email}, {"companyName", customer.company_name}}},
        {"license", {{"key", license}}},
        {"domain", {{"base", options_.domain_base}}},
        {"postgres", {{"password", postgres_password}}}};
    // Render once before storing: values that cannot be deployed are refused now, not later.
    if (auto objects = deps_.renderer.Render(customer.chart_values); !objects.ok()) {
      return ErrorResponse(400, objects.error());
    }
    switch (deps_.store.CreateCustomer(customer)) {
      case Store::CreateOutcome::kEmailTaken:
        return ErrorResponse(409, "email: an account with this address already exists");
      case Store::CreateOutcome::kIdTaken:
        continue;
      case Store::CreateOutcome::kCreated:
        Log(LogLevel::kInfo, "api", "signup: customer " + customer.id + " created");
        if (deps_.wake_reconciler) deps_.wake_reconciler();
        return Json(201, {{"customer_id", customer.id},
                          {"phase", Name(Phase::kPending)},
                          {"status_url", "/api/customers/" + customer.id + "/deployment/status"}});
    }
  }
  throw std::runtime_error("no free customer id after " + std::to_string(kMaxIdAttempts) +
                           " attempts");
}

ApiServer::Response ApiServer::Status(const std::string& customer_id) {
  const auto deployment = deps_.store.Deployment(customer_id);
  if (!deployment) return UnknownCustomer(customer_id);
  nlohmann::json components = nlohmann::json::object();
  for (const auto& [name, component] : deployment->components.items()) {
    components[name] = {{"ready", component.value("ready", false)},
                        {"ready_replicas", component.value("ready_replicas", 0)},
                        {"desired_replicas", component.value("desired_replicas", 0)}};
  }
  return Json(200, {{"customer_id", customer_id},
                    {"phase", Name(deployment->phase)},
                    {"message", deployment->message},
                    {"desired_state", Name(deployment->desired_state)},
                    {"desired_generation", deployment->desired_generation},
                    {"applied_generation", deployment->applied_generation},
                    {"components", components},
                    {"updated_at", deployment->updated_at}});
}

ApiServer::Response ApiServer::Upgrade(const std::string& customer_id, const Request& request) {
  auto parsed = ParseUpgradeRequest(request.body);
  if (!parsed.ok()) return ErrorResponse(400, parsed.error());
  const UpgradeRequest& upgrade = parsed.value();
  const auto deployment = deps_.store.Deployment(customer_id);
  if (!deployment) return UnknownCustomer(customer_id);
  if (deployment->desired_state != DesiredState::kPresent) {
    return ErrorResponse(409, "deployment: " + customer_id + " is deleted or being deleted");
  }

  // Like helm upgrade --reuse-values: the stored values, then the request's on top.
  Value values = FromJson(deployment->chart_values);
  if (upgrade.values) {
    if (auto refused = RefusedValues(*upgrade.values)) return ErrorResponse(400, *refused);
    MergeInto(values, FromJson(nlohmann::ordered_json::parse(upgrade.values->dump())));
  }
  std::optional<std::string> new_plan;
  if (upgrade.license) {
    new_plan = IssueLicense(customer_id, *upgrade.license, values);
  } else if (upgrade.license_key) {
    auto plan = AcceptLicenseKey(customer_id, *upgrade.license_key, values);
    if (!plan.ok()) return ErrorResponse(400, plan.error());
    new_plan = plan.value();
  }
  return RequestUpgrade(customer_id, *deployment, ToJson(values), new_plan);
}

std::optional<std::string> ApiServer::RefusedValues(const nlohmann::json& overrides) const {
  if (auto forbidden = ForbiddenValue(overrides)) return forbidden;
  if (auto unknown = deps_.renderer.UnknownValue(overrides)) {
    return "values." + *unknown + ": the chart has no such value (see its values.yaml)";
  }
  return std::nullopt;
}

std::string ApiServer::IssueLicense(const std::string& customer_id,
                                    const UpgradeRequest::License& license, Value& values) {
  // The stored plan, not the old key's claims: those cannot be read after a key rotation.
  const std::string plan =
      license.plan.value_or(deps_.store.CustomerPlan(customer_id).value_or(options_.default_plan));
  const std::int64_t validity = license.validity_days ? *license.validity_days * 24 * 3600
                                                      : options_.license_validity_seconds;
  const auto now = UnixNow();
  SetLicenseKey(values, deps_.signer.Issue({customer_id, plan, now, now + validity}));
  return plan;
}

Result<std::string> ApiServer::AcceptLicenseKey(const std::string& customer_id,
                                                const std::string& key, Value& values) const {
  auto claims = VerifyLicense(key, deps_.signer.PublicKeyPem());
  if (!claims.ok()) return Error{"license_key: " + claims.error()};
  if (claims.value().customer_id != customer_id) {
    return Error{"license_key: issued for another customer"};
  }
  if (claims.value().expires_at <= UnixNow()) return Error{"license_key: expired"};
  SetLicenseKey(values, key);
  return claims.value().plan;
}

ApiServer::Response ApiServer::RequestUpgrade(const std::string& customer_id,
                                              const DeploymentRow& deployment,
                                              const nlohmann::ordered_json& values_json,
                                              const std::optional<std::string>& new_plan) {
  if (auto objects = deps_.renderer.Render(values_json); !objects.ok()) {
    return ErrorResponse(400, "values: " + objects.error());
  }
  std::int64_t generation = 0;
  switch (deps_.store.RequestUpgrade(customer_id, values_json, deployment.desired_generation,
                                     &generation, new_plan)) {
    case Store::ChangeOutcome::kUnknownCustomer:
      return UnknownCustomer(customer_id);
    case Store::ChangeOutcome::kDeleted:
      return ErrorResponse(409, "deployment: changed concurrently (deleted or upgraded); retry");
    case Store::ChangeOutcome::kAccepted:
      break;
  }
  if (deps_.wake_reconciler) deps_.wake_reconciler();
  return Json(202, {{"customer_id", customer_id},
                    {"desired_generation", generation},
                    {"status_url", "/api/customers/" + customer_id + "/deployment/status"}});
}

ApiServer::Response ApiServer::Delete(const std::string& customer_id) {
  if (deps_.store.RequestDelete(customer_id) == Store::ChangeOutcome::kUnknownCustomer) {
    return UnknownCustomer(customer_id);
  }
  Log(LogLevel::kInfo, "api", "customer " + customer_id + ": deletion requested");
  if (deps_.wake_reconciler) deps_.wake_reconciler();
  return Json(202, {{"customer_id", customer_id},
                    {"phase", Name(Phase::kDeleting)},
                    {"status_url", "/api/customers/" + customer_id + "/deployment/status"}});
}

ApiServer::Response ApiServer::Usage(const std::string& customer_id, const Request& request) {
  const auto from_text = QueryParameter(request.query, "from");
  const auto to_text = QueryParameter(request.query, "to");
  if (!from_text) return ErrorResponse(400, "from: required (RFC 3339 like 2026-11-25T10:00:00Z)");
  if (!to_text) return ErrorResponse(400, "to: required (RFC 3339 like 2026-11-25T11:00:00Z)");
  const auto from = ParseTime(*from_text);
  const auto to = ParseTime(*to_text);
  if (!from) return ErrorResponse(400, "from: not RFC 3339 (2026-11-25T10:00:00Z) or Unix seconds");
  if (!to) return ErrorResponse(400, "to: not RFC 3339 (2026-11-25T11:00:00Z) or Unix seconds");
  if (*to <= *from) return ErrorResponse(400, "to: must be after from");
  if (*to - *from > 400LL * 24 * 3600)
    return ErrorResponse(400, "to: the range is limited to 400 days");
  auto format = QueryParameter(request.query, "format").value_or("");
  if (format.empty())
    format = request.accept.find("text/csv") != std::string::npos ? "csv" : "json";
  if (format != "csv" && format != "json") return ErrorResponse(400, "format: use csv or json");

  const auto records = deps_.store.Usage(customer_id, *from, *to);
  if (records.empty() && !deps_.store.CustomerExists(customer_id)) {
    return UnknownCustomer(customer_id);
  }
  if (format == "csv") return {200, "text/csv; charset=utf-8", ToCsv(records), ""};
  return {200, "application/json", ToJson(records), ""};
}

}  // namespace billing::provisioner
