// The exporter's listener with a web configuration file (--web.config.file): HTTPS through
// Debian's CivetWeb 1.15 and OpenSSL 3, scraped by libcurl verifying the server's certificate
// against a CA made here; bcrypt basic-auth users; client certificates; and the configuration
// errors that must stop the exporter before it serves. Certificates are made with the openssl
// command line tool, bcrypt hashes with python3-bcrypt (not the libcrypt the exporter uses).
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "testbed.h"

namespace billing::testbed {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kExporter = BILLING_EXPORTER_PATH;
// bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)) with python3-bcrypt.
const std::string kHash = "$2b$04$AZ3RAEMUfptKmRP/gqliROdw6jHc0X7.3ALTJlx6pOQTo.LU34z2y";

void Write(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

void Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto result = RunCommand(argv);
  ASSERT_EQ(result.exit_code, 0) << result.output;
}

// A CA, and a certificate it signed for `cn` (with subjectAltName when given).
struct Pki {
  fs::path dir;
  void MakeCa(const std::string& name) {
    Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", (dir / (name + ".key")).string(), "-out", (dir / (name + ".pem")).string(),
             "-subj", "/CN=" + name, "-days", "2"});
  }
  void MakeCert(const std::string& name, const std::string& ca, const std::string& san) {
    const auto key = (dir / (name + ".key")).string();
    const auto csr = (dir / (name + ".csr")).string();
    Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=" + name});
    const auto ext = dir / (name + ".ext");
    Write(ext, san.empty() ? "basicConstraints=CA:FALSE\n" : "subjectAltName=" + san + "\n");
    Openssl({"x509", "-req", "-in", csr, "-CA", (dir / (ca + ".pem")).string(), "-CAkey",
             (dir / (ca + ".key")).string(), "-CAcreateserial", "-out",
             (dir / (name + ".pem")).string(), "-days", "2", "-extfile", ext.string()});
  }
  std::string Pem(const std::string& name) const { return (dir / (name + ".pem")).string(); }
  std::string Key(const std::string& name) const { return (dir / (name + ".key")).string(); }
};

struct Answer {
  long status = 0;  // 0: no HTTP answer (TLS refused, connection failed)
  std::string body;
  std::string error;
};

struct Request {
  std::string url;
  std::string ca_file;  // verify the server against this CA (always verified)
  std::string user_password;
  std::string client_cert;
  std::string client_key;
};

Request MakeRequest(std::string url, std::string ca_file, std::string user_password = "",
                    std::string client_cert = "", std::string client_key = "") {
  Request request;
  request.url = std::move(url);
  request.ca_file = std::move(ca_file);
  request.user_password = std::move(user_password);
  request.client_cert = std::move(client_cert);
  request.client_key = std::move(client_key);
  return request;
}

size_t Collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

Answer Get(const Request& request) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  Answer answer;
  curl_easy_setopt(curl.get(), CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, Collect);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &answer.body);
  curl_easy_setopt(curl.get(), CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_SSL_VERIFYHOST, 2L);
  if (!request.ca_file.empty())
    curl_easy_setopt(curl.get(), CURLOPT_CAINFO, request.ca_file.c_str());
  if (!request.user_password.empty()) {
    curl_easy_setopt(curl.get(), CURLOPT_USERPWD, request.user_password.c_str());
  }
  if (!request.client_cert.empty()) {
    curl_easy_setopt(curl.get(), CURLOPT_SSLCERT, request.client_cert.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_SSLKEY, request.client_key.c_str());
  }
  const CURLcode code = curl_easy_perform(curl.get());
  if (code == CURLE_OK) {
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &answer.status);
  } else {
    answer.error = curl_easy_strerror(code);
  }
  return answer;
}

class WebTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_.dir = dir_.path();
    pki_.MakeCa("server-ca");
    pki_.MakeCert("server", "server-ca", "IP:127.0.0.1,DNS:localhost");
    pki_.MakeCa("client-ca");
    pki_.MakeCert("client", "client-ca", "");
    pki_.MakeCa("rogue-ca");
    pki_.MakeCert("rogue-client", "rogue-ca", "");
    pki_.MakeCert("rogue-server", "rogue-ca", "IP:127.0.0.1");
  }

  std::string WebConfig(const std::string& extra_tls = "", bool users = true) {
    std::string text = "tls_server_config:\n  cert_file: " + pki_.Pem("server") +
                       "\n  key_file: " + pki_.Key("server") + "\n" + extra_tls;
    if (users) text += "basic_auth_users:\n  prometheus: '" + kHash + "'\n";
    const auto path = dir_.path() / ("web-" + std::to_string(++configs_) + ".yml");
    Write(path, text);
    return path.string();
  }

  std::unique_ptr<Process> Start(const std::string& web_config, int port) {
    return std::make_unique<Process>(Process::Options{
        .argv = {kExporter, "--listen", "127.0.0.1:" + std::to_string(port), "--web.config.file",
                 web_config},
        // Something to collect (unreachable: the page still has the exporter's own series).
        .env = {{"MQTT_URL", "tcp://127.0.0.1:1"}},
        .unset_env = {"DATABASE_URL", "CUSTOMER_ID", "WEB_CONFIG_FILE"},
        .log_path = dir_.path() / ("exporter-" + std::to_string(port) + ".log"),
        .run_as_user = std::nullopt});
  }

  // Waits until the listener answers a verified HTTPS request at all (any status).
  bool WaitServing(const std::string& url, Process& exporter, Request request) {
    request.url = url;
    return WaitFor([&] { return !exporter.Running() || Get(request).status != 0; }, 20s) &&
           exporter.Running();
  }

  TempDir dir_{"web-tls"};
  Pki pki_;
  int configs_ = 0;
};

TEST_F(WebTlsTest, ServesHttpsThatVerifiesAndRequiresTheBcryptUser) {
  const int port = FreePort();
  auto exporter = Start(WebConfig(), port);
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/metrics";
  ASSERT_TRUE(WaitServing(url, *exporter, MakeRequest("", pki_.Pem("server-ca"))))
      << exporter->Log();

  // Verified against the CA, with the right password: the page.
  const auto ok = Get(MakeRequest(url, pki_.Pem("server-ca"), "prometheus:correct horse"));
  EXPECT_EQ(ok.status, 200) << ok.error;
  EXPECT_NE(ok.body.find("iotistic_exporter_build_info"), std::string::npos) << ok.body;
  // Many scrapes in a row (the remembered header) keep working.
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Get(MakeRequest(url, pki_.Pem("server-ca"), "prometheus:correct horse")).status, 200);
  }

  // No credentials, a wrong password, an unknown user: 401.
  EXPECT_EQ(Get(MakeRequest(url, pki_.Pem("server-ca"))).status, 401);
  EXPECT_EQ(Get(MakeRequest(url, pki_.Pem("server-ca"), "prometheus:correct horsE")).status, 401);
  EXPECT_EQ(Get(MakeRequest(url, pki_.Pem("server-ca"), "grafana:correct horse")).status, 401);
  // /healthz stays open for the kubelet's probes.
  EXPECT_EQ(Get(MakeRequest("https://127.0.0.1:" + std::to_string(port) + "/healthz",
                            pki_.Pem("server-ca")))
                .status,
            200);

  // A client that trusts another CA refuses the server: the certificate is really checked.
  const auto rogue = Get(MakeRequest(url, pki_.Pem("rogue-ca"), "prometheus:correct horse"));
  EXPECT_EQ(rogue.status, 0);
  EXPECT_FALSE(rogue.error.empty());
  // Plain HTTP on the HTTPS port gets no HTTP answer.
  EXPECT_EQ(Get(MakeRequest("http://127.0.0.1:" + std::to_string(port) + "/metrics", "",
                            "prometheus:correct horse"))
                .status,
            0);
  EXPECT_TRUE(exporter->Running()) << exporter->Log();
}

TEST_F(WebTlsTest, ClientCertificatesAreVerifiedWhenRequired) {
  const int port = FreePort();
  auto exporter = Start(WebConfig("  client_auth_type: RequireAndVerifyClientCert\n"
                                  "  client_ca_file: " +
                                      pki_.Pem("client-ca") + "\n",
                                  /*users=*/false),
                        port);
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/metrics";
  const Request with_client =
      MakeRequest(url, pki_.Pem("server-ca"), "", pki_.Pem("client"), pki_.Key("client"));
  ASSERT_TRUE(WaitServing(url, *exporter, with_client)) << exporter->Log();
  EXPECT_EQ(Get(with_client).status, 200);
  EXPECT_EQ(Get(MakeRequest(url, pki_.Pem("server-ca"))).status, 0)
      << "no client certificate must be refused";
  EXPECT_EQ(Get(MakeRequest(url, pki_.Pem("server-ca"), "", pki_.Pem("rogue-client"),
                            pki_.Key("rogue-client")))
                .status,
            0)
      << "a client certificate from another CA must be refused";
  EXPECT_TRUE(exporter->Running()) << exporter->Log();
}

TEST_F(WebTlsTest, ABadWebConfigStopsTheExporterNamingTheField) {
  struct Case {
    std::string config;
    std::string says;
  };
  const std::vector<Case> cases = {
      // The key of another certificate.
      {"tls_server_config:\n  cert_file: " + pki_.Pem("server") +
           "\n  key_file: " + pki_.Key("rogue-server") + "\n",
       "tls_server_config.key_file"},
      {"tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: " + pki_.Key("server") +
           "\n",
       "tls_server_config.cert_file"},
      {"tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [X]\n",
       "tls_server_config.cipher_suites"},
      {"basic_auth_users:\n  prometheus: not-a-hash\n", "basic_auth_users.prometheus"},
  };
  for (const auto& c : cases) {
    const auto path = dir_.path() / "bad.yml";
    Write(path, c.config);
    Process exporter({.argv = {kExporter, "--listen", "127.0.0.1:" + std::to_string(FreePort()),
                               "--web.config.file", path.string()},
                      .env = {{"MQTT_URL", "tcp://127.0.0.1:1"}},
                      .unset_env = {"DATABASE_URL", "CUSTOMER_ID", "WEB_CONFIG_FILE"},
                      .log_path = dir_.path() / "bad.log",
                      .run_as_user = std::nullopt});
    const auto code = exporter.Wait(20s);
    ASSERT_TRUE(code.has_value()) << c.config << "\n" << exporter.Log();
    EXPECT_NE(*code, 0) << c.config;
    EXPECT_NE(exporter.Log().find(c.says), std::string::npos) << exporter.Log();
  }
  // --check-config reads the web config too.
  const auto path = dir_.path() / "bad.yml";
  Write(path, "basic_auth_users:\n  prometheus: not-a-hash\n");
  const auto check = RunCommand({kExporter, "--check-config", "--web.config.file", path.string()},
                                {{"MQTT_URL", "tcp://127.0.0.1:1"}});
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_NE(check.output.find("basic_auth_users.prometheus"), std::string::npos) << check.output;
}

}  // namespace
}  // namespace billing::testbed
