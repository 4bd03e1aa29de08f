// api: the HTTP API (CivetWeb) over the store, the renderer and identity.
// May not depend on: libcurl, kube, service (it wakes the reconciler through a callback).
//
// Routes, JSON in and out:
//   POST   /api/customers/signup      {"email","password","company_name"}: with the admin token
//                                      -> 201 (+ tokens), deployed at once; without it, where an
//                                      SMTP relay is configured, -> 202 and a verification link
//                                      by mail, the same answer for every address (else 401)
//   POST   /api/customers/verify      {"token"} -> 201 (+ tokens): the customer is created and
//                                      deployed; single use, expiring
//   POST   /api/customers/login       {"email","password"} -> 200 access and refresh token
//   POST   /api/customers/refresh     {"refresh_token"} -> 200 a new pair; the old one is revoked
//   POST   /api/customers/logout      {"refresh_token"} -> 200; the token is revoked
//   POST   /api/customers/password    {"current_password","new_password"} -> 200 a new pair;
//                                      every other refresh token is revoked          (customer)
//   POST   /api/customers/password/reset          {"email"} -> 202, the same for any address;
//                                      an account's owner gets a link (with an SMTP relay)
//   POST   /api/customers/password/reset/confirm  {"token","new_password"} -> 200; single use
//   GET    /api/customers/{id}/deployment/status    phase, message, components  (admin, customer)
//   POST   /api/customers/{id}/deployment/upgrade   new license and/or values -> 202     (admin)
//   DELETE /api/customers/{id}/deployment           -> 202 suspended: workloads at zero, data
//                                      kept for the retention, restorable               (admin)
//   POST   /api/customers/{id}/deployment/restore   -> 202 the suspended stack back     (admin)
//   DELETE /api/customers/{id}/deployment?purge=true -> 202 a suspended one deleted for good
//                                                                                        (admin)
//   GET    /api/customers/{id}/usage?from=&to=[&format=csv]                  (admin, customer)
//   GET    /api/audit?since=&limit=   the audit trail after the cursor, oldest first      (admin)
//   POST   /api/admin/tokens          {"name"} -> 201 a new named admin token, shown once (admin)
//   GET    /api/admin/tokens          names and times, never a token                      (admin)
//   DELETE /api/admin/tokens/{name}   -> 200 revoked: it opens nothing from the next request
//                                                                                        (admin)
//   GET    /healthz, GET /metrics   (also on the health listener, health_server.h, which the
//                                     probes and Prometheus use)
// "Authorization: Bearer <PROVISIONER_ADMIN_TOKEN>", or a live named admin token ("iotadm_...",
// checked against the store on every request), opens every route; a customer's access token
// (HS256, audience "customer") opens that customer's status and usage only: another id answers
// 404 exactly like an unknown customer, and the admin-only routes answer 401. Signup is
// rate-limited per client address; failed logins are limited per account and per address. Bad input
// gets a 4xx whose JSON {"error": "..."} names the field; handlers never let an exception escape,
// so the service keeps serving. A request whose headers or body arrive too slowly is answered 408
// and its connection closed (ApiOptions::header_timeout_seconds, ApiOptions::body).
// Every state-changing call that reaches a route (audit.h, IsAudited) is appended to the audit
// trail with its credential, client, customer, redacted request and outcome; a 408 or 413 refused
// before routing is not.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <semaphore>
#include <string>
#include <vector>

#include "audit_store.h"
#include "body_deadline.h"
#include "identity.h"
#include "login_throttle.h"
#include "rate_limiter.h"
#include "service_metrics.h"
#include "signup.h"
#include "stack_renderer.h"
#include "store.h"

struct mg_connection;
namespace billing::common {
class CivetServer;  // billing/common/civet_server.h
}  // namespace billing::common

namespace billing::provisioner {

struct ApiOptions {
  std::string listen = "0.0.0.0:3000";  // HOST:PORT; port 0 picks a free port
  std::string admin_token;
  std::string domain_base;
  std::string default_plan = "standard";
  std::int64_t license_validity_seconds = 365LL * 24 * 3600;
  /// How long a deleted (suspended) deployment keeps its data, restorable, before it is purged
  /// (PROVISIONER_DELETE_RETENTION).
  std::int64_t delete_retention_seconds = 7LL * 24 * 3600;
  std::size_t max_body_bytes = 16 * 1024;
  /// The request line and headers must arrive within this (PROVISIONER_HEADER_TIMEOUT). CivetWeb
  /// checks its request timeout between reads that each wait up to that timeout, so it is given
  /// half of this; every read of a body waits at most that half too.
  double header_timeout_seconds = 10;
  /// The body's deadline and minimum rate (PROVISIONER_BODY_TIMEOUT, PROVISIONER_BODY_MIN_RATE).
  BodyLimits body;
  double signup_per_minute = 10;
  double signup_burst = 20;
  /// New deployments (signups) per hour across every client (PROVISIONER_DEPLOYMENTS_PER_HOUR),
  /// as a bucket of this many that refills over the hour: aliases and address hopping cannot make
  /// the platform start more tenant stacks than the cluster was sized for. Over it: 503.
  double deployments_per_hour = 120;
  /// Public signups awaiting verification at once, across every client
  /// (PROVISIONER_MAX_UNVERIFIED_SIGNUPS): the table and the mail they cause stay bounded.
  std::int64_t max_unverified_signups = 1000;
  /// How long a verification link works (PROVISIONER_SIGNUP_VERIFICATION_TTL); after it the
  /// pending signup is gone.
  std::int64_t signup_verification_ttl_seconds = 24 * 3600;
  /// Signup mails (verification links, or "you already have an account") per address and hour.
  int signup_mails_per_hour = 3;
  int threads = 16;
  /// Peers whose X-Forwarded-For is believed (the ingress controllers), for the rate limit.
  std::vector<Network> trusted_proxies;
  /// Password hashes computed at once: each takes 19 MiB for ~50 ms, so this bounds memory.
  int max_concurrent_hashes = 2;
  /// HMAC key of the customers' access tokens (PROVISIONER_TOKEN_KEY_FILE, >= 32 bytes); empty:
  /// logins are refused (503) and signup answers no tokens.
  std::string token_key;
  std::int64_t access_token_ttl_seconds = 15 * 60;
  std::int64_t refresh_token_ttl_seconds = 30LL * 24 * 3600;
  /// Failed logins per account and per client address within the window, then 429.
  std::size_t login_max_failures = 10;
  double login_failure_window_seconds = 15 * 60;
  /// Where customers open links from e-mails (PROVISIONER_PUBLIC_URL), without a trailing '/'.
  std::string public_url;
  std::int64_t password_reset_ttl_seconds = 3600;
  /// Reset links sent per account and hour, at most: the owner of an address is not flooded.
  int password_resets_per_hour = 3;
};

/// An e-mail to a customer, composed by the API and delivered by the service.
struct OutgoingMail {
  std::string to;
  std::string subject;
  std::string text;  // plain text, '\n' line ends
};

/// What the API needs from the rest of the service.
struct ApiDependencies {
  Store& store;
  const StackRenderer& renderer;
  const LicenseSigner& signer;
  ServiceMetrics& metrics;
  std::function<void()> wake_reconciler;
  /// Queues an e-mail; empty when no SMTP relay is configured (password resets answer 503).
  std::function<void(OutgoingMail)> send_mail;
};

class ApiServer {
 public:
  /// Starts listening; throws std::runtime_error naming the address if it cannot.
  ApiServer(ApiOptions options, ApiDependencies dependencies);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  int port() const;

  struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::string extra_headers;  // "Name: value\r\n" lines
  };
  /// Who the request's bearer token says it is (an expired, revoked or forged one is
  /// kAnonymous).
  struct Caller {
    enum class Kind { kAnonymous, kAdmin, kCustomer } kind = Kind::kAnonymous;
    std::string customer_id;  // kCustomer only
    /// As the audit trail names it: "admin:PROVISIONER_ADMIN_TOKEN", "admin:<token name>",
    /// "revoked:<token name>", "customer:<id>", "none" (no Authorization) or "invalid".
    std::string credential = "none";
  };
  struct Request {
    std::string method;
    std::string path;
    std::string query;
    std::string authorization;
    std::string content_type;
    std::string accept;
    std::string client;
    std::string forwarded_for;
    std::string body;
    /// Authenticate's answer, kept so that one request reads the store for its token once and
    /// is judged by the same answer throughout (a revocation meanwhile applies from the next).
    mutable std::optional<Caller> caller;
  };
  /// Routes one request (exposed for tests of the routing without sockets).
  Response Handle(const Request& request, std::string& route);

 private:
  static int HandleConnection(mg_connection* conn, void* self);
  /// Why a request body is refused: 413 too large, 408 too slow (the connection is closed).
  struct BodyRefusal {
    int status;
    std::string message;  // names the field, "body: ..."
  };
  /// Reads the request body into `body` within ApiOptions::body's deadline and minimum rate.
  std::optional<BodyRefusal> ReadBody(mg_connection* conn, std::string& body) const;
  Response Signup(const Request& request);
  /// Public signups are open: an SMTP relay and the public URL of the links are configured.
  bool PublicSignup() const;
  /// A 503 when the platform's deployments per hour are used up (and the slot taken otherwise).
  std::optional<Response> RefuseOverDeploymentCap();
  /// The 503 of a platform-wide signup cap: counted by `reason`, logged with `why`.
  Response SignupsPaused(const std::string& reason, const std::string& why,
                         long long retry_after_seconds);
  /// A public signup: stored awaiting verification and a link mailed; the same 202 for a
  /// registered address, whose owner gets a notice instead.
  Response AwaitVerification(const SignupRequest& signup);
  Response Verify(const Request& request);
  /// A new id, license and generated values for `customer`, rendered once, then stored with
  /// `create` (retried with another id when it is taken); the 201 answer with tokens.
  Response Deploy(NewCustomer customer,
                  const std::function<Store::CreateOutcome(const NewCustomer&)>& create);
  Response Login(const Request& request);
  Response Refresh(const Request& request);
  Response Logout(const Request& request);
  Response ChangePassword(const Request& request);
  Response RequestPasswordReset(const Request& request);
  Response ConfirmPasswordReset(const Request& request);
  /// Runs `work` holding one of the Argon2id slots shared by signup, login and password changes;
  /// false when none frees up in time (the caller answers 503).
  bool WithHashingSlot(const std::function<void()>& work);
  /// A new access token and a new stored refresh token for the customer, as response JSON.
  nlohmann::json IssueTokens(const std::string& customer_id, const std::string& refresh_token);
  Response Status(const std::string& customer_id);
  Response Upgrade(const std::string& customer_id, const Request& request);
  // The steps of Upgrade after ParseUpgradeRequest.
  std::optional<std::string> RefusedValues(const nlohmann::json& overrides) const;
  std::string IssueLicense(const std::string& customer_id, const UpgradeRequest::License& license,
                           Value& values);
  Result<std::string> AcceptLicenseKey(const std::string& customer_id, const std::string& key,
                                       Value& values) const;
  Response RequestUpgrade(const std::string& customer_id, const DeploymentRow& deployment,
                          const nlohmann::ordered_json& values_json,
                          const std::optional<std::string>& new_plan);
  /// DELETE .../deployment suspends (data kept for ApiOptions::delete_retention_seconds);
  /// with ?purge=true, a suspended deployment is deleted for good.
  Response Delete(const std::string& customer_id, const Request& request);
  Response Restore(const std::string& customer_id);
  Response Usage(const std::string& customer_id, const Request& request);
  Response FinalizeUsage(const Request& request);
  /// The usage ledger after the cursor `since` (of one customer, or of all when nullopt), as JSON
  /// or CloudEvents.
  Response Ledger(const Request& request, const std::optional<std::string>& customer_id);
  /// GET /api/audit: the audit trail after the cursor `since`.
  Response AuditTrail(const Request& request);
  /// /api/admin/tokens[/{name}]: create, list and revoke named admin tokens.
  Response AdminTokens(const Request& request, const std::string& name);
  /// Appends the call to the audit trail; a failure is logged and counted, never thrown: the
  /// call's outcome stands, and an entry refused for its content is retried once without it.
  void RecordAudit(const Request& request, const std::string& route, const std::string& credential,
                   const Response& response);
  bool IsAdmin(const Request& request);
  /// Reads the store for a named admin token once per request, then answers from the request's
  /// own copy (its exceptions pass through).
  Caller Authenticate(const Request& request);
  Caller Identify(const Request& request);  // Authenticate's work, uncached

  ApiOptions options_;
  ApiDependencies deps_;
  AuditStore audit_;
  RateLimiter signup_limiter_;
  RateLimiter reset_limiter_;        // password reset requests per client address
  RateLimiter signup_mail_limiter_;  // signup mails per e-mail address
  RateLimiter deployment_limiter_;   // one bucket: deployments started on the whole platform
  std::counting_semaphore<1024> hashing_slots_;
  LoginThrottle login_failures_;
  // Verified against when the e-mail is unknown, so both answers cost one Argon2id run.
  const std::string dummy_password_hash_;
  std::unique_ptr<common::CivetServer> server_;  // last: stopped first, before what it uses
};

}  // namespace billing::provisioner
