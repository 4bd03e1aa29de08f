// Proves the test harness against the real services: every suite in the project relies on it, so a
// harness bug must show up here rather than as a mysterious failure elsewhere.
#include "testbed.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace billing::testbed {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' not found in:\n" << text;
}

// Owns a socket or file descriptor opened by a test.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  return addr;
}

bool Connects(int port) {
  const ScopedFd fd(socket(AF_INET, SOCK_STREAM, 0));
  const sockaddr_in addr = Loopback(port);
  return connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

std::string GzipCompress(const std::string& data) {
  z_stream stream{};
  // 16 + MAX_WBITS: a gzip wrapper, as an HTTP server's Content-Encoding: gzip has.
  if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&stream, data.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

Process::Options Shell(const TempDir& dir, const std::string& script) {
  Process::Options options;
  options.argv = {"sh", "-c", script};
  options.log_path = dir.path() / "process.log";
  return options;
}

// True when `pid` no longer runs: gone, or a zombie waiting for whoever inherited it.
bool ProcessGone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  if (!std::getline(stat, text)) return true;
  const auto paren = text.rfind(") ");
  return paren != std::string::npos && text.compare(paren + 2, 1, "Z") == 0;
}

// ---------------------------------------------------------------------------------------------
// Utilities

TEST(TempDirTest, CreatesADirectoryAndRemovesItWithItsContents) {
  fs::path path;
  {
    const TempDir dir("testbed-test");
    path = dir.path();
    ASSERT_TRUE(fs::is_directory(path));
    EXPECT_TRUE(Contains(path.filename().string(), "testbed-test-"));
    fs::create_directories(path / "a" / "b");
    std::ofstream(path / "a" / "b" / "file") << "content";
    ASSERT_TRUE(fs::exists(path / "a" / "b" / "file"));
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(FreePortTest, ReturnsABindablePort) {
  const int port = FreePort();
  ASSERT_GT(port, 0);
  ASSERT_LT(port, 65536);
  const ScopedFd fd(socket(AF_INET, SOCK_STREAM, 0));
  const sockaddr_in addr = Loopback(port);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
      << std::strerror(errno);
  EXPECT_EQ(listen(fd.get(), 1), 0);
  EXPECT_TRUE(Connects(port));
}

TEST(FreePortTest, DoesNotRepeatARecentPort) {
  const int first = FreePort();
  EXPECT_NE(FreePort(), first);
}

TEST(WaitForTest, ReturnsTrueOnceTheConditionHolds) {
  int calls = 0;
  EXPECT_TRUE(WaitFor([&] { return ++calls >= 3; }, seconds(5), milliseconds(1)));
  EXPECT_EQ(calls, 3);
}

TEST(WaitForTest, ReturnsFalseWhenTheTimeoutPasses) {
  int calls = 0;
  const auto start = Clock::now();
  EXPECT_FALSE(WaitFor(
      [&] {
        ++calls;
        return false;
      },
      milliseconds(100), milliseconds(10)));
  EXPECT_GE(Clock::now() - start, milliseconds(100));
  EXPECT_GE(calls, 2);  // polled, and looked once more at the deadline
}

// ---------------------------------------------------------------------------------------------
// Process and RunCommand

TEST(ProcessTest, WritesStdoutAndStderrToTheLog) {
  const TempDir dir;
  Process process(Shell(dir, "echo to-stdout; echo to-stderr >&2"));
  ASSERT_EQ(process.Wait(seconds(10)), 0);
  EXPECT_EQ(process.Log(), "to-stdout\nto-stderr\n");
  EXPECT_EQ(process.log_path(), dir.path() / "process.log");
}

TEST(ProcessTest, AppendsToAnExistingLog) {
  const TempDir dir;
  std::ofstream(dir.path() / "process.log") << "earlier\n";
  Process process(Shell(dir, "echo later"));
  ASSERT_EQ(process.Wait(seconds(10)), 0);
  EXPECT_EQ(process.Log(), "earlier\nlater\n");
}

TEST(ProcessTest, WaitReturnsTheExitCode) {
  const TempDir dir;
  Process process(Shell(dir, "exit 3"));
  EXPECT_EQ(process.Wait(seconds(10)), 3);
  EXPECT_FALSE(process.Running());
  EXPECT_EQ(process.Wait(milliseconds(0)), 3);  // remembered after reaping
}

TEST(ProcessTest, WaitReportsAFatalSignalAs128PlusTheSignal) {
  const TempDir dir;
  Process process(Shell(dir, "kill -9 $$"));
  EXPECT_EQ(process.Wait(seconds(10)), 128 + SIGKILL);
}

TEST(ProcessTest, WaitTimesOutWhileTheProcessRuns) {
  const TempDir dir;
  Process process(Shell(dir, "exec sleep 30"));
  EXPECT_EQ(process.Wait(milliseconds(100)), std::nullopt);
  EXPECT_TRUE(process.Running());
}

TEST(ProcessTest, StopDeliversTheSignalAndReturnsTheWaitStatus) {
  const TempDir dir;
  Process process(Shell(dir, "exec sleep 30"));
  ASSERT_TRUE(process.Running());
  const int status = process.Stop(SIGTERM);
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_FALSE(process.Running());
  EXPECT_EQ(process.Stop(SIGTERM), -1);  // already reaped
  EXPECT_EQ(process.Wait(milliseconds(0)), 128 + SIGTERM);
}

TEST(ProcessTest, StopReturnsTheStatusOfAGracefulExit) {
  const TempDir dir;
  Process process(Shell(dir, "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"));
  // The trap must be installed before the signal is sent.
  ASSERT_TRUE(WaitFor([&] { return process.Log() == "ready\n"; }, seconds(10)));
  const int status = process.Stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 7);
}

TEST(ProcessTest, StopEscalatesToSigkillAfterTheTimeout) {
  const TempDir dir;
  Process process(Shell(dir, "trap '' TERM; echo ready; exec sleep 30"));
  ASSERT_TRUE(WaitFor([&] { return process.Log() == "ready\n"; }, seconds(10)));
  const auto start = Clock::now();
  const int status = process.Stop(SIGTERM, milliseconds(200));
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_LT(Clock::now() - start, seconds(10));
}

TEST(ProcessTest, AppliesEnvironmentAdditionsOverridesAndRemovals) {
  ASSERT_NE(std::getenv("PATH"),
            nullptr);  // or removing it would prove nothing
  const TempDir dir;
  Process::Options options;
  options.argv = {"env"};
  options.log_path = dir.path() / "env.log";
  options.env = {{"TESTBED_ADDED", "yes"}, {"HOME", "/overridden"}};
  options.unset_env = {"PATH"};
  Process process(std::move(options));
  ASSERT_EQ(process.Wait(seconds(10)), 0) << process.Log();
  std::istringstream log(process.Log());
  std::vector<std::string> homes;
  bool added = false;
  bool path = false;
  for (std::string line; std::getline(log, line);) {
    if (line.rfind("HOME=", 0) == 0) homes.push_back(line);
    added = added || line == "TESTBED_ADDED=yes";
    path = path || line.rfind("PATH=", 0) == 0;
  }
  EXPECT_EQ(homes, std::vector<std::string>{"HOME=/overridden"});
  EXPECT_TRUE(added);
  EXPECT_FALSE(path);
}

TEST(ProcessTest, RedirectsStdinFromDevNullAndClosesInheritedDescriptors) {
  const TempDir dir;
  // Not close-on-exec on purpose: the harness itself must keep it from the child.
  const ScopedFd inherited(fcntl(ScopedFd(open("/dev/null", O_RDONLY)).get(), F_DUPFD, 200));
  ASSERT_GE(inherited.get(), 200);
  const std::string fd = std::to_string(inherited.get());
  Process process(Shell(dir, "if [ -e /proc/self/fd/" + fd +
                                 " ]; then echo leaked; else echo closed; fi; "
                                 "/usr/bin/readlink /proc/self/fd/0"));
  ASSERT_EQ(process.Wait(seconds(10)), 0) << process.Log();
  EXPECT_EQ(process.Log(), "closed\n/dev/null\n");
}

TEST(ProcessTest, RunsInItsOwnProcessGroup) {
  const TempDir dir;
  Process process(Shell(dir, "exec sleep 30"));
  EXPECT_EQ(getpgid(process.pid()), process.pid());
  EXPECT_NE(getpgid(process.pid()), getpgrp());
}

TEST(ProcessTest, DestructorKillsTheChildAndItsProcessGroup) {
  const TempDir dir;
  pid_t pid = -1;
  pid_t grandchild = -1;
  {
    Process process(Shell(dir, "sleep 30 & echo $!; wait"));
    ASSERT_TRUE(WaitFor([&] { return !process.Log().empty(); }, seconds(10)));
    pid = process.pid();
    grandchild = std::stoi(process.Log());
    ASSERT_EQ(kill(pid, 0), 0);
    ASSERT_FALSE(ProcessGone(grandchild));
  }
  EXPECT_EQ(kill(pid, 0), -1);  // reaped, not a zombie
  EXPECT_EQ(errno, ESRCH);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(grandchild); }, seconds(10)));
}

TEST(ProcessTest, ThrowsWhenTheProgramCannotBeStarted) {
  const TempDir dir;
  Process::Options missing;
  missing.argv = {"testbed-no-such-program"};
  missing.log_path = dir.path() / "missing.log";
  EXPECT_THROW(Process{missing}, std::runtime_error);
  Process::Options not_executable;
  not_executable.argv = {"/dev/null"};  // found, but exec fails in the child
  not_executable.log_path = dir.path() / "not-executable.log";
  try {
    Process process(not_executable);
    ADD_FAILURE() << "started /dev/null";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(Contains(e.what(), "exec"));
  }
}

TEST(ProcessTest, RunsAsAnotherUserWhenRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "run_as_user needs root";
  const passwd* postgres = getpwnam("postgres");
  ASSERT_NE(postgres, nullptr);
  const std::string home = postgres->pw_dir;
  const TempDir dir;
  Process::Options options = Shell(dir, "id -un; echo \"$HOME\"; pwd");
  options.run_as_user = "postgres";
  Process process(std::move(options));
  ASSERT_EQ(process.Wait(seconds(10)), 0) << process.Log();
  EXPECT_EQ(process.Log(), "postgres\n" + home + "\n/\n");
}

TEST(RunCommandTest, ReturnsTheExitCodeAndCombinedOutput) {
  const CommandResult result = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 5"});
  EXPECT_EQ(result.exit_code, 5);
  EXPECT_EQ(result.output, "out\nerr\n");
}

TEST(RunCommandTest, PassesTheEnvironment) {
  const CommandResult result =
      RunCommand({"sh", "-c", "echo \"$TESTBED_VALUE\""}, {{"TESTBED_VALUE", "forty two"}});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output, "forty two\n");
}

TEST(RunCommandTest, KillsTheCommandOnTimeout) {
  const auto start = Clock::now();
  const CommandResult result = RunCommand({"sleep", "30"}, {}, milliseconds(200));
  EXPECT_EQ(result.exit_code, -1);
  EXPECT_TRUE(Contains(result.output, "timed out"));
  EXPECT_LT(Clock::now() - start, seconds(10));
}

// ---------------------------------------------------------------------------------------------
// Metrics text, gzip, HTTP

TEST(ParseMetricsTextTest, SkipsCommentsAndBlankLines) {
  const auto samples = ParseMetricsText(
      "# HELP a_total Things.\n"
      "# TYPE a_total counter\n"
      "\n"
      "   \n"
      "a_total 3\n"
      "  # an indented comment\n"
      "b:ratio 4\n");
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].name, "a_total");
  EXPECT_TRUE(samples[0].labels.empty());
  EXPECT_EQ(samples[0].value, 3);
  EXPECT_EQ(samples[1].name, "b:ratio");
  EXPECT_EQ(samples[1].value, 4);
  EXPECT_TRUE(ParseMetricsText("").empty());
}

TEST(ParseMetricsTextTest, ParsesLabelsAndUnescapesTheirValues) {
  const auto samples = ParseMetricsText(
      R"(m{path="C:\\dir",quote="say \"hi\"",nl="a\nb",empty=""} 3
m2{ a = "1" , } 4
m3{a="x"}5
)");
  ASSERT_EQ(samples.size(), 3u);
  const std::map<std::string, std::string> expected = {
      {"path", "C:\\dir"}, {"quote", "say \"hi\""}, {"nl", "a\nb"}, {"empty", ""}};
  EXPECT_EQ(samples[0].labels, expected);
  EXPECT_EQ(samples[0].value, 3);
  EXPECT_EQ(samples[1].labels, (std::map<std::string, std::string>{{"a", "1"}}));
  EXPECT_EQ(samples[1].value, 4);
  EXPECT_EQ(samples[2].labels, (std::map<std::string, std::string>{{"a", "x"}}));
  EXPECT_EQ(samples[2].value, 5);
}

TEST(ParseMetricsTextTest, ParsesSpecialValuesAndTimestamps) {
  const auto samples = ParseMetricsText(
      "a 1e+06\n"
      "b NaN\n"
      "c +Inf\n"
      "d -Inf\n"
      "e -0.25 1700000000000\n"
      "f{le=\"+Inf\"} 7 -5\n"
      "g 42\r\n"
      "h\t5");  // tab separator, no final newline
  ASSERT_EQ(samples.size(), 8u);
  EXPECT_EQ(samples[0].value, 1e6);
  EXPECT_TRUE(std::isnan(samples[1].value));
  EXPECT_EQ(samples[2].value, std::numeric_limits<double>::infinity());
  EXPECT_EQ(samples[3].value, -std::numeric_limits<double>::infinity());
  EXPECT_EQ(samples[4].value, -0.25);
  EXPECT_EQ(samples[5].labels.at("le"), "+Inf");
  EXPECT_EQ(samples[5].value, 7);
  EXPECT_EQ(samples[6].name, "g");
  EXPECT_EQ(samples[6].value, 42);
  EXPECT_EQ(samples[7].name, "h");
  EXPECT_EQ(samples[7].value, 5);
}

TEST(ParseMetricsTextTest, ThrowsOnMalformedLinesNamingTheLine) {
  const std::vector<std::string> malformed = {
      "no_value",          "name not_a_number", "name 1e+06x",    "name 1 not_a_timestamp",
      "name 1 2 3",        "name-x 1",          R"({a="1"} 1)",   R"(name{a="1" 1)",
      R"(name{a="1} 1)",   R"(name{a="\t"} 1)", R"(name{a=1} 1)", R"(name{a="1",a="2"} 1)",
      R"(name{1a="x"} 1)", R"(name{a="1"})",
  };
  for (const auto& line : malformed) {
    SCOPED_TRACE(line);
    try {
      ParseMetricsText("fine 1\n" + line + "\n");
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_TRUE(Contains(e.what(), "line 2"));
      EXPECT_TRUE(Contains(e.what(), line));
    }
  }
}

TEST(FindValueTest, MatchesByNameAndLabelSubset) {
  const auto samples = ParseMetricsText(
      "x{a=\"1\",b=\"2\"} 10\n"
      "x{a=\"1\",b=\"3\"} 20\n"
      "y 5\n");
  EXPECT_EQ(FindValue(samples, "y"), 5);
  EXPECT_EQ(FindValue(samples, "x", {{"b", "3"}}), 20);
  EXPECT_EQ(FindValue(samples, "x", {{"a", "1"}, {"b", "2"}}), 10);
  EXPECT_EQ(FindValue(samples, "x", {{"a", "2"}}), std::nullopt);
  EXPECT_EQ(FindValue(samples, "missing"), std::nullopt);
  EXPECT_EQ(FindAll(samples, "x").size(), 2u);
  EXPECT_EQ(FindAll(samples, "x", {{"b", "2"}}).size(), 1u);
  EXPECT_TRUE(FindAll(samples, "x", {{"c", "1"}}).empty());
  // Two samples match: there is no "the one" value.
  EXPECT_THROW(FindValue(samples, "x", {{"a", "1"}}), std::runtime_error);
}

TEST(GunzipTest, RoundTripsZlibGzipOutput) {
  std::mt19937 random(42);
  std::string input;
  for (int i = 0; i < 200000; ++i) input += static_cast<char>(random() % 7 == 0 ? random() : 'a');
  EXPECT_EQ(Gunzip(GzipCompress(input)), input);
  EXPECT_EQ(Gunzip(GzipCompress("")), "");
  // RFC 1952: members back to back decompress to the concatenation.
  EXPECT_EQ(Gunzip(GzipCompress("first,") + GzipCompress("second")), "first,second");
}

TEST(GunzipTest, ThrowsOnInvalidOrTruncatedInput) {
  EXPECT_THROW(Gunzip(""), std::runtime_error);
  EXPECT_THROW(Gunzip("plain text, not gzip"), std::runtime_error);
  const std::string compressed = GzipCompress(std::string(10000, 'x') + "tail");
  EXPECT_THROW(Gunzip(compressed.substr(0, compressed.size() / 2)), std::runtime_error);
  EXPECT_THROW(Gunzip(compressed.substr(0, compressed.size() - 1)), std::runtime_error);
  std::string corrupted = compressed;
  corrupted[corrupted.size() - 6] ^= 0x55;  // inside the CRC-32 trailer
  EXPECT_THROW(Gunzip(corrupted), std::runtime_error);
  EXPECT_THROW(Gunzip(compressed + "junk"), std::runtime_error);
}

TEST(HttpGetTest, ReportsAConnectionFailureAsStatusZero) {
  const HttpResponse response =
      HttpGet("http://127.0.0.1:" + std::to_string(FreePort()) + "/", {}, seconds(5));
  EXPECT_EQ(response.status, 0);
  EXPECT_FALSE(response.error.empty());
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

// One cluster for the read-mostly tests: initdb takes seconds.
class PostgresServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      server_ = std::make_unique<PostgresServer>();
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }
  static void TearDownTestSuite() { server_.reset(); }
  void SetUp() override { ASSERT_NE(server_, nullptr) << error_; }

  static inline std::unique_ptr<PostgresServer> server_;
  static inline std::string error_;
};

TEST_F(PostgresServerTest, StartsAndAnswersPsql) {
  EXPECT_TRUE(server_->running());
  EXPECT_GT(server_->port(), 0);
  EXPECT_EQ(server_->user(), "postgres");
  EXPECT_FALSE(server_->password().empty());
  EXPECT_EQ(server_->Psql("select 1"), "1");
  EXPECT_EQ(server_->Psql("select 1, 'a'; select 2"), "1|a\n2");
  EXPECT_EQ(server_->Psql("select generate_series(1, 3)"), "1\n2\n3");
  EXPECT_EQ(server_->Psql("create temporary table t(x int); insert into t values (1)"), "");
}

TEST_F(PostgresServerTest, ListensOnItsPortOnly) {
  EXPECT_TRUE(Connects(server_->port()));
  EXPECT_EQ(server_->Psql("show listen_addresses"), "127.0.0.1");
  EXPECT_EQ(server_->Psql("show port"), std::to_string(server_->port()));
}

TEST_F(PostgresServerTest, PsqlThrowsOnAnErrorAndStopsThere) {
  try {
    server_->Psql("select * from testbed_missing_table");
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(Contains(e.what(), "testbed_missing_table"));
  }
  EXPECT_THROW(server_->Psql("select 1/0; create table testbed_after_error(x int)"),
               std::runtime_error);
  EXPECT_EQ(server_->Psql("select to_regclass('testbed_after_error') is null"), "t");
}

TEST_F(PostgresServerTest, UrlAuthenticatesWithThePasswordOverTcp) {
  const std::string url = server_->Url();
  EXPECT_EQ(url, "postgresql://postgres:" + server_->password() +
                     "@127.0.0.1:" + std::to_string(server_->port()) + "/postgres");
  const CommandResult result =
      RunCommand({"psql", url, "-X", "-At", "-c", "select 1"}, {{"PGCONNECT_TIMEOUT", "10"}});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "1\n");
}

TEST_F(PostgresServerTest, RejectsAWrongPassword) {
  const std::string url =
      "postgresql://postgres:wrong-password@127.0.0.1:" + std::to_string(server_->port()) +
      "/postgres";
  const CommandResult result = RunCommand({"psql", url, "-X", "-At", "-c", "select 1"},
                                          {{"PGPASSWORD", ""}, {"PGCONNECT_TIMEOUT", "10"}});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_TRUE(Contains(result.output, "password authentication failed"));
}

TEST_F(PostgresServerTest, CreateDatabaseMakesItReachable) {
  server_->CreateDatabase("testbed_db");
  EXPECT_EQ(server_->Psql("select current_database()", "testbed_db"), "testbed_db");
  const CommandResult result = RunCommand(
      {"psql", server_->Url("testbed_db"), "-X", "-At", "-c", "select current_database()"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "testbed_db\n");
  EXPECT_THROW(server_->CreateDatabase("testbed_db"), std::runtime_error);
}

TEST(PostgresServerRestartTest, StopRefusesConnectionsAndStartKeepsTheData) {
  PostgresServer server;
  const int port = server.port();
  server.Psql("create table kept(x int); insert into kept values (42)");

  server.Stop();
  EXPECT_FALSE(server.running());
  EXPECT_FALSE(Connects(port));
  EXPECT_THROW(server.Psql("select 1"), std::runtime_error);
  server.Stop();  // idempotent
  EXPECT_FALSE(server.running());

  server.Start();
  EXPECT_TRUE(server.running());
  EXPECT_EQ(server.port(), port);
  EXPECT_TRUE(Connects(port));
  EXPECT_EQ(server.Psql("select x from kept"), "42");
  server.Start();  // idempotent
  const CommandResult result =
      RunCommand({"psql", server.Url(), "-X", "-At", "-c", "select count(*) from kept"});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_EQ(result.output, "1\n");
}

// ---------------------------------------------------------------------------------------------
// Mosquitto

CommandResult Publish(int port, const std::string& topic, const std::string& message,
                      bool retain = false) {
  std::vector<std::string> argv = {
      "mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(port), "-t", topic, "-m", message};
  if (retain) argv.push_back("-r");
  return RunCommand(argv, {}, seconds(10));
}

CommandResult SubscribeOnce(int port, const std::string& topic, bool verbose = false) {
  std::vector<std::string> argv = {"mosquitto_sub",
                                   "-h",
                                   "127.0.0.1",
                                   "-p",
                                   std::to_string(port),
                                   "-t",
                                   topic,
                                   "-C",
                                   "1",
                                   "-W",
                                   "5"};
  if (verbose) argv.push_back("-v");
  return RunCommand(argv, {}, seconds(15));
}

TEST(MosquittoServerTest, DeliversAPublishToASubscriber) {
  MosquittoServer broker;
  EXPECT_TRUE(broker.running());
  EXPECT_EQ(broker.Url(), "tcp://127.0.0.1:" + std::to_string(broker.port()));
  const TempDir dir;
  Process::Options options;
  options.argv = {"mosquitto_sub",
                  "-h",
                  "127.0.0.1",
                  "-p",
                  std::to_string(broker.port()),
                  "-t",
                  "testbed/topic",
                  "-C",
                  "1",
                  "-W",
                  "10"};
  options.log_path = dir.path() / "sub.log";
  Process subscriber(std::move(options));
  // Whether the subscription is in place yet is unknown: publish until the subscriber has its
  // message (-C 1 makes it exit then).
  ASSERT_TRUE(WaitFor(
      [&] {
        const CommandResult published = Publish(broker.port(), "testbed/topic", "hello-mqtt");
        EXPECT_EQ(published.exit_code, 0) << published.output;
        return subscriber.Wait(milliseconds(200)).has_value();
      },
      seconds(15), milliseconds(0)));
  EXPECT_EQ(subscriber.Wait(milliseconds(0)), 0) << subscriber.Log();
  EXPECT_EQ(subscriber.Log(), "hello-mqtt\n");
}

TEST(MosquittoServerTest, PublishesSysTopics) {
  MosquittoServer broker(1);
  const CommandResult result = SubscribeOnce(broker.port(), "$SYS/broker/uptime", true);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(Contains(result.output, "$SYS/broker/uptime "));
  EXPECT_TRUE(Contains(result.output, "seconds"));
}

TEST(MosquittoServerTest, StopRefusesConnectionsAndStartReusesThePort) {
  MosquittoServer broker;
  const int port = broker.port();
  broker.Stop();
  EXPECT_FALSE(broker.running());
  EXPECT_FALSE(Connects(port));
  EXPECT_NE(Publish(port, "testbed/topic", "nobody listens").exit_code, 0);
  broker.Stop();  // idempotent

  broker.Start();
  EXPECT_TRUE(broker.running());
  EXPECT_EQ(broker.port(), port);
  EXPECT_TRUE(Connects(port));
  // Retained, so the subscriber gets it whenever it connects.
  const CommandResult published = Publish(port, "testbed/retained", "after-restart", true);
  ASSERT_EQ(published.exit_code, 0) << published.output;
  const CommandResult received = SubscribeOnce(port, "testbed/retained");
  EXPECT_EQ(received.exit_code, 0) << received.output;
  EXPECT_EQ(received.output, "after-restart\n");
}

// ---------------------------------------------------------------------------------------------
// Prometheus and the exporter process

TEST(ExporterProcessTest, RunsTheBinaryWithListenAddressArgumentsAndEnvironment) {
  const std::string value = "a \"quoted\" \\ value";
  ExporterProcess exporter(BILLING_FAKE_EXPORTER, {"--one", "--two"},
                           {{"FAKE_EXPORTER_VALUE", value}});
  EXPECT_EQ(exporter.BaseUrl(), "http://127.0.0.1:" + std::to_string(exporter.port()));
  ASSERT_TRUE(exporter.WaitHealthy()) << exporter.process().Log();
  const auto samples = exporter.Scrape();
  EXPECT_EQ(FindValue(samples, "fake_up"), 1);
  EXPECT_EQ(FindValue(samples, "fake_extra_args"), 2);
  EXPECT_EQ(FindValue(samples, "fake_env", {{"value", value}}), 1);

  const int status = exporter.Stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(Contains(exporter.process().Log(), "fake_exporter: stopped"));
  EXPECT_TRUE(exporter.Scrape().empty());
}

TEST(ExporterProcessTest, WaitHealthyReturnsFalseEarlyWhenTheProcessExits) {
  ExporterProcess exporter("false", {}, {});
  const auto start = Clock::now();
  EXPECT_FALSE(exporter.WaitHealthy(seconds(20)));
  EXPECT_LT(Clock::now() - start, seconds(10));
  EXPECT_FALSE(exporter.process().Running());
}

TEST(PrometheusServerTest, AnswersQueriesAndScrapesItsTargets) {
  ExporterProcess target(BILLING_FAKE_EXPORTER, {}, {});
  ASSERT_TRUE(target.WaitHealthy()) << target.process().Log();
  PrometheusServer prometheus({"127.0.0.1:" + std::to_string(target.port())});
  EXPECT_EQ(prometheus.Url(), "http://127.0.0.1:" + std::to_string(prometheus.port()));
  EXPECT_TRUE(Contains(prometheus.Query("up"), "\"status\":\"success\""));
  // Braces, quotes and '=' in the query exercise the URL encoding; the series appears after the
  // first scrape of job "billing".
  std::string body;
  EXPECT_TRUE(WaitFor(
      [&] {
        body = prometheus.Query("fake_up{job=\"billing\"} == 1");
        return body.find("\"__name__\":\"fake_up\"") != std::string::npos;
      },
      seconds(30), milliseconds(200)))
      << body;
  EXPECT_TRUE(Contains(prometheus.Query("sum("), "\"status\":\"error\""));
}

TEST(PrometheusServerTest, HttpGetKeepsGzipBodiesAndLowerCasesHeaders) {
  PrometheusServer prometheus({});
  const HttpResponse gzipped = HttpGet(prometheus.Url() + "/metrics", {"Accept-Encoding: gzip"});
  ASSERT_EQ(gzipped.status, 200) << gzipped.error;
  EXPECT_EQ(gzipped.headers.count("content-type"), 1u);
  ASSERT_EQ(gzipped.headers.count("content-encoding"), 1u);
  EXPECT_EQ(gzipped.headers.at("content-encoding"), "gzip");
  ASSERT_GE(gzipped.body.size(), 2u);
  EXPECT_EQ(gzipped.body.substr(0, 2), "\x1f\x8b");
  const auto samples = ParseMetricsText(Gunzip(gzipped.body));
  EXPECT_EQ(FindAll(samples, "prometheus_build_info").size(), 1u);

  const HttpResponse plain = HttpGet(prometheus.Url() + "/metrics");
  ASSERT_EQ(plain.status, 200) << plain.error;
  EXPECT_EQ(plain.headers.count("content-encoding"), 0u);
  EXPECT_FALSE(FindAll(ParseMetricsText(plain.body), "prometheus_build_info").empty());
}

}  // namespace
}  // namespace billing::testbed
