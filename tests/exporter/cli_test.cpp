// The command line: bad input gets a one-line error naming the field and exit
// status 2, for the daemon and --check-config alike; the documented example
// config is valid.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <regex>
#include <set>

#include "testbed.h"

namespace {

using billing::testbed::CommandResult;
using billing::testbed::RunCommand;
using billing::testbed::TempDir;

constexpr const char* kExporter = BILLING_EXPORTER_PATH;
const std::vector<std::pair<std::string, std::string>> kGoodEnv = {
    {"DATABASE_URL", "postgresql://billing:hunter2@127.0.0.1:1/sensors"}};

class CliTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& yaml) {
    const auto path = dir_.path() / ("c" + std::to_string(++n_) + ".yaml");
    std::ofstream(path) << yaml;
    return path.string();
  }
  TempDir dir_;
  int n_ = 0;
};

void ExpectUsageError(const CommandResult& result, const std::string& field) {
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find(field), std::string::npos)
      << "no '" << field << "' in: " << result.output;
  // One line, ending in a newline.
  EXPECT_EQ(std::count(result.output.begin(), result.output.end(), '\n'), 1) << result.output;
  EXPECT_EQ(result.output.find("hunter2"), std::string::npos) << result.output;
}

TEST_F(CliTest, BadConfigFilesNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"postgres: [unclosed", "invalid YAML"},
      {"sample_intervall: 15s", "sample_intervall"},
      {"postgres: {max_table_series: lots}", "postgres.max_table_series"},
      {"sample_interval: 15", "sample_interval"},
      {"postgres: {statement_timeout: 5 seconds}", "postgres.statement_timeout"},
  };
  for (const auto& [yaml, field] : cases) {
    const auto path = Write(yaml);
    for (bool check_only : {true, false}) {
      std::vector<std::string> argv = {kExporter, "--config", path, "--listen", "127.0.0.1:1"};
      if (check_only) argv.push_back("--check-config");
      SCOPED_TRACE(yaml + (check_only ? " (--check-config)" : ""));
      ExpectUsageError(RunCommand(argv, kGoodEnv, std::chrono::seconds(10)), field);
    }
  }
}

TEST_F(CliTest, BadEnvironmentNamesTheVariable) {
  ExpectUsageError(RunCommand({kExporter, "--check-config"},
                              {{"DATABASE_URL", "postgresql://billing:hunter2@host:port/db"}}),
                   "DATABASE_URL");
  ExpectUsageError(
      RunCommand({kExporter, "--check-config"}, {kGoodEnv[0], {"SAMPLE_INTERVAL", "soon"}}),
      "SAMPLE_INTERVAL");
  ExpectUsageError(
      RunCommand({kExporter, "--check-config"}, {kGoodEnv[0], {"CUSTOMER_ID", "Not Valid"}}),
      "CUSTOMER_ID");
  ExpectUsageError(RunCommand({kExporter}, {}), "DATABASE_URL");
}

// --help lists every environment variable the configuration reads (taken from config.cpp, so a
// new variable without a line in the help fails here).
TEST_F(CliTest, HelpListsEveryEnvironmentVariable) {
  std::ifstream in(std::string(BILLING_SOURCE_DIR) + "/exporter/src/config.cpp");
  const std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::regex read(R"re(env\("([A-Z_]+)"\))re");
  std::set<std::string> variables;
  for (auto it = std::sregex_iterator(source.begin(), source.end(), read);
       it != std::sregex_iterator(); ++it) {
    variables.insert((*it)[1].str());
  }
  ASSERT_GE(variables.size(), 8u);
  const auto help = RunCommand({kExporter, "--help"}, {});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  for (const auto& variable : variables) {
    EXPECT_NE(help.output.find(variable), std::string::npos) << variable << "\n" << help.output;
  }
}

TEST_F(CliTest, BadArguments) {
  EXPECT_EQ(RunCommand({kExporter, "--bogus"}, kGoodEnv).exit_code, 2);
  EXPECT_EQ(RunCommand({kExporter, "--listen", "nowhere"}, kGoodEnv).exit_code, 2);
  EXPECT_EQ(RunCommand({kExporter, "--config", (dir_.path() / "missing.yaml").string()}, kGoodEnv)
                .exit_code,
            2);
  // The error names the flag at fault, in either form of the one convention.
  const auto inline_listen = RunCommand({kExporter, "--listen=nowhere"}, kGoodEnv);
  EXPECT_EQ(inline_listen.exit_code, 2);
  EXPECT_NE(inline_listen.output.find("--listen: "), std::string::npos) << inline_listen.output;
  const auto no_path = RunCommand({kExporter, "--config"}, kGoodEnv);
  EXPECT_EQ(no_path.exit_code, 2);
  EXPECT_NE(no_path.output.find("--config needs a file path"), std::string::npos) << no_path.output;
  // A flag is matched whole, not by its prefix.
  const auto prefixed = RunCommand({kExporter, "--configuration", "x.yaml"}, kGoodEnv);
  EXPECT_EQ(prefixed.exit_code, 2);
  EXPECT_NE(prefixed.output.find("unknown argument '--configuration'"), std::string::npos)
      << prefixed.output;
}

TEST_F(CliTest, CheckConfigAcceptsTheDocumentedExample) {
  const std::string example = std::string(BILLING_SOURCE_DIR) + "/exporter/config.example.yaml";
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {kExporter, "--check-config", "--config", example},
           {kExporter, "--check-config", "--config=" + example}}) {
    const auto result = RunCommand(argv, {});
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_EQ(result.output, "config ok\n");
  }
}

TEST_F(CliTest, Version) {
  const auto result = RunCommand({kExporter, "--version"});
  EXPECT_EQ(result.exit_code, 0);
  // "billing-exporter VERSION (revision REV)"; tests/images checks VERSION against the chart.
  EXPECT_TRUE(std::regex_match(
      result.output,
      std::regex(R"(billing-exporter [0-9]+\.[0-9]+\.[0-9]+ \(revision [A-Za-z0-9._-]+\)\n)")))
      << result.output;
}

TEST_F(CliTest, ListenFailureIsReported) {
  // An address this machine does not have (TEST-NET-1): bind fails at once,
  // nothing is sent.
  const auto result =
      RunCommand({kExporter, "--listen", "192.0.2.1:9090"}, kGoodEnv, std::chrono::seconds(10));
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("cannot listen on 192.0.2.1:9090"), std::string::npos)
      << result.output;
}

}  // namespace
