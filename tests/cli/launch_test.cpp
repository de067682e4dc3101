// Data-parallel runs as separate processes over localhost: `metadistill launch`, and ranks started
// by hand with torchrun's variables (train/data_parallel.h, DESIGN.md 3.9).
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/train/trainer.h"
#include "metadistill/util/files.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::describe;
using metadistill::testing::run_cli;
using metadistill::testing::spawn_cli;
using metadistill::testing::TempDir;
using metadistill::testing::wait_exit;

namespace {

// The paper's synthetic data (15 training rows: full batches split 7 + 8), a small teacher.
const char* kConfig = R"(preset: dp
threads: 1
data: {name: synthetic, variant: reference, val_is_test: true}
teacher:
  model: logreg
  train: {epochs: 2000, batch_size: 0, lr: 0.01, lr_step: 0, eval_every: 1000, checkpoint_every: 0}
student:
  model: mlp
  train: {epochs: 60, batch_size: 0, lr: 0.5, lr_step: 0, eval_every: 20, checkpoint_every: 20}
method:
  settings: {val_temperature: 0.1, gamma: 0.1}
)";

// Sets torchrun's variables for the processes started while it lives.
class RankEnvironment {
 public:
  RankEnvironment(int rank, int world_size, int port, double timeout) {
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("WORLD_SIZE", std::to_string(world_size).c_str(), 1);
    ::setenv("METADISTILL_DIST_TIMEOUT", std::to_string(timeout).c_str(), 1);
  }
  void rank(int r) { ::setenv("RANK", std::to_string(r).c_str(), 1); }
  ~RankEnvironment() {
    for (const char* v : {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE",
                          "METADISTILL_DIST_TIMEOUT"})
      ::unsetenv(v);
  }
};

class Launch : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = (dir_ / "dp.yaml").string();
    write_file_atomic(config_, kConfig);
    // One teacher for every run of the test.
    const auto r = run_cli({"train-teacher", config_, "--out", out(""), "-q"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string out(const std::string& name) const { return (dir_ / name).string(); }
  nlohmann::json result(const std::string& name, const std::string& run) const {
    return nlohmann::json::parse(read_file(dir_ / name / "distill" / run / "result.json"));
  }

  TempDir dir_{"launch"};
  std::string config_;
};

}  // namespace

// Two processes launched on this machine train the one-process student: the same final λ and
// accuracy, with the gradient method moving λ.
TEST_F(Launch, IntegrationTwoRanksGiveTheOneProcessRun) {
  const std::vector<std::string> distill = {"distill", config_, "--out", out(""), "--method",
                                            "gradient", "-q"};
  auto one = distill;
  one.insert(one.end(), {"--seed", "1"});
  const auto a = run_cli(one);
  ASSERT_EQ(a.exit_code, 0) << describe(one, a);
  std::vector<std::string> two = {"launch", "--nproc", "2", "--"};
  two.insert(two.end(), distill.begin(), distill.end());
  two.insert(two.end(), {"--seed", "2"});
  auto b = run_cli(two);
  ASSERT_EQ(b.exit_code, 0) << describe(two, b);
  EXPECT_TRUE(contains_all(b.out, {"data parallel: 2 ranks"})) << describe(two, b);
  // Seed 2 as one process, to compare with the two ranks of seed 2.
  auto c_args = distill;
  c_args[3] = out("single");
  c_args.insert(c_args.end(), {"--seed", "2"});
  fs::create_directories(dir_ / "single");
  fs::copy_file(dir_ / "teacher.pt", dir_ / "single" / "teacher.pt");
  const auto c = run_cli(c_args);
  ASSERT_EQ(c.exit_code, 0) << describe(c_args, c);
  const auto ranks = result("", "gradient-seed2"), single = result("single", "gradient-seed2");
  EXPECT_NEAR(ranks["final"]["lambda1"].get<double>(), single["final"]["lambda1"].get<double>(),
              1e-5);
  EXPECT_NEAR(ranks["final"]["temperature"].get<double>(),
              single["final"]["temperature"].get<double>(), 1e-5);
  EXPECT_NE(single["final"]["lambda1"].get<double>(), single["initial"]["lambda1"].get<double>());
  EXPECT_DOUBLE_EQ(ranks["final_test_accuracy"].get<double>(),
                   single["final_test_accuracy"].get<double>());
  EXPECT_EQ(ranks["steps"], 60);
}

// One multi-layer run (`distill` with a multi-layer config) on two launched ranks: the VID terms
// and the learned pair weights and β of the one-process run (the fd hypergradient in float32,
// stepped by meta_lr 1000, agrees to about 2e-5).
TEST_F(Launch, IntegrationMultiLayerRunOnTwoRanksGivesTheOneProcessRun) {
  const std::string config = out("ml.yaml");
  write_file_atomic(config, R"(preset: dp-ml
threads: 1
data: {name: synthetic, variant: reference, val_is_test: true}
teacher:
  model: mlp
  train: {epochs: 200, batch_size: 0, lr: 0.1, lr_step: 0, eval_every: 100, checkpoint_every: 0}
student:
  model: mlp
  train: {epochs: 30, batch_size: 0, lr: 0.5, lr_step: 0, eval_every: 10, checkpoint_every: 10}
multilayer:
  methods: [all-pairs-fd]
  teacher_taps: [hidden]
  student_taps: [hidden, logits]
  meta_lr: 1000
)");
  const std::vector<std::string> teacher = {"train-teacher", config, "--out", out("ml-one"), "-q"};
  const auto t = run_cli(teacher);
  ASSERT_EQ(t.exit_code, 0) << describe(teacher, t);
  fs::create_directories(dir_ / "ml-two");
  fs::copy_file(dir_ / "ml-one" / "teacher.pt", dir_ / "ml-two" / "teacher.pt");
  const std::vector<std::string> one = {"distill", config, "--out", out("ml-one"), "-q"};
  const auto a = run_cli(one);
  ASSERT_EQ(a.exit_code, 0) << describe(one, a);
  const std::vector<std::string> two = {"launch", "--nproc", "2", "--", "distill", config,
                                        "--out", out("ml-two"), "-q"};
  const auto b = run_cli(two);
  ASSERT_EQ(b.exit_code, 0) << describe(two, b);
  EXPECT_TRUE(contains_all(b.out, {"data parallel: 2 ranks", "full batch", "all-pairs-fd"}))
      << describe(two, b);
  auto read = [&](const std::string& name) {
    return nlohmann::json::parse(
        read_file(dir_ / name / "distill" / "all-pairs-fd-seed0" / "result.json"))["result"];
  };
  const auto single = read("ml-one"), ranks = read("ml-two");
  EXPECT_EQ(ranks["steps"], 30);
  EXPECT_EQ(ranks["hyper_steps"], 30);
  EXPECT_NEAR(ranks["beta"].get<double>(), single["beta"].get<double>(), 1e-4);
  const auto lr = ranks["lambda"].get<std::vector<double>>();
  const auto ls = single["lambda"].get<std::vector<double>>();
  ASSERT_EQ(lr.size(), 2u);
  ASSERT_EQ(ls.size(), 2u);
  for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(lr[i], ls[i], 1e-4) << i;
  EXPECT_GT(std::abs(ls[0] - 0.5), 0.1);  // the weights compared moved
  EXPECT_DOUBLE_EQ(ranks["final_test_accuracy"].get<double>(),
                   single["final_test_accuracy"].get<double>());
}

// A search on two launched ranks: rank 0 holds the study, rank 1 trains the trials it is sent and
// delivers their files into rank 0's folder. The random sampler's draws depend on the trial
// number only, so the study is the one-process study: the same trials, values and best.
TEST_F(Launch, IntegrationSearchRanksShareTheTrialsAndGiveTheOneProcessStudy) {
  const std::vector<std::string> search = {"search", config_, "--sampler", "random", "--trials",
                                           "6", "--no-retrain", "-q"};
  auto one = search;
  one.insert(one.end(), {"--out", out("one")});
  fs::create_directories(dir_ / "one");
  fs::copy_file(dir_ / "teacher.pt", dir_ / "one" / "teacher.pt");
  const auto a = run_cli(one);
  ASSERT_EQ(a.exit_code, 0) << describe(one, a);
  std::vector<std::string> two = {"launch", "--nproc", "2", "--"};
  two.insert(two.end(), search.begin(), search.end());
  two.insert(two.end(), {"--out", out("")});
  const auto b = run_cli(two);
  ASSERT_EQ(b.exit_code, 0) << describe(two, b);
  EXPECT_TRUE(contains_all(b.out, {"6 complete", "best: trial"})) << describe(two, b);
  // Rank 1 trained some of the trials: their files came through the store, with its trial.json.
  int remote = 0;
  for (int n = 0; n < 6; ++n) {
    const fs::path trial = dir_ / "search" / "random" / ("trial-" + std::to_string(n));
    EXPECT_TRUE(fs::exists(trial / "result.json")) << trial;
    remote += fs::exists(trial / "trial.json") ? 1 : 0;
  }
  EXPECT_GT(remote, 0);
  EXPECT_LT(remote, 6);
  auto best_line = [](const std::string& text) {
    const auto at = text.find("best: trial");
    return at == std::string::npos ? std::string() : text.substr(at, text.find('\n', at) - at);
  };
  EXPECT_EQ(best_line(a.out), best_line(b.out)) << a.out << "\n---\n" << b.out;
  EXPECT_FALSE(best_line(a.out).empty());
}

// One rank killed mid-run: the other stops within the timeout, naming the lost rank, and the
// checkpoint written before is intact.
TEST_F(Launch, IntegrationALostRankEndsTheOtherNamingIt) {
  const int port = free_tcp_port();
  const std::vector<std::string> args = {"distill", config_, "--out", out(""), "--method",
                                         "naive", "--epochs", "100000000", "-q"};
  pid_t r0 = -1, r1 = -1;
  {
    RankEnvironment env(0, 2, port, 10);
    r0 = spawn_cli(args, out("r0.out"), out("r0.err"));
    env.rank(1);
    r1 = spawn_cli(args, out("r1.out"), out("r1.err"));
  }
  // Synchronization point: rank 0 has written a checkpoint (after epoch 20), so both trained.
  const fs::path checkpoint = dir_ / "distill" / "naive-seed0" / "checkpoint.pt";
  const auto start = std::chrono::steady_clock::now();
  while (!fs::exists(checkpoint) && std::chrono::steady_clock::now() - start < std::chrono::minutes(2))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(checkpoint)) << read_file(out("r0.err")) << read_file(out("r1.err"));
  ::kill(r1, SIGKILL);
  wait_exit(r1);
  const auto killed = std::chrono::steady_clock::now();
  const int code = wait_exit(r0);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  const std::string err = read_file(out("r0.err"));
  EXPECT_NE(code, 0) << err;
  EXPECT_LT(waited, 10 + 5) << err;
  EXPECT_TRUE(contains_all(err, {"rank 0 of 2", "rank 1", "is gone"})) << err;
  // The checkpoint is whole: it reads back, with the run's settings.
  EXPECT_EQ(checkpoint_settings(checkpoint).at("settings").at("method").at("name"), "naive");
}

TEST_F(Launch, IntegrationWrongWorldSizePortInUseAndUnreachableStoreFailClearly) {
  const std::vector<std::string> args = {"distill", config_, "--out", out(""), "-q"};
  {
    // WORLD_SIZE 2, but only rank 0 started.
    RankEnvironment env(0, 2, free_tcp_port(), 2);
    const auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(contains_all(r.err, {"not all 2 ranks joined", "WORLD_SIZE"})) << r.err;
  }
  {
    // Rank 1 with no rank 0 hosting the store.
    RankEnvironment env(1, 2, free_tcp_port(), 2);
    const auto r = run_cli(args);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(contains_all(r.err, {"cannot reach the rendezvous store", "127.0.0.1:"})) << r.err;
  }
  {
    // The port is held by another listener.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = 0;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ASSERT_EQ(::listen(fd, 1), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    RankEnvironment env(0, 2, ntohs(addr.sin_port), 2);
    const auto r = run_cli(args);
    ::close(fd);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(contains_all(r.err, {"port is in use", "MASTER_PORT"})) << r.err;
  }
  {
    // Commands without a mode for ranks refuse to run as ranks.
    RankEnvironment env(0, 2, free_tcp_port(), 2);
    const auto r = run_cli({"diagnose", config_, "--out", out("diagnose")});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(contains_all(r.err, {"WORLD_SIZE=2", "only `distill` and `train-teacher`"}))
        << r.err;
  }
  const auto bad = run_cli({"launch", "--nproc", "2", "--", "diagnose", config_});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(contains_all(bad.err, {"'diagnose' has no mode for ranks"})) << bad.err;
}

// Experiments across machines (experiment/run_queue.h): two ranks started by hand with their own
// output folders, as on two machines without a shared file system. Rank 1 takes rank 0's teacher;
// rank 0's folder gets every run, with the numbers of one process running them all.
TEST_F(Launch, IntegrationExperimentRanksShareOutTheRunsAndGiveTheOneProcessNumbers) {
  for (const char* folder : {"serial", "rank0"}) {
    fs::create_directories(dir_ / folder);
    fs::copy_file(dir_ / "teacher.pt", dir_ / folder / "teacher.pt");
  }
  const auto args = [&](const std::string& folder) {
    // 200 epochs: runs long enough that rank 1 (which waits for rank 0's teacher) gets some.
    return std::vector<std::string>{"experiment", config_, "--out", out(folder), "--runs", "2",
                                    "--methods", "none,naive,gradient", "--epochs", "200", "-q"};
  };
  const auto serial = run_cli(args("serial"));
  ASSERT_EQ(serial.exit_code, 0) << describe(args("serial"), serial);
  pid_t r0 = -1, r1 = -1;
  {
    RankEnvironment env(0, 2, free_tcp_port(), 30);
    r0 = spawn_cli(args("rank0"), out("r0.out"), out("r0.err"));
    env.rank(1);
    r1 = spawn_cli(args("rank1"), out("r1.out"), out("r1.err"));
  }
  const int code1 = wait_exit(r1), code0 = wait_exit(r0);
  const std::string err0 = read_file(out("r0.err")), err1 = read_file(out("r1.err"));
  ASSERT_EQ(code0, 0) << err0;
  ASSERT_EQ(code1, 0) << err1;
  // Rank 1 distilled from rank 0's teacher, ran at least one run and said so.
  EXPECT_EQ(read_file(dir_ / "rank1" / "teacher.pt"), read_file(dir_ / "rank0" / "teacher.pt"));
  EXPECT_TRUE(contains_all(err1, {"rank 1: "})) << err1;
  // Rank 0 prints the table; rank 1 prints none.
  EXPECT_TRUE(contains_all(read_file(out("r0.out")), {"| gradient |"}));
  EXPECT_EQ(read_file(out("r1.out")), "");
  for (const std::string m : {"none", "naive", "gradient"})
    for (const std::string s : {"seed0", "seed1"}) {
      const fs::path run = fs::path("runs") / m / s;
      ASSERT_TRUE(fs::exists(dir_ / "rank0" / run / "result.json")) << run << "\n" << err0;
      EXPECT_TRUE(fs::exists(dir_ / "rank0" / run / "metrics.csv")) << run;
      const auto a = nlohmann::json::parse(read_file(dir_ / "rank0" / run / "result.json"));
      const auto b = nlohmann::json::parse(read_file(dir_ / "serial" / run / "result.json"));
      EXPECT_EQ(a["final_test_accuracy"], b["final_test_accuracy"]) << run;
      EXPECT_EQ(a["final"], b["final"]) << run;
      EXPECT_EQ(a["settings_key"], b["settings_key"]) << run;
    }
}

// A rank killed in the middle of a run: rank 0 takes the run over once the rank's heartbeat has
// been silent for the timeout, and the experiment completes.
TEST_F(Launch, IntegrationExperimentRankKilledMidRunHasItsRunTakenOver) {
  for (const char* folder : {"rank0", "rank1"}) {
    fs::create_directories(dir_ / folder);
    fs::copy_file(dir_ / "teacher.pt", dir_ / folder / "teacher.pt");
  }
  const auto args = [&](const std::string& folder) {
    return std::vector<std::string>{"experiment", config_, "--out", out(folder), "--runs", "3",
                                    "--methods", "naive", "--epochs", "3000", "-q"};
  };
  pid_t r0 = -1, r1 = -1;
  {
    RankEnvironment env(0, 2, free_tcp_port(), 3);
    r0 = spawn_cli(args("rank0"), out("r0.out"), out("r0.err"));
    env.rank(1);
    r1 = spawn_cli(args("rank1"), out("r1.out"), out("r1.err"));
  }
  // Rank 1 is inside a run once that run's first checkpoint is written (epoch 20).
  const auto start = std::chrono::steady_clock::now();
  auto inside = [&] {
    for (const char* s : {"seed0", "seed1", "seed2"})
      if (fs::exists(dir_ / "rank1" / "runs" / "naive" / s / "checkpoint.pt")) return true;
    return false;
  };
  while (!inside() && std::chrono::steady_clock::now() - start < std::chrono::minutes(2))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(inside()) << read_file(out("r0.err")) << read_file(out("r1.err"));
  ::kill(r1, SIGKILL);
  wait_exit(r1);
  const int code0 = wait_exit(r0);
  const std::string err0 = read_file(out("r0.err"));
  ASSERT_EQ(code0, 0) << err0;
  EXPECT_TRUE(contains_all(err0, {"the rank that ran it is lost; running it here"})) << err0;
  for (const char* s : {"seed0", "seed1", "seed2"}) {
    const auto r = nlohmann::json::parse(read_file(dir_ / "rank0" / "runs" / "naive" / s / "result.json"));
    EXPECT_EQ(r["steps"], 3000) << s;
  }
}
