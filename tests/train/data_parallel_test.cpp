// Data-parallel training on c10d (train/data_parallel.h, DESIGN.md 3.9): two ranks over localhost
// (two threads of this process, each with its own TCP connection, store client and Gloo group)
// against one process with the whole batch.
#include "metadistill/train/data_parallel.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <thread>

#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/models/classifier.h"
#include "metadistill/train/multilayer.h"
#include "metadistill/train/teacher.h"
#include "metadistill/train/trainer.h"
#include "metadistill/util/error.h"
#include "metadistill/util/runtime.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::expect_error;

namespace {

// 3 classes from a random linear map of 10 features; 1 317 training rows, so that batches of 128
// leave a last batch of 37 that two ranks split unevenly (18 + 19). No BatchNorm in the student
// (an mlp), so that one process and two ranks take the same steps.
DataBundle problem(torch::Tensor* teacher) {
  torch::manual_seed(11);
  const int64_t n_train = 128 * 10 + 37, n_val = 300, n = n_train + n_val;
  auto w = torch::randn({10, 3});
  auto make = [&](int64_t rows) {
    DataSet d;
    d.x = torch::randn({rows, 10});
    d.y = (d.x.matmul(w) + 0.5 * torch::randn({rows, 3})).argmax(1);
    return d;
  };
  DataBundle b;
  b.name = "dp-test";
  b.num_classes = 3;
  b.pool = make(n);
  b.train_idx = torch::arange(0, n_train, torch::kLong);
  b.val_idx = torch::arange(n_train, n, torch::kLong);
  b.test = make(200);
  b.teacher_train = b.pool;
  *teacher = 2.0 * b.pool.x.matmul(w) + 0.3 * torch::randn({n, 3});
  return b;
}

struct Outcome {
  std::vector<torch::Tensor> weights;
  TrainResult result;
};

Outcome train(const DataBundle& b, const torch::Tensor& teacher, const MethodOptions& mo,
              TrainerOptions o) {
  // The initialization draws from the process-wide generator: ranks that are threads of one
  // process take turns, so that each draws the one-process initialization.
  Classifier model;
  {
    std::lock_guard<std::mutex> lock(generator_mutex());
    seed_everything(7);
    model = make_model(ModelSpec("mlp", 3, {10}));
  }
  FitData fit;
  fit.train_set = &b.pool;
  fit.train_ids = b.train_idx;
  DataSet val = b.validation();
  fit.val_set = &val;
  fit.test_set = &b.test;
  fit.teacher_logits = teacher;
  auto meta = make_meta_optimizer(mo);
  Outcome out;
  out.result = Trainer(o).fit(*model, fit, *meta);
  for (const auto& p : model->parameters()) out.weights.push_back(p.detach().clone());
  return out;
}

// Runs `body(rank, group)` on two ranks (threads) joined over localhost; returns their results.
template <typename Body>
auto on_two_ranks(Body body) {
  const int port = free_tcp_port();
  using R = decltype(body(0, std::shared_ptr<DataParallel>()));
  std::vector<std::future<R>> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.push_back(std::async(std::launch::async, [=] {
      DataParallelOptions o;
      o.rank = r;
      o.world_size = 2;
      o.port = port;
      o.timeout = 30;
      return body(r, DataParallel::join(o));
    }));
  // Every rank's failure is reported, not only the first: a rank that fails makes the others
  // fail too (their peer is gone), and the first rank's message would hide the cause.
  std::vector<R> out;
  std::string errors;
  for (size_t r = 0; r < ranks.size(); ++r) {
    try {
      out.push_back(ranks[r].get());
    } catch (const std::exception& e) {
      errors += "rank " + std::to_string(r) + ": " + e.what() + "\n";
    }
  }
  if (!errors.empty()) throw std::runtime_error(errors);
  return out;
}

MethodOptions method(const std::string& name, nlohmann::json extra = nlohmann::json::object()) {
  MethodOptions mo;
  mo.method = name;
  mo.fixed = {0.5, 2.0};
  mo.extra = std::move(extra);
  return mo;
}

double max_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, (a[i] - b[i]).abs().max().item<double>());
  return d;
}

struct Case {
  const char* name;
  MethodOptions method;
  std::string optimizer;
  std::string step_norm = "none";
};

}  // namespace

// The acceptance test of the issue: 2 ranks × 64 equal 1 process × 128 after 22 steps (two
// epochs, an uneven last batch included), for plain training, distillation, the greedy
// hypergradient (exact and fd, before and lagged) and the online one, with SGD, momentum and
// Adam; λ is bit-identical on both ranks at every step.
TEST(DataParallel, TwoRanksTakeTheStepsOfOneProcessWithTheWholeBatch) {
  torch::Tensor teacher;
  const DataBundle b = problem(&teacher);
  const std::vector<Case> cases = {
      {"plain", method("fixed", {}), "sgd"},
      {"distillation", method("naive"), "momentum"},
      // Double backward: forward-mode AD levels are process-wide, so two ranks that are threads
      // of one process cannot both hold one (ranks as processes can: Launch tests, fd and jvp).
      {"gradient exact",
       method("gradient", {{"hypergradient", "exact"}, {"exact_product", "reverse"}, {"gamma", 0.5}}),
       "sgd"},
      {"gradient fd lagged",
       method("gradient", {{"hypergradient", "fd"}, {"order", "lagged"}, {"gamma", 0.5}}), "adam"},
      // The online tangents: each rank's D = H Z + ∂g/∂m of its shard, averaged, and g averaged.
      {"gradient online",
       method("gradient", {{"hypergradient", "online"}, {"mu", 0.9}, {"gamma", 0.5}}), "momentum"},
      {"gradient online adam",
       method("gradient", {{"hypergradient", "online"}, {"mu", 1.0}, {"gamma", 0.5},
                           {"product", "fd"}, {"fd_scheme", "forward"}}),
       "adam"},
      // step_norm ce: the step's length from the whole batch's ∇CE, also in the virtual step.
      {"distillation step_norm ce", method("naive"), "sgd", "ce"},
      {"gradient fd step_norm ce", method("gradient", {{"hypergradient", "fd"}, {"gamma", 0.5}}),
       "momentum", "ce"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    MethodOptions mo = c.method;
    if (std::string(c.name) == "plain") mo.fixed = {1.0, 1.0};
    const auto o = TrainerOptions()
                       .with_epochs(2)
                       .with_batch_size(128)
                       .with_lr(c.optimizer == "adam" ? 0.01 : 0.1)
                       .with_seed(5);
    TrainerOptions one = o;
    one.optimizer = c.optimizer;
    one.step_norm = c.step_norm;
    const Outcome single = train(b, teacher, mo, one);
    const auto ranks = on_two_ranks([&](int, std::shared_ptr<DataParallel> g) {
      TrainerOptions t = one;
      t.data_parallel = g;
      return train(b, teacher, mo, t);
    });
    EXPECT_EQ(single.result.steps, 22);
    for (const auto& r : ranks) {
      EXPECT_EQ(r.result.steps, 22);
      EXPECT_LT(max_difference(r.weights, single.weights), 1e-5);
    }
    // Every rank holds the same weights and followed the same λ, bit for bit.
    EXPECT_EQ(max_difference(ranks[0].weights, ranks[1].weights), 0.0);
    const auto& t0 = ranks[0].result.trajectory;
    const auto& t1 = ranks[1].result.trajectory;
    ASSERT_EQ(t0.size(), t1.size());
    ASSERT_EQ(t0.size(), single.result.trajectory.size());
    for (size_t k = 0; k < t0.size(); ++k) {
      EXPECT_EQ(t0[k].value.lambda1, t1[k].value.lambda1);
      EXPECT_EQ(t0[k].value.temperature, t1[k].value.temperature);
      EXPECT_NEAR(t0[k].value.lambda1, single.result.trajectory[k].value.lambda1, 1e-5);
      EXPECT_NEAR(t0[k].value.temperature, single.result.trajectory[k].value.temperature, 1e-5);
    }
    if (mo.method == "gradient") {
      // The hypergradient moved λ: the check above compared moving trajectories.
      EXPECT_NE(t0.back().value.lambda1, t0.front().value.lambda1);
    }
    // The loss each rank reports is the whole batch's.
    EXPECT_NEAR(ranks[1].result.history.back().train_loss,
                single.result.history.back().train_loss, 1e-5);
  }
}

// Each rank evaluates its part of a set (here 1 617 rows: 808 + 809) and the sums are reduced:
// every rank gets the one-process evaluation of the whole set.
TEST(DataParallel, ShardedEvaluationIsTheWholeSetsEvaluation) {
  torch::Tensor teacher;
  const DataBundle b = problem(&teacher);
  seed_everything(4);
  auto model = make_model(ModelSpec("mlp", 3, {10}));
  const Evaluation whole = evaluate(*model, b.pool, 100);
  ASSERT_GT(whole.ece, 0.0);
  const auto ranks = on_two_ranks([&](int r, std::shared_ptr<DataParallel> g) {
    return evaluate_sharded(*model, b.pool, 100, torch::kCPU, r, 2, g->batch_mean_reduce());
  });
  for (const auto& e : ranks) {
    EXPECT_EQ(e.accuracy, whole.accuracy);
    EXPECT_NEAR(e.loss, whole.loss, 1e-6);  // float32 sums over other batch boundaries
    EXPECT_NEAR(e.ece, whole.ece, 1e-12);
  }
  EXPECT_EQ(ranks[0].loss, ranks[1].loss);
  EXPECT_EQ(ranks[0].ece, ranks[1].ece);
}

// A missing teacher-output cache is computed sharded: each rank runs the teacher on its part of
// the rows, and every rank gets (and keeps in its own cache folder, as on its own machine) the
// whole tensor; once every rank has it, it is read, not computed.
TEST(DataParallel, TeacherOutputCacheIsComputedShardedByTheRanks) {
  torch::Tensor unused;
  const DataBundle b = problem(&unused);
  metadistill::testing::TempDir dir("dp-cache");
  seed_everything(6);
  const ModelSpec spec("mlp", 3, {10});
  auto teacher = make_model(spec);
  save_model_file(*teacher, spec, dir / "teacher.pt");
  const auto whole = predict_logits(*teacher, b.pool.teacher_input());
  auto cache = [&](int r) { return dir / ("cache-" + std::to_string(r)); };
  const auto ranks = on_two_ranks([&](int r, std::shared_ptr<DataParallel> g) {
    return cached_teacher_logits(*teacher, dir / "teacher.pt", b, cache(r), torch::kCPU, g.get());
  });
  ASSERT_EQ(ranks[0].sizes(), whole.sizes());
  EXPECT_TRUE(ranks[0].equal(ranks[1]));
  EXPECT_TRUE(torch::allclose(ranks[0], whole, 1e-5, 1e-6));
  for (int r = 0; r < 2; ++r) EXPECT_FALSE(std::filesystem::is_empty(cache(r))) << r;
  // Read back: the files are the tensor (a changed file is what the ranks then return).
  const auto again = on_two_ranks([&](int r, std::shared_ptr<DataParallel> g) {
    return cached_teacher_logits(*teacher, dir / "teacher.pt", b, cache(r), torch::kCPU, g.get());
  });
  EXPECT_TRUE(again[0].equal(ranks[0]));
  EXPECT_TRUE(again[1].equal(ranks[0]));
}

TEST(DataParallel, BatchMeansAreWeightedByEachRanksShare) {
  // Rank 0 holds 1 sample of mean 4, rank 1 holds 3 samples of mean 0: the mean is 1.
  const auto out = on_two_ranks([](int r, std::shared_ptr<DataParallel> g) {
    std::vector<torch::Tensor> m{torch::full({2, 2}, r == 0 ? 4.0f : 0.0f)};
    g->all_reduce_batch_mean(m, r == 0 ? 1 : 3);
    Batch batch{torch::arange(5).view({5, 1}), torch::arange(5), torch::arange(5)};
    Batch s = g->shard(batch);
    return std::make_pair(m[0], s.idx);
  });
  for (const auto& [mean, ids] : out) EXPECT_TRUE(mean.equal(torch::full({2, 2}, 1.0f)));
  // Shards are contiguous and cover the batch once: [0, 2) and [2, 5).
  EXPECT_TRUE(out[0].second.equal(torch::arange(0, 2)));
  EXPECT_TRUE(out[1].second.equal(torch::arange(2, 5)));
}

TEST(DataParallel, MissingRanksAndBadSettingsFailWithClearMessages) {
  DataParallelOptions o;
  o.world_size = 2;
  o.rank = 2;
  expect_error([&] { o.validate(); }, {"RANK = 2"});
  o.rank = 0;
  o.backend = "mpi";
  expect_error([&] { o.validate(); }, {"METADISTILL_DIST_BACKEND = 'mpi'", "gloo or nccl"});
#ifndef METADISTILL_WITH_NCCL
  o.backend = "nccl";
  expect_error([&] { o.validate(); }, {"no NCCL", "-DMETADISTILL_NCCL=ON"});
#endif
  o.backend = "gloo";
  o.port = 70000;
  expect_error([&] { o.validate(); }, {"MASTER_PORT = 70000"});
  // Rank 0 alone of 2: nobody joins within the timeout.
  o.port = free_tcp_port();
  o.timeout = 1.5;
  expect_error([&] { DataParallel::join(o); }, {"not all 2 ranks joined"});
  // Rank 1 with nobody hosting the store.
  o.rank = 1;
  expect_error([&] { DataParallel::join(o); }, {"cannot reach the rendezvous store"});
}

TEST(DataParallel, APortInUseIsNamed) {
  // A first group holds the port; a second rank 0 on the same port is refused.
  auto first = on_two_ranks([](int, std::shared_ptr<DataParallel> g) { return g; });
  DataParallelOptions o;
  o.world_size = 2;
  o.port = first[0]->options().port;
  o.timeout = 2;
  expect_error([&] { DataParallel::join(o); }, {"in use"});
}

namespace {

struct MultiLayerOutcome {
  std::vector<torch::Tensor> weights;
  MultiLayerResult result;
};

// Multi-layer VID between the hidden layers of two mlps (no BatchNorm, as above).
MultiLayerOutcome train_multilayer(const DataBundle& b, const MultiLayerOptions& ml,
                                   TrainerOptions o) {
  Classifier teacher, student;
  {
    std::lock_guard<std::mutex> lock(generator_mutex());
    seed_everything(3);
    teacher = make_model(ModelSpec("mlp", 3, {10}));
    student = make_model(ModelSpec("mlp", 3, {10}));
  }
  MultiLayerData d;
  d.train_set = &b.pool;
  d.train_ids = b.train_idx;
  DataSet val = b.validation();
  d.val_set = &val;
  d.test_set = &b.test;
  MultiLayerOutcome out;
  out.result = MultiLayerTrainer(ml, o).fit(*student, *teacher, d);
  for (const auto& p : student->parameters()) out.weights.push_back(p.detach().clone());
  return out;
}

}  // namespace

// Multi-layer distillation on two ranks takes the steps of one process with the whole batch: the
// VID terms' gradients are reduced with the student's, and the learned pair weights and β (the
// gradient method over the VID head, greedy or online, hypergradient reduced) are bit-identical
// on both ranks.
TEST(DataParallel, MultiLayerTwoRanksTakeTheStepsOfOneProcess) {
  torch::Tensor teacher_logits;
  const DataBundle b = problem(&teacher_logits);
  for (const std::string method :
       {"all-pairs-fixed", "all-pairs-exact", "all-pairs-fd", "all-pairs-online"}) {
    SCOPED_TRACE(method);
    const auto ml = MultiLayerOptions()
                        .method(method)
                        .teacher_taps({"hidden", "logits"})
                        .student_taps({"hidden", "logits"})
                        .beta(0.5)
                        .meta_lr(1000.0)
                        .beta_lr(1.0);
    const auto o = TrainerOptions().with_epochs(2).with_batch_size(128).with_lr(0.1).with_seed(5);
    const auto single = train_multilayer(b, ml, o);
    const auto ranks = on_two_ranks([&](int, std::shared_ptr<DataParallel> g) {
      TrainerOptions t = o;
      t.data_parallel = g;
      return train_multilayer(b, ml, t);
    });
    EXPECT_EQ(single.result.steps, 22);
    for (const auto& r : ranks) {
      EXPECT_EQ(r.result.steps, 22);
      EXPECT_LT(max_difference(r.weights, single.weights), 1e-5);
      EXPECT_NEAR(r.result.history.back().train_loss, single.result.history.back().train_loss,
                  1e-5);
    }
    EXPECT_EQ(max_difference(ranks[0].weights, ranks[1].weights), 0.0);
    const auto& t0 = ranks[0].result.trajectory;
    const auto& t1 = ranks[1].result.trajectory;
    ASSERT_EQ(t0.size(), t1.size());
    ASSERT_EQ(t0.size(), single.result.trajectory.size());
    // The fd difference quotient of two float32 losses at w ± εu carries a rounding error that
    // meta_lr 1000 turns into about 2e-5 of λ after 22 steps (the exact hypergradient stays
    // within 1e-5): the one process and the ranks add the batch's terms in another order.
    const double tolerance = method == "all-pairs-fd" ? 1e-4 : 1e-5;
    for (size_t k = 0; k < t0.size(); ++k) {
      EXPECT_EQ(t0[k].lambda, t1[k].lambda) << k;
      EXPECT_EQ(t0[k].beta, t1[k].beta) << k;
      for (size_t i = 0; i < t0[k].lambda.size(); ++i)
        EXPECT_NEAR(t0[k].lambda[i], single.result.trajectory[k].lambda[i], tolerance) << k;
      EXPECT_NEAR(t0[k].beta, single.result.trajectory[k].beta, tolerance) << k;
    }
    if (method != "all-pairs-fixed") {
      EXPECT_EQ(ranks[0].result.hyper_steps, 22);
      EXPECT_NE(t0.back().beta, t0.front().beta);  // the trajectories compared above moved
    }
  }
}

// A checkpoint holds the whole batch's state: a run of two ranks resumes as one process (and the
// reverse) to the numbers of one uninterrupted process.
TEST(DataParallel, ResumeWithAnotherWorldSizeContinuesTheRun) {
  torch::Tensor teacher;
  const DataBundle b = problem(&teacher);
  const MethodOptions mo = method("gradient", {{"hypergradient", "fd"}, {"gamma", 0.5}});
  const auto base = TrainerOptions().with_batch_size(128).with_lr(0.1).with_seed(5);
  const Outcome whole = train(b, teacher, mo, TrainerOptions(base).with_epochs(3));
  metadistill::testing::TempDir dir("dp-resume");
  TrainerOptions first = base;
  first.epochs = 1;
  first.out_dir = dir.path();
  on_two_ranks([&](int, std::shared_ptr<DataParallel> g) {
    TrainerOptions t = first;
    t.data_parallel = g;
    return train(b, teacher, mo, t).result.steps;
  });
  TrainerOptions second = first;
  second.epochs = 2;
  second.resume = true;
  EXPECT_EQ(train(b, teacher, mo, second).result.steps, 22);  // one process, epoch 2
  TrainerOptions third = second;
  third.epochs = 3;
  const auto ranks = on_two_ranks([&](int, std::shared_ptr<DataParallel> g) {
    TrainerOptions t = third;
    t.data_parallel = g;
    return train(b, teacher, mo, t);  // two ranks again, epoch 3
  });
  for (const auto& r : ranks) {
    EXPECT_TRUE(r.result.resumed);
    EXPECT_LT(max_difference(r.weights, whole.weights), 1e-5);
    EXPECT_NEAR(r.result.trajectory.back().value.lambda1,
                whole.result.trajectory.back().value.lambda1, 1e-5);
  }
}
