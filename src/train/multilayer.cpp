#include "metadistill/train/multilayer.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/gradient_method.h"
#include "metadistill/meta/hypergradient.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/meta/meta_step.h"
#include "metadistill/meta/metaparameter_space.h"
#include "metadistill/meta/online_hypergradient.h"
#include "metadistill/meta/parameter_ops.h"
#include "metadistill/meta/trajectory.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/runtime.h"
#include "metadistill/train/loop.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

std::vector<MultiLayerMethod> declared_methods() {
  using L = MultiLayerMethod::Loss;
  using P = MultiLayerMethod::Pairs;
  using W = MultiLayerMethod::Weights;
  return {{"none", L::kCrossEntropy, P::kNone, W::kUniform, ""},
          {"hinton", L::kHinton, P::kNone, W::kUniform, ""},
          {"pairwise", L::kVid, P::kMatched, W::kUniform, ""},
          {"all-pairs-fixed", L::kVid, P::kAll, W::kUniform, ""},
          {"all-pairs-random", L::kVid, P::kAll, W::kRandom, ""},
          {"all-pairs-exact", L::kVid, P::kAll, W::kLearned, "exact"},
          {"all-pairs-fd", L::kVid, P::kAll, W::kLearned, "fd"},
          {"all-pairs-online", L::kVid, P::kAll, W::kLearned, "online"},
          {"all-pairs-proposed", L::kVid, P::kAll, W::kLearned, "fd", true},
          {"all-pairs-online-proposed", L::kVid, P::kAll, W::kLearned, "online", true}};
}

}  // namespace

const MultiLayerMethod& multilayer_method(const std::string& name) {
  static const std::vector<MultiLayerMethod> methods = declared_methods();
  for (const auto& m : methods)
    if (m.name == name) return m;
  fail("multilayer method '{}': expected one of {}", name,
       fmt::join(multilayer_method_names(), ", "));
}

std::vector<std::string> multilayer_method_names() {
  std::vector<std::string> names;
  for (const auto& m : declared_methods()) names.push_back(m.name);
  return names;
}

void MultiLayerOptions::validate() const {
  declared();
  check(beta() >= 0 && beta() <= 1, "multilayer beta = {}: expected a value in [0, 1]", beta());
  validate_hinton(hinton_lambda1(), temperature());
  check(std::isfinite(meta_lr()) && meta_lr() > 0, "multilayer meta_lr = {}: expected > 0", meta_lr());
  check(std::isfinite(beta_lr()) && beta_lr() >= 0,
        "multilayer beta_lr = {}: expected >= 0 (0 = beta fixed)", beta_lr());
  check(beta_min() >= 0 && beta_min() <= beta_max() && beta_max() <= 1,
        "multilayer beta_min = {}, beta_max = {}: expected 0 <= beta_min <= beta_max <= 1",
        beta_min(), beta_max());
  MetaStepRule::check_kind(meta_optimizer(), "multilayer meta_optimizer");
  if (learns())
    check(beta() >= beta_min() && beta() <= beta_max(),
          "multilayer beta = {}: outside [beta_min, beta_max] = [{}, {}]", beta(), beta_min(),
          beta_max());
  check(std::isfinite(fd_scale()) && fd_scale() > 0, "multilayer fd_scale = {}: expected > 0",
        fd_scale());
  check(hyper_every() >= 1, "multilayer hyper_every = {}: expected >= 1",
        hyper_every());
  check(std::isfinite(online_mu()) && online_mu() >= 0 && online_mu() <= 1,
        "multilayer online_mu = {}: expected a value in [0, 1]", online_mu());
  try {
    TrajectoryPredictorOptions().e1(e1()).e2(e2()).validate();
  } catch (const Error& e) {
    fail("multilayer {}", e.what());
  }
  check(std::isfinite(val_temperature()) && val_temperature() > 0,
        "multilayer val_temperature = {}: expected > 0", val_temperature());
  check(vid_hidden() >= 0, "multilayer vid_hidden = {}: expected >= 0 (0 = teacher channels)",
        vid_hidden());
  check(std::isfinite(vid_eps()) && vid_eps() > 0, "multilayer vid_eps = {}: expected > 0", vid_eps());
  check(std::isfinite(vid_init_variance()) && vid_init_variance() > vid_eps(),
        "multilayer vid_init_variance = {}: expected > vid_eps = {}", vid_init_variance(), vid_eps());
  if (uses_pairs()) make_pairs(*this);
}

nlohmann::json MultiLayerOptions::to_json() const {
  return {{"method", method()},
          {"teacher_taps", teacher_taps()},
          {"student_taps", student_taps()},
          {"beta", beta()},
          {"random_beta", random_beta()},
          {"hinton_lambda1", hinton_lambda1()},
          {"temperature", temperature()},
          {"meta_lr", meta_lr()},
          {"beta_lr", beta_lr()},
          {"beta_min", beta_min()},
          {"beta_max", beta_max()},
          {"meta_optimizer", meta_optimizer()},
          {"fd_scale", fd_scale()},
          {"hyper_every", hyper_every()},
          {"online_mu", online_mu()},
          {"e1", e1()},
          {"e2", e2()},
          {"val_temperature", val_temperature()},
          {"vid_hidden", vid_hidden()},
          {"vid_init_variance", vid_init_variance()},
          {"vid_eps", vid_eps()},
          {"vid_weight_decay", vid_weight_decay()}};
}

nlohmann::json multilayer_result_to_json(const MultiLayerResult& r) {
  nlohmann::json pairs = nlohmann::json::array(), history = nlohmann::json::array();
  for (const auto& p : r.pairs) pairs.push_back({p.teacher, p.student});
  for (const auto& e : r.history) {
    auto entry = epoch_record_json(e);
    entry["beta"] = e.beta;
    history.push_back(std::move(entry));
  }
  // The trajectory column-wise: one array per quantity keeps long runs compact.
  nlohmann::json steps = nlohmann::json::array(), betas = nlohmann::json::array(),
                 norms = nlohmann::json::array(), lambdas = nlohmann::json::array();
  for (const auto& p : r.trajectory) {
    steps.push_back(p.step);
    betas.push_back(p.beta);
    norms.push_back(p.hypergradient_norm);
    lambdas.push_back(p.lambda);
  }
  return {{"method", r.method},
          {"pairs", pairs},
          {"history", history},
          {"trajectory",
           {{"step", steps}, {"beta", betas}, {"hypergradient_norm", norms}, {"lambda", lambdas}}},
          {"lambda", r.lambda},
          {"beta", r.beta},
          {"final_test_accuracy", r.final_test_accuracy},
          {"best_test_accuracy", r.best_test_accuracy},
          {"seconds", r.seconds},
          {"steps", r.steps},
          {"hyper_steps", r.hyper_steps},
          {"stopped_by_time_limit", r.stopped_by_time_limit}};
}

MultiLayerResult multilayer_result_from_json(const nlohmann::json& j) {
  MultiLayerResult r;
  try {
    r.method = j.at("method").get<std::string>();
    for (const auto& p : j.at("pairs"))
      r.pairs.push_back({p.at(0).get<std::string>(), p.at(1).get<std::string>()});
    for (const auto& e : j.at("history")) {
      MultiLayerEpoch m;
      static_cast<EpochRecord&>(m) = epoch_record_from_json(e);
      m.beta = e.at("beta").get<double>();
      r.history.push_back(m);
    }
    const auto& t = j.at("trajectory");
    const auto& steps = t.at("step");
    check(t.at("beta").size() == steps.size() && t.at("lambda").size() == steps.size() &&
              t.at("hypergradient_norm").size() == steps.size(),
          "trajectory columns of different lengths");
    for (size_t k = 0; k < steps.size(); ++k) {
      PairWeightsPoint p;
      p.step = steps.at(k).get<int64_t>();
      p.beta = t.at("beta").at(k).get<double>();
      p.hypergradient_norm = t.at("hypergradient_norm").at(k).get<double>();
      p.lambda = t.at("lambda").at(k).get<std::vector<double>>();
      r.trajectory.push_back(std::move(p));
    }
    r.lambda = j.at("lambda").get<std::vector<double>>();
    check(r.lambda.size() == r.pairs.size(), "{} pair weights for {} pairs", r.lambda.size(),
          r.pairs.size());
    r.beta = j.at("beta").get<double>();
    r.final_test_accuracy = j.at("final_test_accuracy").get<double>();
    r.best_test_accuracy = j.at("best_test_accuracy").get<double>();
    r.seconds = j.at("seconds").get<double>();
    r.steps = j.at("steps").get<int64_t>();
    r.hyper_steps = j.at("hyper_steps").get<int64_t>();
    r.stopped_by_time_limit = j.at("stopped_by_time_limit").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    fail("multilayer result: malformed JSON ({})", e.what());
  } catch (const Error& e) {
    fail("multilayer result: {}", e.what());
  }
  return r;
}

std::vector<TapPair> make_pairs(const MultiLayerOptions& o) {
  std::vector<TapPair> pairs;
  if (!o.uses_pairs()) return pairs;
  check(!o.teacher_taps().empty() && !o.student_taps().empty(),
        "multilayer method '{}' needs teacher_taps and student_taps (got {} and {})", o.method(),
        o.teacher_taps().size(), o.student_taps().size());
  if (o.declared().pairs == MultiLayerMethod::Pairs::kMatched) {
    check(o.teacher_taps().size() == o.student_taps().size(),
          "multilayer method 'pairwise' pairs teacher tap k with student tap k, but there are {} "
          "teacher taps [{}] and {} student taps [{}]",
          o.teacher_taps().size(), fmt::join(o.teacher_taps(), ", "), o.student_taps().size(),
          fmt::join(o.student_taps(), ", "));
    for (size_t k = 0; k < o.teacher_taps().size(); ++k)
      pairs.push_back({o.teacher_taps()[k], o.student_taps()[k]});
    return pairs;
  }
  for (const auto& t : o.teacher_taps())
    for (const auto& s : o.student_taps()) pairs.push_back({t, s});
  return pairs;
}

namespace {


// The pair weights live on the simplex, λ = softmax(a) (vid_space). Only (1 − β)·λij matters in
// the loss, so with free non-negative λ the total distillation weight would be carried twice (by
// β and by Σλ) and a greedy hyper-step could inflate Σλ, i.e. the effective learning rate, which
// the one-step objective rewards; on the simplex β alone sets that total and λ only says where to
// distill. Softmax also keeps every λij > 0, so a pair driven down can recover, where projection
// onto λ ≥ 0 would park it at exactly 0 with a zero-gradient corner.

void write_multilayer_outputs(const fs::path& dir, const MultiLayerResult& r) {
  std::string m = metrics_csv_header({"beta"});
  for (const auto& e : r.history) m += metrics_csv_row(e, {e.beta});
  write_file_atomic(dir / "metrics.csv", m);
  if (r.pairs.empty()) return;
  std::ostringstream t;
  t << "step,beta,hypergradient_norm";
  for (const auto& p : r.pairs) t << "," << p.label();
  t << "\n";
  for (const auto& p : r.trajectory) {
    t << p.step << "," << csv_number(p.beta) << "," << csv_number(p.hypergradient_norm);
    for (double l : p.lambda) t << "," << csv_number(l);
    t << "\n";
  }
  write_file_atomic(dir / "pair_weights.csv", t.str());
  std::ostringstream f;
  f << "teacher,student,lambda\n";
  for (size_t i = 0; i < r.pairs.size(); ++i)
    f << r.pairs[i].teacher << "," << r.pairs[i].student << "," << csv_number(r.lambda[i]) << "\n";
  write_file_atomic(dir / "pairs.csv", f.str());
}

}  // namespace

namespace {

// The method that sets m = [a_1..a_P, β] of `vid_space` (λ = softmax(a)) for every step: the
// registered fixed method for the uniform and random weights (and β = 1 or λ1 for "none" and
// "hinton"), the gradient method over the VID head's space for the learned ones, under the
// trajectory predictor for the extrapolating ones. The meta-step takes `meta_lr` on the pair
// logits and `beta_lr` on β; Adam's ε is 1e-12, far below the hypergradient of a (about 1e-7).
std::unique_ptr<MetaOptimizer> pair_weights_method(const MultiLayerOptions& ml, size_t pairs,
                                                   std::vector<double> coordinates) {
  const auto& method = ml.declared();
  if (!method.learns())
    return std::make_unique<FixedMetaOptimizer>(ml.method(), vid_space(pairs),
                                                std::move(coordinates));
  MethodOptions mo;
  mo.method = ml.method();
  mo.space = vid_space(pairs, ml.beta_min(), ml.beta_max());
  mo.initial_coordinates = std::move(coordinates);
  GradientMethodOptions g;
  g.online = method.hypergradient == "online";
  if (!g.online) g.hypergradient.mode = method.hypergradient;
  g.hypergradient.fd_scale = ml.fd_scale();
  g.hypergradient.val_temperature = ml.val_temperature();
  g.online_options = OnlineHypergradientOptions().mu(ml.online_mu()).fd_scale(ml.fd_scale());
  g.reset_on_lr_drop = false;
  g.every = ml.hyper_every();
  g.meta_step = ml.meta_optimizer();
  g.step_sizes.assign(pairs, ml.meta_lr());
  g.step_sizes.push_back(ml.beta_lr());
  g.meta_step_eps = 1e-12;
  g.e1 = ml.e1();
  g.e2 = ml.e2();
  g.validate();
  if (method.extrapolated) return std::make_unique<TrajectoryMetaOptimizer>(mo, g);
  return std::make_unique<GradientMetaOptimizer>(mo, g);
}

// Multi-layer distillation as a body of the one epoch loop (train/loop.h): the loss head
// L = β · CE + (1 − β) · Σ λij · VID (or CE, or Hinton, by method) under the method of
// `pair_weights_method`, which hands it the coordinates [a_1..a_P, β] of every step.
class VidBody : public LoopBody {
 public:
  VidBody(const MultiLayerOptions& ml, const TrainerOptions& o, std::vector<TapPair> pairs,
          ClassifierImpl& student, ClassifierImpl& teacher, MultiVID vid,
          torch::optim::Optimizer& optimizer, std::vector<torch::Tensor> all_params,
          const DataSet& train_set, MetaOptimizer& meta, MultiLayerResult& result)
      : ml_(ml), method_(ml.declared()), o_(o), pairs_(std::move(pairs)), student_(student),
        teacher_(teacher), vid_(std::move(vid)), optimizer_(optimizer),
        all_params_(std::move(all_params)), teacher_inputs_(train_set.teacher_input()),
        own_teacher_inputs_(train_set.x_teacher.defined()), meta_(meta), result_(result),
        dtype_(student.parameters().front().scalar_type()) {
    check(meta_.space().size() == pairs_.size() + 1, "multilayer: a method over {} metaparameters "
          "for {} pairs", meta_.space().size(), pairs_.size());
    guarded_ = {&student_};
    if (vid_) guarded_.push_back(vid_.get());
  }

  std::string name() const override { return ml_.method(); }

  double step(const LoopStep& s) override {
    using Loss = MultiLayerMethod::Loss;
    const Batch& batch = *s.batch;
    const size_t P = pairs_.size();
    // The teacher sees what the student sees unless the data give it its own inputs.
    Features tf;
    if (method_.loss != Loss::kCrossEntropy) {
      torch::NoGradGuard no_grad;
      auto xt = own_teacher_inputs_
                    ? teacher_inputs_.index_select(0, batch.idx.cpu()).to(o_.device)
                    : batch.x;
      tf = teacher_.forward_features(xt);
    }
    // L(m) at the current weights, m the coordinates [a_1..a_P, β] (only for the pair methods);
    // `logits` keeps the student's logits of the last evaluation.
    torch::Tensor logits;
    const TrainLossFn train_loss = [&](const torch::Tensor& m) -> torch::Tensor {
      if (method_.loss == Loss::kCrossEntropy) {
        logits = student_.forward(batch.x);
        return torch::nn::functional::cross_entropy(logits, batch.y);
      }
      if (method_.loss == Loss::kHinton) {
        logits = student_.forward(batch.x);
        return functional::hinton_loss(logits, tf.back().second, batch.y, ml_.hinton_lambda1(),
                                       ml_.temperature());
      }
      auto sf = student_.forward_features(batch.x);
      logits = sf.back().second;
      auto ce = torch::nn::functional::cross_entropy(logits, batch.y);
      const auto values = meta_.space().from_coordinates(m);  // [λ_1..λ_P, β]
      auto lambda = values.slice(0, 0, static_cast<int64_t>(P));
      auto b_ = values[static_cast<int64_t>(P)];
      return b_ * ce + (1 - b_) * vid_->forward(tf, sf, lambda);
    };
    HyperStepContext ctx = s.context(student_, optimizer_, o_.optimizer);
    ctx.head = {train_loss, all_params_, guarded_};
    meta_.before_step(ctx);

    const torch::Tensor m_used =
        method_.uses_pairs()
            ? torch::tensor(meta_.coordinates(), torch::TensorOptions().dtype(torch::kDouble))
                  .to(o_.device, dtype_)
            : torch::Tensor();
    auto loss = train_loss(m_used);
    double loss_value = loss.item<double>();
    const auto what = [&] { return fmt::format("method {}, beta {}", ml_.method(), beta()); };
    if (!s.reduce) s.check_loss(loss_value, what());
    optimizer_.zero_grad();
    // The epoch's last step also measures the effective learning rate (one extra backward).
    const bool measure = s.index + 1 == s.batches;
    loss.backward({}, /*retain_graph=*/measure);
    if (s.reduce) {
      // The whole batch's loss and gradient (VID terms included) on every rank.
      loss_value = reduce_step(all_params_, s.reduce, loss_value, batch.x.size(0));
      s.check_loss(loss_value, what());
    }
    if (measure) effective_lr_ = measure_effective_lr(student_, logits, batch.y, s.lr, s.reduce);
    optimizer_.step();
    meta_.after_step(ctx);
    // The row of this step: λ and β after its hyper-step, and that hyper-step's h.
    const auto h = meta_.last_point().hypergradient;
    if (!h.empty()) ++result_.hyper_steps;
    if (method_.uses_pairs()) {
      PairWeightsPoint point;
      point.step = s.step;
      point.beta = beta();
      point.lambda = lambda();
      if (!h.empty()) {
        point.hypergradient_norm =
            torch::tensor(h, torch::TensorOptions().dtype(torch::kDouble)).norm().item<double>();
        point.hypergradient = h;
      }
      result_.trajectory.push_back(std::move(point));
    }
    return loss_value;
  }

  void end_epoch(const LoopEpoch& e, int64_t epochs, bool verbose) override {
    MultiLayerEpoch m;
    static_cast<EpochRecord&>(m) = epoch_record(e, effective_lr_);
    m.beta = beta();
    result_.history.push_back(m);
    if (verbose)
      std::cerr << fmt::format(
          "[{}] epoch {}/{} loss {:.4f} val {:.4f} test {:.4f} beta {:.3f} ({:.1f}s)\n",
          ml_.method(), m.epoch, epochs, m.train_loss, m.val_accuracy, m.test_accuracy, beta(),
          m.seconds);
  }

  void save(nlohmann::json& j, torch::serialize::OutputArchive& archive) const override {
    finish();
    j["multilayer"] = {{"result", multilayer_result_to_json(result_)},
                       {"meta_state", meta_.state()}};
    j["hyper_steps"] = result_.hyper_steps;
    if (vid_) {
      torch::serialize::OutputArchive sub;
      vid_->save(sub);
      archive.write("vid", sub);
    }
    torch::serialize::OutputArchive meta_archive;
    meta_.save_tensors(meta_archive);
    archive.write("meta_tensors", meta_archive);
  }

  void load(const nlohmann::json& j, torch::serialize::InputArchive& archive, bool fork) override {
    const auto& ml = j.at("multilayer");
    const auto stored = multilayer_result_from_json(ml.at("result"));
    check(stored.pairs.size() == pairs_.size(), "checkpoint of {} pairs, but this run has {}",
          stored.pairs.size(), pairs_.size());
    result_.history = stored.history;
    result_.trajectory = stored.trajectory;
    result_.hyper_steps = stored.hyper_steps;
    if (vid_) {
      torch::serialize::InputArchive sub;
      archive.read("vid", sub);
      vid_->load(sub);
    }
    if (fork) return;
    meta_.load_state(ml.contains("meta_state") ? ml.at("meta_state") : older_state(ml));
    torch::serialize::InputArchive meta_archive;
    // Older checkpoints hold the online tangents at the top level.
    if (archive.try_read("meta_tensors", meta_archive))
      meta_.load_tensors(meta_archive);
    else
      meta_.load_tensors(archive);
  }

  void write_outputs(const fs::path& dir) const override {
    finish();
    write_multilayer_outputs(dir, result_);
  }

  /// Writes the final λ and β into the result.
  void finish() const {
    result_.lambda = lambda();
    result_.beta = beta();
  }
  double beta() const { return meta_.values().back(); }
  /// λ_1..λ_P in force.
  std::vector<double> lambda() const {
    auto v = meta_.values();
    v.pop_back();
    return v;
  }

 private:
  /// The method state of checkpoints written before the multi-layer methods were
  /// `MetaOptimizer`s: the pair logits a, β, the meta-step's and the predictor's state.
  nlohmann::json older_state(const nlohmann::json& ml) const {
    auto c = ml.at("a").get<std::vector<double>>();
    check(c.size() == pairs_.size(), "checkpoint of {} pair weights for {} pairs", c.size(),
          pairs_.size());
    c.push_back(ml.at("beta").get<double>());
    nlohmann::json s = {{"coordinates", c},
                        {"values", meta_.space().from_coordinates(c)},
                        {"meta_step", ml.at("meta_step")}};
    if (ml.contains("trajectory")) s["trajectory"] = ml.at("trajectory");
    return s;
  }

  const MultiLayerOptions& ml_;
  const MultiLayerMethod& method_;
  const TrainerOptions& o_;
  std::vector<TapPair> pairs_;
  ClassifierImpl& student_;
  ClassifierImpl& teacher_;
  MultiVID vid_;
  torch::optim::Optimizer& optimizer_;
  std::vector<torch::Tensor> all_params_;
  std::vector<torch::nn::Module*> guarded_;
  torch::Tensor teacher_inputs_;
  bool own_teacher_inputs_;
  MetaOptimizer& meta_;
  MultiLayerResult& result_;
  torch::ScalarType dtype_;
  double effective_lr_ = -1;
};

}  // namespace

MultiLayerTrainer::MultiLayerTrainer(MultiLayerOptions options, TrainerOptions trainer)
    : options_(std::move(options)), trainer_(std::move(trainer)) {
  options_.validate();
  trainer_.validate();
}

MultiLayerResult MultiLayerTrainer::fit(ClassifierImpl& student, ClassifierImpl& teacher,
                                        const MultiLayerData& data) {
  check(data.train_set != nullptr && data.test_set != nullptr,
        "multilayer fit: train and test data needed");
  const auto& o = trainer_;
  const auto& ml = options_;
  const auto pairs = make_pairs(ml);
  std::vector<std::string> teacher_taps, student_taps;
  for (const auto& p : pairs) {
    teacher_taps.push_back(p.teacher);
    student_taps.push_back(p.student);
  }
  check_taps(teacher, teacher_taps, "teacher");
  check_taps(student, student_taps, "student");
  check(!ml.learns() || (data.val_set != nullptr && data.val_set->size() > 0),
        "multilayer method '{}' needs validation data, but there is none", ml.method());

  student.to(o.device);
  teacher.to(o.device);
  teacher.eval();

  // The VID terms, built from one example forward of each model (eval mode, so no BatchNorm
  // statistic moves); initialised from their own seed so that runs are reproducible whatever
  // the caller drew before.
  vid_ = MultiVID(nullptr);
  if (!pairs.empty()) {
    torch::NoGradGuard no_grad;
    auto ex = data.train_ids.slice(0, 0, std::min<int64_t>(2, data.train_ids.size(0)));
    auto xs = data.train_set->x.index_select(0, ex).to(o.device);
    auto xt = data.train_set->teacher_input().index_select(0, ex).to(o.device);
    const bool was_training = student.is_training();
    student.eval();
    auto sf = student.forward_features(xs);
    auto tf = teacher.forward_features(xt);
    student.train(was_training);
    {
      // The draws come from the process-wide generator (see `generator_mutex`).
      std::lock_guard<std::mutex> lock(generator_mutex());
      torch::manual_seed(o.seed * 7919ULL + 17ULL);
      vid_ = MultiVID(pairs, tf, sf,
                      MultiVIDOptions()
                          .hidden(ml.vid_hidden())
                          .init_variance(ml.vid_init_variance())
                          .eps(ml.vid_eps()));
    }
    vid_->to(o.device, student.parameters().front().scalar_type());
    vid_->train();
  }
  student.train();

  // Metaparameters: the coordinates [a_1..a_P, β] of vid_space, λ = softmax(a), kept in double.
  // β is the weight of CE in every method: 1 for "none", λ1 for "hinton".
  using Loss = MultiLayerMethod::Loss;
  const auto& method = ml.declared();
  std::vector<double> coordinates(pairs.size(), 0.0);
  coordinates.push_back(method.loss == Loss::kCrossEntropy ? 1.0
                        : method.loss == Loss::kHinton     ? ml.hinton_lambda1()
                                                           : ml.beta());
  if (method.weights == MultiLayerMethod::Weights::kRandom) {
    // λ ~ U(0, 1) normalized onto the simplex (the space's draw), and β ~ U(0, 1) when asked.
    std::mt19937_64 rng(o.seed * 1000003ULL + 11ULL);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<double> uniforms(pairs.size());
    for (auto& v : uniforms) v = u(rng);
    uniforms.push_back(ml.random_beta() ? u(rng) : ml.beta());
    const auto space = vid_space(pairs.size());
    coordinates = space.draw_coordinates(uniforms);
  }

  const auto student_params = trainable_parameters(student);
  const auto vid_params = vid_ ? trainable_parameters(*vid_) : std::vector<torch::Tensor>{};
  std::vector<std::vector<torch::Tensor>> groups = {student_params};
  if (!vid_params.empty()) groups.push_back(vid_params);
  auto optimizer =
      make_student_optimizer(o, groups, ml.vid_weight_decay() ? o.weight_decay : 0.0);
  std::vector<torch::Tensor> all_params = student_params;
  all_params.insert(all_params.end(), vid_params.begin(), vid_params.end());

  MultiLayerResult result;
  result.method = ml.method();
  result.pairs = pairs;
  const auto meta = pair_weights_method(ml, pairs.size(), std::move(coordinates));
  VidBody body(ml, o, pairs, student, teacher, vid_, *optimizer, all_params, *data.train_set,
               *meta, result);
  const LoopOutcome outcome = run_epochs(o, student, *optimizer, *data.train_set, data.train_ids,
                                         data.val_set, *data.test_set, body);
  body.finish();
  result.seconds = outcome.seconds;
  result.steps = outcome.steps;
  result.stopped_by_time_limit = outcome.stopped_by_time_limit;
  result.best_test_accuracy = 0;
  for (const auto& e : result.history)
    result.best_test_accuracy = std::max(result.best_test_accuracy, e.test_accuracy);
  if (!result.history.empty()) result.final_test_accuracy = result.history.back().test_accuracy;

  if (!o.out_dir.empty()) {
    write_multilayer_outputs(o.out_dir, result);
    ModelSpec spec(student.kind(), 0, data.train_set->x.sizes().slice(1).vec());
    {
      torch::NoGradGuard no_grad;
      const bool was_training = student.is_training();
      student.eval();
      spec.num_classes = student.forward(data.train_set->x.slice(0, 0, 1).to(o.device)).size(1);
      student.train(was_training);
    }
    nlohmann::json extra = {{"method", ml.method()}, {"beta", body.beta()},
                            {"lambda", result.lambda}};
    for (const auto& p : pairs) extra["pairs"].push_back({p.teacher, p.student});
    save_multilayer_student(o.out_dir / "student.pt", student, spec, vid_ ? vid_.get() : nullptr,
                            extra);
  }
  return result;
}

void save_multilayer_student(const fs::path& path, const ClassifierImpl& student,
                             const ModelSpec& spec, const MultiVIDImpl* vid,
                             const nlohmann::json& extra) {
  torch::serialize::OutputArchive archive;
  write_model(archive, student, spec);
  nlohmann::json j = {{"format", "metadistill-multilayer"}, {"version", 1}, {"extra", extra}};
  if (vid != nullptr) {
    nlohmann::json pairs = nlohmann::json::array();
    for (size_t p = 0; p < vid->pairs().size(); ++p)
      pairs.push_back({{"teacher", vid->pairs()[p].teacher},
                       {"student", vid->pairs()[p].student},
                       {"teacher_shape", vid->teacher_shapes()[p]},
                       {"student_shape", vid->student_shapes()[p]}});
    j["vid"] = {{"pairs", pairs},
                {"hidden", vid->options().hidden()},
                {"init_variance", vid->options().init_variance()},
                {"eps", vid->options().eps()}};
    torch::serialize::OutputArchive sub;
    vid->save(sub);
    archive.write("vid", sub);
  }
  archive.write("multilayer", c10::IValue(j.dump()));
  save_archive_atomic(archive, path);
}

LoadedMultiLayerStudent load_multilayer_student(const fs::path& path) {
  torch::serialize::InputArchive archive;
  load_archive(archive, path);
  LoadedMultiLayerStudent out;
  out.student = read_model(archive, path.string());
  try {
    c10::IValue v;
    check(archive.try_read("multilayer", v), "{}: a model file without VID terms (not written by "
          "multilayer training)", path.string());
    auto j = nlohmann::json::parse(v.toStringRef());
    check(j.value("format", "") == "metadistill-multilayer", "{}: not a multilayer student file",
          path.string());
    out.extra = j.value("extra", nlohmann::json());
    if (j.contains("vid")) {
      const auto& jv = j.at("vid");
      std::vector<TapPair> pairs;
      std::vector<std::vector<int64_t>> ts, ss;
      for (const auto& p : jv.at("pairs")) {
        pairs.push_back({p.at("teacher").get<std::string>(), p.at("student").get<std::string>()});
        ts.push_back(p.at("teacher_shape").get<std::vector<int64_t>>());
        ss.push_back(p.at("student_shape").get<std::vector<int64_t>>());
      }
      out.vid = MultiVID(pairs, ts, ss,
                         MultiVIDOptions()
                             .hidden(jv.at("hidden").get<int64_t>())
                             .init_variance(jv.at("init_variance").get<double>())
                             .eps(jv.at("eps").get<double>()));
      torch::serialize::InputArchive sub;
      archive.read("vid", sub);
      out.vid->load(sub);
    }
  } catch (const c10::Error& e) {
    fail("{}: corrupt or incompatible VID terms ({})", path.string(),
         std::string(e.what_without_backtrace()).substr(0, 200));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt multilayer description ({})", path.string(), e.what());
  }
  return out;
}

}  // namespace metadistill
