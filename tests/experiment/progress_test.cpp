#include "metadistill/experiment/progress.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <streambuf>
#include <string>

#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;

namespace {

// A stream buffer that other threads may write while the test waits for a text to appear.
class WatchedBuffer : public std::streambuf {
 public:
  /// True once `needle` was written, false when `timeout` passed first.
  template <typename Duration>
  bool wait_for(const std::string& needle, Duration timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return written_.wait_for(lock, timeout,
                             [&] { return text_.find(needle) != std::string::npos; });
  }
  std::string text() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return text_;
  }

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      text_.append(s, static_cast<size_t>(n));
    }
    written_.notify_all();
    return n;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable written_;
  std::string text_;
};

}  // namespace

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(45.4), "45s");
  EXPECT_EQ(format_duration(150), "2.5min");
  EXPECT_EQ(format_duration(7200), "2.0h");
}

TEST(Progress, FormatsTheStatusLineLeavingOutUnknownParts) {
  ProgressSnapshot s;
  s.done = 3;
  s.total = 20;
  EXPECT_EQ(format_progress(s), "[3/20]");
  s.method = "gradient";
  s.seed = 2;
  EXPECT_EQ(format_progress(s), "[3/20] gradient seed 2");
  s.epoch = 4;
  s.epochs = 5;
  s.accuracy = 0.87123;
  s.eta_seconds = 210;
  EXPECT_EQ(format_progress(s), "[3/20] gradient seed 2, epoch 4/5, test 0.8712, ETA 3.5min");
  s.method = "tpe";
  s.phase = "trial 1";
  s.epochs = 0;
  s.accuracy = -1;
  s.eta_seconds = -1;
  EXPECT_EQ(format_progress(s), "[3/20] tpe seed 2, trial 1, epoch 4");
  // Between runs: the last result.
  s.method.clear();
  s.last = "tpe seed 2: final 0.7800";
  s.eta_seconds = 30;
  EXPECT_EQ(format_progress(s), "[3/20] tpe seed 2: final 0.7800, ETA 30s");
}

TEST(Progress, EtaUsesEachMethodsMeanAndTheOverallMeanForNewMethods) {
  EtaEstimator eta;
  EXPECT_LT(eta.per_run("none"), 0);
  EXPECT_LT(eta.remaining({"none", "none"}, 0), 0);  // nothing finished: unknown
  eta.add("none", 10);
  eta.add("none", 20);
  eta.add("gradient", 60);
  EXPECT_DOUBLE_EQ(eta.per_run("none"), 15);
  EXPECT_DOUBLE_EQ(eta.per_run("gradient"), 60);
  EXPECT_DOUBLE_EQ(eta.per_run("tpe"), 30);  // (10 + 20 + 60) / 3
  // Current gradient run 20 s in (60 − 20), one more gradient, one tpe.
  EXPECT_DOUBLE_EQ(eta.remaining({"gradient", "gradient", "tpe"}, 20), 40 + 60 + 30);
  // A current run over its estimate counts 0, never negative.
  EXPECT_DOUBLE_EQ(eta.remaining({"none", "gradient"}, 100), 0 + 60);
  EXPECT_DOUBLE_EQ(eta.remaining({}, 0), 0);
}

TEST(Progress, PlainLogLinesCarryRunCountsAndEta) {
  std::ostringstream out;
  {
    ExperimentProgress p({"none", "none", "gradient"}, out, /*interactive=*/false);
    p.finished_earlier(0, 0, 10, "none seed 0: final 0.6300");
    p.start_run(1, 1);
    p.finish_run(30, "none seed 1: final 0.6400");
    const auto s = p.snapshot();
    EXPECT_EQ(s.done, 2);
    EXPECT_EQ(s.total, 3);
    EXPECT_DOUBLE_EQ(s.eta_seconds, 20);  // gradient, estimated by the mean of both runs
    p.message("warning: something");
    p.finished_earlier(2, 0, 20, "gradient seed 0: final 0.7000", "by another process");
  }
  EXPECT_EQ(out.str(),
            "[1/3] none seed 0: final 0.6300 (stored), ETA 20s\n"
            "[1/3] none seed 1: started, ETA 20s\n"
            "[2/3] none seed 1: final 0.6400, ETA 20s\n"
            "warning: something\n"
            "[3/3] gradient seed 0: final 0.7000 (by another process), ETA 0s\n");
}

TEST(Progress, InteractiveLineShowsTheWatchedEpoch) {
  metadistill::testing::TempDir dir("progress");
  write_file_atomic(dir / "metrics.csv",
                    "epoch,lr,train_loss,val_accuracy,val_loss,test_accuracy,lambda1,temperature,"
                    "seconds\n1,1,0.5,,,0.81,1,1,2.0\n2,1,0.4,,,0.8342,1,1,2.0\n");
  // The watcher thread writes the stream: the test waits for the line on it and reads it under
  // the buffer's lock.
  const std::string line = "\r\033[K[0/1] naive seed 0, epoch 2/5, test 0.8342";
  WatchedBuffer buffer;
  std::ostream out(&buffer);
  ExperimentProgress p({"naive"}, out, /*interactive=*/true);
  p.start_run(0, 0);
  p.start_training("", dir.path(), 5);
  // The bound only ends a hung test; the watcher reads the file every half second.
  EXPECT_TRUE(buffer.wait_for(line, std::chrono::minutes(2))) << buffer.text();
  const auto s = p.snapshot();
  EXPECT_EQ(s.epoch, 2);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.8342);
}
