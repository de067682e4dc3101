#include "metadistill/train/multilayer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

#include "metadistill/util/files.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

// 48 random 1×8×8 images with 3 classes whose label is visible in the mean brightness, so a
// student can learn something in a few steps: 32 train, 8 val, 8 test.
struct TinyData {
  DataSet pool, val, test;
  torch::Tensor train_ids;
  TinyData() {
    torch::manual_seed(11);
    auto y = torch::randint(3, {48}, torch::kLong);
    auto x = torch::randn({48, 1, 8, 8}) + y.to(torch::kFloat).view({48, 1, 1, 1});
    pool.x = x.slice(0, 0, 40);
    pool.y = y.slice(0, 0, 40);
    train_ids = torch::arange(32, torch::kLong);
    val = pool.select(torch::arange(32, 40, torch::kLong));
    test.x = x.slice(0, 40);
    test.y = y.slice(0, 40);
  }
  MultiLayerData data() const {
    MultiLayerData d;
    d.train_set = &pool;
    d.train_ids = train_ids;
    d.val_set = &val;
    d.test_set = &test;
    return d;
  }
};

MultiLayerOptions all_pairs(const std::string& method) {
  return MultiLayerOptions()
      .method(method)
      .teacher_taps({"conv1", "conv2", "conv3"})
      .student_taps({"conv1", "conv2"})
      .beta(0.5)
      .meta_lr(5.0);
}

TrainerOptions quick(uint64_t seed = 0, std::filesystem::path out = {}) {
  TrainerOptions t;
  t.epochs = 2;
  t.batch_size = 8;
  t.lr = 0.05;
  t.optimizer = "momentum";
  t.weight_decay = 1e-3;
  t.seed = seed;
  t.out_dir = std::move(out);
  return t;
}

struct Models {
  Classifier teacher, student;
  explicit Models(uint64_t seed = 0) {
    torch::manual_seed(100 + seed);
    teacher = make_model(ModelSpec("conv-tiny", 3, {1, 8, 8}));
    student = make_model(ModelSpec("conv-very-tiny", 3, {1, 8, 8}));
  }
};

std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::istringstream in(read_file(p));
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(MakePairs, PairwiseZipsAndAllPairsCombines) {
  auto o = all_pairs("all-pairs-fixed");
  auto pairs = make_pairs(o);
  ASSERT_EQ(pairs.size(), 6u);
  EXPECT_EQ(pairs[1].teacher, "conv1");
  EXPECT_EQ(pairs[1].student, "conv2");
  EXPECT_EQ(pairs[2].teacher, "conv2");
  o.method("pairwise").teacher_taps({"conv3", "fc1"});
  pairs = make_pairs(o);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].label(), "conv3->conv1");
  EXPECT_EQ(pairs[1].label(), "fc1->conv2");
  EXPECT_TRUE(make_pairs(o.method("hinton")).empty());
  expect_error([&] { all_pairs("pairwise").validate(); }, {"3 teacher taps", "2 student taps"});
  expect_error([] { MultiLayerOptions().method("each-with-each").validate(); },
               {"'each-with-each'", "all-pairs-fd"});
  expect_error([] { MultiLayerOptions().beta(1.5).validate(); }, {"beta = 1.5"});
}

TEST(MultiLayerTrainer, BadTapNameListsWhatTheModelOffers) {
  TinyData d;
  Models m;
  auto o = all_pairs("all-pairs-fixed").teacher_taps({"conv1", "layer3"});
  MultiLayerTrainer trainer(o, quick());
  expect_error([&] { trainer.fit(*m.student, *m.teacher, d.data()); },
               {"teacher", "'layer3'", "conv1, conv2, conv3, fc1, logits"});
  o = all_pairs("all-pairs-fixed").student_taps({"pool"});
  MultiLayerTrainer t2(o, quick());
  expect_error([&] { t2.fit(*m.student, *m.teacher, d.data()); },
               {"student", "conv-very-tiny", "'pool'", "conv1, conv2, conv3, fc1, logits"});
}

TEST(MultiLayerTrainer, UnalignableShapesAreAnError) {
  TinyData d;
  Models m;
  auto o = MultiLayerOptions().method("pairwise").teacher_taps({"conv2"}).student_taps({"fc1"});
  MultiLayerTrainer trainer(o, quick());
  expect_error([&] { trainer.fit(*m.student, *m.teacher, d.data()); },
               {"teacher 'conv2'", "student 'fc1'", "cannot be aligned", "fc1 [64]", "conv2 [32, 2, 2]"});
}

TEST(MultiLayerTrainer, LearnedWeightsAreLoggedEveryStepAndStayInTheirDomain) {
  TinyData d;
  Models m;
  TempDir dir("multilayer");
  MultiLayerTrainer trainer(all_pairs("all-pairs-fd"), quick(0, dir.path()));
  auto r = trainer.fit(*m.student, *m.teacher, d.data());
  EXPECT_EQ(r.steps, 8);  // 2 epochs × 4 batches
  EXPECT_EQ(r.hyper_steps, 8);
  ASSERT_EQ(r.trajectory.size(), 8u);
  ASSERT_EQ(r.lambda.size(), 6u);
  EXPECT_NEAR(std::accumulate(r.lambda.begin(), r.lambda.end(), 0.0), 1.0, 1e-12);
  EXPECT_GE(r.beta, 0.0);
  EXPECT_LE(r.beta, 1.0);
  // The weights moved away from uniform.
  double spread = 0;
  for (double l : r.lambda) spread = std::max(spread, std::abs(l - 1.0 / 6));
  EXPECT_GT(spread, 1e-6);
  EXPECT_GT(r.trajectory.back().hypergradient_norm, 0);

  auto lines = read_lines(dir / "pair_weights.csv");
  ASSERT_EQ(lines.size(), 9u);
  EXPECT_EQ(lines[0],
            "step,beta,hypergradient_norm,conv1->conv1,conv1->conv2,conv2->conv1,conv2->conv2,"
            "conv3->conv1,conv3->conv2");
  // Every epoch logs the test cross-entropy and the calibration errors, as Hinton runs do.
  const auto metrics = read_lines(dir / "metrics.csv");
  ASSERT_EQ(metrics.size(), 3u);
  EXPECT_EQ(metrics[0], "epoch,lr,train_loss,val_accuracy,val_loss,test_accuracy,beta,seconds,"
                        "test_loss,val_ece,test_ece,effective_lr");
  for (const auto& e : r.history) {
    EXPECT_GT(e.test_loss, 0);
    EXPECT_GE(e.val_ece, 0);
    EXPECT_LE(e.val_ece, 1);
    EXPECT_GE(e.test_ece, 0);
    EXPECT_LE(e.test_ece, 1);
  }
  EXPECT_EQ(read_lines(dir / "pairs.csv").size(), 7u);
  EXPECT_TRUE(std::filesystem::exists(dir / "student.pt"));
}

// all-pairs-proposed: windows of e1 hyper-steps, then e2 steps whose coordinates lie on the
// least-squares lines through the window (fitted here in closed form, apart from fit_line): for β
// directly, for the pair logits through log(λi/λ1) = ai − a1, which is linear when they are.
TEST(MultiLayerTrainer, ProposedWeightsFollowTheWindowsLines) {
  TinyData d;
  Models m;
  const int64_t e1 = 3, e2 = 2;
  MultiLayerTrainer trainer(all_pairs("all-pairs-proposed").beta_lr(0.5).e1(e1).e2(e2), quick());
  auto r = trainer.fit(*m.student, *m.teacher, d.data());
  ASSERT_EQ(r.trajectory.size(), 8u);  // hyper 0-2, predict 3-4, hyper 5-7
  EXPECT_EQ(r.hyper_steps, 6);
  for (size_t k = 0; k < 8; ++k) {
    const bool predicted = k == 3 || k == 4;
    EXPECT_EQ(r.trajectory[k].hypergradient_norm > 0, !predicted) << k;
  }
  auto line_at = [&](const std::function<double(size_t)>& value, double z) {
    const double zbar = (e1 + 1) / 2.0;
    double vbar = 0, sxy = 0, sxx = 0;
    for (int64_t k = 0; k < e1; ++k) vbar += value(static_cast<size_t>(k)) / e1;
    for (int64_t k = 0; k < e1; ++k) {
      sxy += (k + 1 - zbar) * (value(static_cast<size_t>(k)) - vbar);
      sxx += (k + 1 - zbar) * (k + 1 - zbar);
    }
    return vbar + sxy / sxx * (z - zbar);
  };
  const auto& t = r.trajectory;
  for (int64_t k = 1; k <= e2; ++k) {
    const auto& row = t[static_cast<size_t>(e1 + k - 1)];
    const double z = static_cast<double>(e1 + k);
    EXPECT_NEAR(row.beta, std::clamp(line_at([&](size_t i) { return t[i].beta; }, z), 0.0, 1.0),
                1e-9) << k;
    for (size_t p = 1; p < row.lambda.size(); ++p) {
      auto gap = [&](size_t i) { return std::log(t[i].lambda[p] / t[i].lambda[0]); };
      EXPECT_NEAR(std::log(row.lambda[p] / row.lambda[0]), line_at(gap, z), 1e-8) << k << " " << p;
    }
  }
  // The window moved the weights, so the lines are not flat.
  EXPECT_NE(t[0].lambda, t[2].lambda);
}

TEST(MultiLayerTrainer, SameSeedSameNumbers) {
  TinyData d;
  std::vector<MultiLayerResult> results;
  for (int k = 0; k < 2; ++k) {
    Models m;
    MultiLayerTrainer trainer(all_pairs("all-pairs-exact"), quick(3));
    results.push_back(trainer.fit(*m.student, *m.teacher, d.data()));
  }
  ASSERT_EQ(results[0].trajectory.size(), results[1].trajectory.size());
  for (size_t i = 0; i < results[0].trajectory.size(); ++i) {
    EXPECT_EQ(results[0].trajectory[i].lambda, results[1].trajectory[i].lambda);
    EXPECT_EQ(results[0].trajectory[i].beta, results[1].trajectory[i].beta);
  }
  EXPECT_EQ(results[0].history.back().train_loss, results[1].history.back().train_loss);
}

TEST(MultiLayerTrainer, RandomWeightsAreFixedAndSeeded) {
  TinyData d;
  auto run = [&](uint64_t seed) {
    Models m;
    auto o = all_pairs("all-pairs-random").random_beta(true);
    return MultiLayerTrainer(o, quick(seed)).fit(*m.student, *m.teacher, d.data());
  };
  auto a = run(1), b = run(1), c = run(2);
  EXPECT_EQ(a.lambda, b.lambda);
  EXPECT_NE(a.lambda, c.lambda);
  EXPECT_EQ(a.trajectory.front().lambda, a.trajectory.back().lambda);
  EXPECT_NE(a.beta, 0.5);
  EXPECT_EQ(a.hyper_steps, 0);
}

TEST(MultiLayerTrainer, VidParametersAreSavedWithTheStudentAndRestored) {
  TinyData d;
  Models m;
  TempDir dir("multilayer-save");
  MultiLayerTrainer trainer(all_pairs("all-pairs-fixed"), quick(0, dir.path()));
  trainer.fit(*m.student, *m.teacher, d.data());
  auto vid = trainer.vid();
  ASSERT_TRUE(vid);
  // Training moved the variances away from their initial 5.0, so equality below means restored.
  EXPECT_GT((vid->term(0)->variance() - 5.0).abs().max().item<double>(), 1e-6);

  auto loaded = load_multilayer_student(dir / "student.pt");
  ASSERT_TRUE(loaded.vid);
  EXPECT_EQ(loaded.student.spec.name, "conv-very-tiny");
  EXPECT_EQ(loaded.student.spec.num_classes, 3);
  auto saved = vid->named_parameters();
  auto restored = loaded.vid->named_parameters();
  ASSERT_EQ(saved.size(), restored.size());
  int alphas = 0, regressors = 0;
  for (const auto& p : saved) {
    ASSERT_TRUE(restored.contains(p.key())) << p.key();
    EXPECT_TRUE(torch::equal(p.value(), restored[p.key()])) << p.key();
    alphas += p.key().find("alpha") != std::string::npos;
    regressors += p.key().find("regressor") != std::string::npos;
  }
  EXPECT_EQ(alphas, 6);
  EXPECT_GT(regressors, 6);
  auto sp = m.student->named_parameters();
  for (const auto& p : loaded.student.model->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), sp[p.key()])) << p.key();
  EXPECT_EQ(loaded.extra.at("method"), "all-pairs-fixed");
  EXPECT_EQ(loaded.extra.at("lambda").size(), 6u);
  // The same file is an ordinary model file too.
  EXPECT_EQ(load_model_file(dir / "student.pt").spec.name, "conv-very-tiny");
}

TEST(MultiLayerTrainer, VidParametersAreExcludedFromWeightDecayByDefault) {
  // With lr > 0 but a loss that does not touch the VID terms (β = 1), only weight decay could
  // move their parameters.
  TinyData d;
  auto run = [&](bool decay) {
    Models m;
    auto o = all_pairs("all-pairs-fixed").beta(1.0).vid_weight_decay(decay);
    auto t = quick();
    t.weight_decay = 0.5;
    MultiLayerTrainer trainer(o, t);
    torch::manual_seed(0);
    trainer.fit(*m.student, *m.teacher, d.data());
    return trainer.vid()->term(0)->alpha.detach().clone();
  };
  const double init = functional::softplus_inverse_for(5.0, 1e-5);
  EXPECT_NEAR((run(false) - init).abs().max().item<double>(), 0.0, 1e-6);
  EXPECT_GT((run(true) - init).abs().max().item<double>(), 1e-3);
}

TEST(MultiLayerTrainer, NoneAndHintonTrainWithoutPairs) {
  TinyData d;
  for (const std::string method : {"none", "hinton"}) {
    Models m;
    MultiLayerTrainer trainer(MultiLayerOptions().method(method), quick());
    auto r = trainer.fit(*m.student, *m.teacher, d.data());
    EXPECT_FALSE(trainer.vid());
    EXPECT_TRUE(r.pairs.empty());
    EXPECT_TRUE(r.trajectory.empty());
    EXPECT_EQ(r.history.size(), 2u);
    EXPECT_TRUE(std::isfinite(r.history.back().train_loss));
  }
}

// Each epoch logs the effective learning rate η·‖∇L‖/‖∇CE‖ of its last step, as the Hinton trainer
// does: exactly η for CE alone (∇L = ∇CE), another value once a distillation term pulls.
TEST(MultiLayerTrainer, EpochsLogTheEffectiveLearningRate) {
  TinyData d;
  TempDir dir("ml-elr");
  std::map<std::string, double> last;
  for (const std::string method : {"none", "all-pairs-fixed"}) {
    Models m;
    auto o = method == "none" ? MultiLayerOptions().method("none") : all_pairs(method);
    auto t = quick(0, dir / method);
    MultiLayerTrainer trainer(o, t);
    auto r = trainer.fit(*m.student, *m.teacher, d.data());
    ASSERT_EQ(r.history.size(), 2u);
    for (const auto& e : r.history) EXPECT_GT(e.effective_lr, 0) << method;
    last[method] = r.history.back().effective_lr;
    const auto lines = read_lines(dir / method / "metrics.csv");
    EXPECT_NE(lines.front().find(",effective_lr"), std::string::npos);
    EXPECT_EQ(multilayer_result_from_json(multilayer_result_to_json(r)).history.back().effective_lr,
              last[method]);
  }
  EXPECT_NEAR(last["none"], 0.05, 1e-6);
  EXPECT_GT(std::abs(last["all-pairs-fixed"] - 0.05), 1e-4);
}


TEST(MultiLayerTrainer, AdamHyperStepMovesEveryMetaparameterByItsStepSize) {
  // Adam's first step is m̂ / √v̂ = sign(h): a_i moves by exactly ±meta_lr and β by ±beta_lr,
  // whatever the (tiny) scale of the hypergradient.
  TinyData d;
  Models m;
  auto o = all_pairs("all-pairs-fd").meta_optimizer("adam").meta_lr(0.25).beta_lr(0.1).hyper_every(
      1000);
  MultiLayerTrainer trainer(o, quick());
  auto r = trainer.fit(*m.student, *m.teacher, d.data());
  EXPECT_EQ(r.hyper_steps, 1);
  const auto& l = r.trajectory.front().lambda;
  int moved = 0;
  for (size_t i = 0; i < l.size(); ++i)
    for (size_t j = 0; j < l.size(); ++j) {
      const double gap = std::abs(std::log(l[i]) - std::log(l[j]));
      // ε = 1e-12 in the denominator: |h_a| ~ 1e-7 here, so the step is 1 − O(1e-5) of meta_lr.
      EXPECT_TRUE(gap < 1e-4 || std::abs(gap - 0.5) < 1e-4) << i << "," << j << ": " << gap;
      moved += gap > 0.25;
    }
  EXPECT_GT(moved, 0);
  EXPECT_NEAR(std::abs(r.trajectory.front().beta - 0.5), 0.1, 1e-6);
  EXPECT_EQ(r.beta, r.trajectory.front().beta);
}

// The hyper-step descends: with sgd, a ← a − meta_lr·h and β ← β − beta_lr·h_β, where h is the
// hypergradient (checked against brute force in hypergradient_vector_test). λ = softmax(a), so
// log λ_i − log λ_j moves by exactly −meta_lr·(h_i − h_j). A flipped sign fails here.
TEST(MultiLayerTrainer, SgdHyperStepMovesAgainstTheHypergradient) {
  TinyData d;
  Models m;
  const double meta_lr = 2e5, beta_lr = 0.5;  // h_a ~ 1e-7: a large step to see it
  auto o = all_pairs("all-pairs-fd").meta_optimizer("sgd").meta_lr(meta_lr).beta_lr(beta_lr)
               .beta_min(0.0).beta_max(1.0);
  MultiLayerTrainer trainer(o, quick());
  auto r = trainer.fit(*m.student, *m.teacher, d.data());
  ASSERT_GE(r.trajectory.size(), 3u);
  const size_t P = r.trajectory.front().lambda.size();
  std::vector<double> lambda(P, 1.0 / static_cast<double>(P));
  double beta = 0.5, largest_move = 0;
  for (const auto& p : r.trajectory) {
    ASSERT_EQ(p.hypergradient.size(), P + 1) << "step " << p.step;
    for (size_t i = 0; i < P; ++i)
      for (size_t j = 0; j < P; ++j) {
        const double moved = (std::log(p.lambda[i]) - std::log(p.lambda[j])) -
                             (std::log(lambda[i]) - std::log(lambda[j]));
        const double expected = -meta_lr * (p.hypergradient[i] - p.hypergradient[j]);
        EXPECT_NEAR(moved, expected, 1e-6 + 1e-4 * std::abs(expected)) << p.step << ": " << i << "," << j;
        largest_move = std::max(largest_move, std::abs(moved));
      }
    const double b = std::clamp(beta - beta_lr * p.hypergradient[P], 0.0, 1.0);
    EXPECT_NEAR(p.beta, b, 1e-12) << "step " << p.step;
    lambda = p.lambda;
    beta = p.beta;
  }
  EXPECT_GT(largest_move, 1e-3);  // the check had something to see
}

// The online method learns (λij, β) from the tangents carried through every step: each meta-step
// descends its hypergradient as the greedy one does, the hypergradients are non-zero from the
// first step on, and the run is deterministic.
TEST(MultiLayerTrainer, OnlineHyperStepMovesAgainstItsHypergradientAndRepeats) {
  TinyData d;
  const double meta_lr = 1e4, beta_lr = 0.5;
  auto o = all_pairs("all-pairs-online").meta_optimizer("sgd").meta_lr(meta_lr).beta_lr(beta_lr)
               .beta_min(0.0).beta_max(1.0).online_mu(0.9);
  std::vector<double> betas[2];
  for (int run = 0; run < 2; ++run) {
    Models m;
    MultiLayerTrainer trainer(o, quick());
    auto r = trainer.fit(*m.student, *m.teacher, d.data());
    ASSERT_GE(r.trajectory.size(), 3u);
    EXPECT_EQ(r.hyper_steps, static_cast<int64_t>(r.trajectory.size()));
    const size_t P = r.trajectory.front().lambda.size();
    std::vector<double> lambda(P, 1.0 / static_cast<double>(P));
    double beta = 0.5, largest_h = 0;
    for (const auto& p : r.trajectory) {
      ASSERT_EQ(p.hypergradient.size(), P + 1) << "step " << p.step;
      for (size_t i = 0; i < P; ++i) {
        ASSERT_TRUE(std::isfinite(p.hypergradient[i]));
        largest_h = std::max(largest_h, std::abs(p.hypergradient[i]));
        for (size_t j = 0; j < P; ++j) {
          const double moved = (std::log(p.lambda[i]) - std::log(p.lambda[j])) -
                               (std::log(lambda[i]) - std::log(lambda[j]));
          const double expected = -meta_lr * (p.hypergradient[i] - p.hypergradient[j]);
          EXPECT_NEAR(moved, expected, 1e-6 + 1e-4 * std::abs(expected)) << p.step;
        }
      }
      EXPECT_NEAR(p.beta, std::clamp(beta - beta_lr * p.hypergradient[P], 0.0, 1.0), 1e-12);
      lambda = p.lambda;
      beta = p.beta;
      betas[run].push_back(p.beta);
    }
    EXPECT_GT(largest_h, 0.0);
  }
  EXPECT_EQ(betas[0], betas[1]);
}

TEST(MultiLayerTrainer, BetaCanBeFixedOrBoundedWhileLambdaLearns) {
  TinyData d;
  {
    Models m;
    MultiLayerTrainer trainer(all_pairs("all-pairs-fd").meta_lr(50.0).beta_lr(0.0), quick());
    auto r = trainer.fit(*m.student, *m.teacher, d.data());
    for (const auto& p : r.trajectory) EXPECT_EQ(p.beta, 0.5);
    double spread = 0;
    for (double v : r.lambda) spread = std::max(spread, std::abs(v - 1.0 / 6));
    EXPECT_GT(spread, 1e-6);
  }
  {
    Models m;
    auto o = all_pairs("all-pairs-fd").meta_optimizer("adam").beta_lr(1.0).beta_min(0.3).beta_max(
        0.7);
    MultiLayerTrainer trainer(o, quick());
    auto r = trainer.fit(*m.student, *m.teacher, d.data());
    bool at_bound = false;
    for (const auto& p : r.trajectory) {
      EXPECT_GE(p.beta, 0.3);
      EXPECT_LE(p.beta, 0.7);
      at_bound = at_bound || p.beta == 0.3 || p.beta == 0.7;
    }
    EXPECT_TRUE(at_bound);  // steps of 1.0 from 0.5 land on a bound at once
  }
  expect_error([] { all_pairs("all-pairs-fd").beta_min(0.6).validate(); }, {"beta_min"});
  expect_error([] { all_pairs("all-pairs-fd").beta_lr(-1).validate(); }, {"beta_lr"});
  expect_error([] { all_pairs("all-pairs-fd").meta_optimizer("rmsprop").validate(); },
               {"meta_optimizer 'rmsprop'"});
}

// [beta_min, beta_max] bound the learned β only: a fixed-weight method trains with the β it is
// given and reports, also outside that interval (the pairs' loss once clamped it silently).
TEST(MultiLayerTrainer, FixedWeightsTrainWithTheBetaTheyReport) {
  TinyData d;
  auto run = [&](double beta_min) {
    Models m;
    auto o = MultiLayerOptions()
                 .method("pairwise")
                 .teacher_taps({"conv1", "conv2"})
                 .student_taps({"conv1", "conv2"})
                 .beta(0.1)
                 .beta_min(beta_min);
    MultiLayerTrainer trainer(o, quick());
    auto r = trainer.fit(*m.student, *m.teacher, d.data());
    return std::make_pair(r, m.student->parameters());
  };
  const auto [bounded, wb] = run(0.3);
  const auto [free, wf] = run(0.0);
  EXPECT_EQ(bounded.beta, 0.1);
  EXPECT_EQ(bounded.trajectory.back().beta, 0.1);
  ASSERT_EQ(bounded.history.size(), free.history.size());
  for (size_t i = 0; i < bounded.history.size(); ++i)
    EXPECT_EQ(bounded.history[i].train_loss, free.history[i].train_loss) << i;
  for (size_t i = 0; i < wb.size(); ++i) EXPECT_TRUE(wb[i].equal(wf[i])) << i;
}

TEST(MultiLayerTrainer, TimeLimitEndsTheRunWithAnEvaluatedEpoch) {
  TinyData d;
  Models m;
  auto t = quick();
  t.time_limit = 1e-9;
  MultiLayerTrainer trainer(all_pairs("all-pairs-fd"), t);
  auto r = trainer.fit(*m.student, *m.teacher, d.data());
  EXPECT_TRUE(r.stopped_by_time_limit);
  EXPECT_EQ(r.steps, 1);
  ASSERT_EQ(r.history.size(), 1u);
  EXPECT_EQ(r.history[0].epoch, 1);
  EXPECT_GT(r.final_test_accuracy, 0.0);
}

TEST(MultiLayerResultJson, RoundTripsEveryField) {
  TinyData d;
  Models m;
  MultiLayerTrainer trainer(all_pairs("all-pairs-fd"), quick());
  const auto r = trainer.fit(*m.student, *m.teacher, d.data());
  const auto j = multilayer_result_to_json(r);
  const auto back = multilayer_result_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(back.method, r.method);
  ASSERT_EQ(back.pairs.size(), r.pairs.size());
  EXPECT_EQ(back.pairs[5].label(), r.pairs[5].label());
  ASSERT_EQ(back.history.size(), r.history.size());
  EXPECT_EQ(back.history[1].test_accuracy, r.history[1].test_accuracy);
  EXPECT_EQ(back.history[1].train_loss, r.history[1].train_loss);
  EXPECT_EQ(back.history[1].test_loss, r.history[1].test_loss);
  EXPECT_EQ(back.history[1].val_ece, r.history[1].val_ece);
  EXPECT_EQ(back.history[1].test_ece, r.history[1].test_ece);
  // A result stored before the test CE and ECE were logged reads back with -1 for them.
  auto old_form = j;
  for (auto& e : old_form["history"]) {
    e.erase("test_loss");
    e.erase("val_ece");
    e.erase("test_ece");
  }
  EXPECT_EQ(multilayer_result_from_json(old_form).history[1].test_ece, -1);
  ASSERT_EQ(back.trajectory.size(), r.trajectory.size());
  EXPECT_EQ(back.trajectory[7].lambda, r.trajectory[7].lambda);
  EXPECT_EQ(back.trajectory[7].beta, r.trajectory[7].beta);
  EXPECT_EQ(back.lambda, r.lambda);
  EXPECT_EQ(back.beta, r.beta);
  EXPECT_EQ(back.steps, r.steps);
  EXPECT_EQ(back.hyper_steps, r.hyper_steps);
  EXPECT_EQ(back.final_test_accuracy, r.final_test_accuracy);
  auto broken = j;
  broken["lambda"].erase(0);
  expect_error([&] { multilayer_result_from_json(broken); }, {"5 pair weights for 6 pairs"});
  expect_error([&] { multilayer_result_from_json(nlohmann::json::object()); }, {"malformed"});
}


TEST(MultiLayerTrainer, ValBatchSizeSetsTheHyperStepBatch) {
  // The val split has 8 rows: batches of 8 see all of it every hyper-step, batches of 3 a
  // cycling third of it, so the learned weights differ (and are the same for 8 and 0 = batch 8).
  TinyData d;
  auto run = [&](int64_t val_batch) {
    Models m;
    auto t = quick();
    t.val_batch_size = val_batch;
    MultiLayerTrainer trainer(all_pairs("all-pairs-fd"), t);
    return trainer.fit(*m.student, *m.teacher, d.data()).lambda;
  };
  const auto full = run(8);
  EXPECT_EQ(run(0), full);
  EXPECT_NE(run(3), full);
}

// Multi-layer runs train in the one epoch loop and resume like every run: a run killed after 2
// of 4 epochs (here: stopped there) and resumed gives the uninterrupted run's λ and β trajectory,
// student and VID weights, bit for bit — with Adam meta-steps (their moments travel in the
// checkpoint) and with the online method (its tangents travel too), through a learning-rate drop.
TEST(MultiLayerTrainer, ResumeFromCheckpointEqualsUninterruptedRun) {
  TinyData d;
  // The extrapolating method (e1 3, e2 2) is checkpointed at step 8, inside a prediction phase.
  for (const std::string method : {"all-pairs-fd", "all-pairs-online", "all-pairs-online-proposed"}) {
    auto o = all_pairs(method).meta_optimizer("adam").meta_lr(0.05).beta_lr(0.05).online_mu(0.9)
                 .e1(3).e2(2);
    TempDir full_dir("full"), part_dir("part");
    auto t = quick(3, full_dir.path());
    t.epochs = 4;
    t.lr_step = 3;
    Models full;
    MultiLayerTrainer whole(o, t);
    const auto r_full = whole.fit(*full.student, *full.teacher, d.data());

    auto t_part = t;
    t_part.out_dir = part_dir.path();
    t_part.epochs = 2;
    {
      Models first;
      MultiLayerTrainer(o, t_part).fit(*first.student, *first.teacher, d.data());
    }
    ASSERT_TRUE(std::filesystem::exists(part_dir / "checkpoint.pt"));
    t_part.epochs = 4;
    t_part.resume = true;
    Models part;
    MultiLayerTrainer resumed(o, t_part);
    const auto r_part = resumed.fit(*part.student, *part.teacher, d.data());

    ASSERT_EQ(r_part.trajectory.size(), r_full.trajectory.size()) << method;
    for (size_t k = 0; k < r_full.trajectory.size(); ++k) {
      EXPECT_EQ(r_part.trajectory[k].lambda, r_full.trajectory[k].lambda) << method << " " << k;
      EXPECT_EQ(r_part.trajectory[k].beta, r_full.trajectory[k].beta) << method << " " << k;
    }
    EXPECT_NE(r_full.trajectory.front().lambda, r_full.trajectory.back().lambda);  // λ moved
    EXPECT_EQ(r_part.lambda, r_full.lambda);
    EXPECT_EQ(r_part.beta, r_full.beta);
    EXPECT_EQ(r_part.steps, r_full.steps);
    EXPECT_EQ(r_part.hyper_steps, r_full.hyper_steps);
    ASSERT_EQ(r_part.history.size(), 4u);
    EXPECT_EQ(r_part.history[3].test_accuracy, r_full.history[3].test_accuracy);
    auto pa = full.student->parameters(), pb = part.student->parameters();
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pb[i])) << method << " " << i;
    auto va = whole.vid()->parameters(), vb = resumed.vid()->parameters();
    ASSERT_EQ(va.size(), vb.size());
    for (size_t i = 0; i < va.size(); ++i) EXPECT_TRUE(va[i].equal(vb[i])) << method << " " << i;
    EXPECT_EQ(read_lines(part_dir / "pair_weights.csv").size(),
              read_lines(full_dir / "pair_weights.csv").size());
  }
}

// A checkpoint of another method, or of other settings, is not continued.
TEST(MultiLayerTrainer, ResumeRefusesACheckpointOfAnotherMethodOrSettings) {
  TinyData d;
  TempDir dir("ml");
  auto t = quick(0, dir.path());
  t.settings = {{"beta", 0.5}};
  {
    Models m;
    MultiLayerTrainer(all_pairs("all-pairs-fd"), t).fit(*m.student, *m.teacher, d.data());
  }
  t.resume = true;
  expect_error(
      [&] {
        Models m;
        MultiLayerTrainer(all_pairs("pairwise").student_taps({"conv1", "conv2", "conv3"}), t)
            .fit(*m.student, *m.teacher, d.data());
      },
      {"checkpoint of method 'all-pairs-fd'", "'pairwise'"});
  t.settings = {{"beta", 0.4}};
  expect_error(
      [&] {
        Models m;
        MultiLayerTrainer(all_pairs("all-pairs-fd").beta(0.4), t)
            .fit(*m.student, *m.teacher, d.data());
      },
      {"beta"});
}

}  // namespace
}  // namespace metadistill

namespace metadistill {
namespace {

// The multi-layer counterpart of Trainer.HyperStepsThatDoNotMoveLambdaLeaveTrainingUntouched: the
// learned methods with meta-steps too small to move the pair weights (1e-30) and β fixed train
// exactly as all-pairs-fixed (the same uniform weights): the hyper-steps leave no trace on the
// student's weights and BatchNorm statistics.
TEST(MultiLayerTrainer, HyperStepsThatDoNotMoveTheWeightsLeaveTrainingUntouched) {
  TinyData d;
  const auto state = [](const Classifier& student) {
    std::vector<torch::Tensor> s;
    for (const auto& p : student->parameters()) s.push_back(p.detach().clone());
    for (const auto& b : student->buffers()) s.push_back(b.detach().clone());
    return s;
  };
  Models fixed_models;
  const auto fixed = MultiLayerTrainer(all_pairs("all-pairs-fixed"), quick(3))
                         .fit(*fixed_models.student, *fixed_models.teacher, d.data());
  const auto fixed_state = state(fixed_models.student);
  for (const std::string method : {"all-pairs-exact", "all-pairs-fd", "all-pairs-online"})
    for (const std::string rule : {"sgd", "adam"}) {
      Models m;
      const auto r = MultiLayerTrainer(all_pairs(method).meta_optimizer(rule).meta_lr(1e-30).beta_lr(0),
                                       quick(3))
                         .fit(*m.student, *m.teacher, d.data());
      ASSERT_FALSE(r.trajectory.empty()) << method;
      const auto s = state(m.student);
      ASSERT_EQ(s.size(), fixed_state.size());
      for (size_t i = 0; i < s.size(); ++i)
        EXPECT_TRUE(s[i].equal(fixed_state[i])) << method << " " << rule << ": tensor " << i;
      EXPECT_EQ(r.history.back().train_loss, fixed.history.back().train_loss) << method << " " << rule;
    }
}

}  // namespace
}  // namespace metadistill
