#include "metadistill/experiment/multilayer.h"

#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "metadistill/experiment/distill.h"
#include "metadistill/experiment/experiment.h"
#include "metadistill/experiment/plots.h"
#include "metadistill/experiment/run_pool.h"
#include "metadistill/experiment/run_queue.h"
#include "metadistill/experiment/statistics.h"
#include "metadistill/train/data_parallel.h"
#include "metadistill/train/external_teacher.h"
#include "metadistill/train/teacher.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/settings_key.h"
#include "metadistill/util/runtime.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> unique_in_order(const std::vector<std::string>& v) {
  std::vector<std::string> out;
  for (const auto& s : v)
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  return out;
}

}  // namespace

fs::path draw_pair_weights(const std::vector<TapPair>& pairs, const std::vector<double>& lambda,
                           const std::vector<std::string>& teacher_taps,
                           const std::vector<std::string>& student_taps, const fs::path& dir,
                           const std::string& name, const std::string& title) {
  check(pairs.size() == lambda.size(), "pair weights plot: {} pairs but {} weights", pairs.size(),
        lambda.size());
  fs::create_directories(dir);
  const auto teachers = unique_in_order(teacher_taps);
  const auto students = unique_in_order(student_taps);
  auto row = [](const std::vector<std::string>& names, const std::string& n) {
    return static_cast<double>(std::find(names.begin(), names.end(), n) - names.begin());
  };
  // Nodes: x = 0 teacher, x = 1 student, top to bottom in forward order.
  std::ostringstream nodes;
  for (size_t i = 0; i < teachers.size(); ++i) nodes << "0," << -double(i) << "," << teachers[i] << "\n";
  nodes << "\n\n";
  for (size_t j = 0; j < students.size(); ++j) nodes << "1," << -double(j) << "," << students[j] << "\n";
  write_file_atomic(dir / (name + ".dat"), nodes.str());
  const double top = lambda.empty() ? 1.0 : *std::max_element(lambda.begin(), lambda.end());
  std::ostringstream setup;
  setup << "set title '" << title << "'\nunset key\nunset border\nunset xtics\nunset ytics\n"
        << "set xrange [-0.6:1.6]\nset yrange [" << -double(std::max(teachers.size(), students.size())) + 0.4
        << ":0.8]\n"
        << "set label 'teacher' at 0,0.5 center\nset label 'student' at 1,0.5 center\n";
  for (size_t p = 0; p < pairs.size(); ++p) {
    const double width = top > 0 ? 0.2 + 11.8 * lambda[p] / top : 1.0;
    setup << fmt::format(
        "set arrow from 0,{} to 1,{} nohead lw {:.3f} lc rgb '#3366aa' back  # {} = {:.4g}\n",
        -row(teachers, pairs[p].teacher), -row(students, pairs[p].student), width,
        pairs[p].label(), lambda[p]);
  }
  const std::string dat = name + ".dat";
  const std::string body = fmt::format(
      "plot '{0}' index 0 using 1:2 with points pt 7 ps 2.5 lc rgb '#cc2222', "
      "'{0}' index 0 using ($1-0.08):2:3 with labels right, "
      "'{0}' index 1 using 1:2 with points pt 7 ps 2.5 lc rgb '#22aa22', "
      "'{0}' index 1 using ($1+0.08):2:3 with labels left",
      dat);
  auto script = write_gnuplot_script(dir, name, setup.str(), body);
  run_gnuplot(script);
  return dir / (name + ".png");
}

std::unique_ptr<MultiLayerSession> open_multilayer_session(const MultiLayerConfig& config,
                                                           bool verbose) {
  Config c = config.base;
  c.resolve_paths();  // an empty teacher file or cache goes under `out`
  auto s = std::make_unique<MultiLayerSession>();
  s->device = parse_device(c.device);
  s->bundle = load_data(c.data, c.cache);
  const DataBundle& data = s->bundle;
  const auto teacher_shape = data.pool.teacher_input().sizes().slice(1).vec();
  check(c.teacher_logits.empty(),
        "{}: teacher.logits {}: multi-layer distillation needs a teacher that runs (its "
        "intermediate layers); give teacher.torchscript or a zoo teacher",
        c.source, c.teacher_logits);
  if (!c.teacher_torchscript.empty()) {
    // Taps by the convention of train/external_teacher.h: a `features` method.
    auto t = load_torchscript_teacher(c.teacher_torchscript, teacher_shape, data.num_classes,
                                      s->device);
    for (const auto& tap : config.options.teacher_taps())
      check(tap == "logits" || t->has_features(),
            "teacher.torchscript {}: teacher tap '{}' needs a method `features(self, x) -> "
            "Dict[str, Tensor]` (decorated with @torch.jit.export); the module offers {}",
            c.teacher_torchscript, tap, t->offers());
    s->teacher = {t, ModelSpec("torchscript", data.num_classes, teacher_shape)};
    s->teacher_hash = hash_string(read_file(c.teacher_torchscript));
  } else {
    ModelSpec teacher_spec(c.teacher.model, data.num_classes, teacher_shape);
    TrainerOptions tt = c.teacher.trainer;
    tt.device = s->device;
    s->teacher = ensure_teacher(data, teacher_spec, tt, c.teacher_file);
    s->teacher.model->to(s->device);
    s->teacher_hash = hash_string(read_file(c.teacher_file));
  }
  s->teacher_test_accuracy =
      evaluate_accuracy(*s->teacher.model, teacher_view(data.test), 1024, s->device);
  if (verbose)
    std::cerr << fmt::format("teacher {} test accuracy {:.4f}\n", s->teacher.spec.name,
                             s->teacher_test_accuracy);

  // Check the taps of both models before any training, so a typo fails at once.
  s->student_spec =
      ModelSpec(c.student.model, data.num_classes, data.pool.x.sizes().slice(1).vec());
  {
    auto probe = make_model(s->student_spec);
    check_taps(*s->teacher.model, config.options.teacher_taps(), "teacher");
    check_taps(*probe, config.options.student_taps(), "student");
  }
  s->validation = data.validation();
  s->data.train_set = &data.pool;
  s->data.train_ids = data.train_idx;
  s->data.val_set = &s->validation;
  s->data.test_set = &data.test;
  return s;
}

MultiLayerResult train_multilayer_run(MultiLayerSession& session, const MultiLayerConfig& config,
                                      const MultiLayerOptions& options, uint64_t seed,
                                      const fs::path& dir, bool reuse, bool verbose,
                                      bool* reused, std::shared_ptr<DataParallel> group) {
  const Config& c = config.base;
  TrainerOptions t = c.student.trainer;
  t.seed = seed;
  t.device = session.device;
  t.out_dir = dir;
  t.verbose = verbose;
  const bool rank0 = !group || group->rank() == 0;
  t.data_parallel = std::move(group);
  // Everything that shapes the run; threads, output folder and device do not. A killed run
  // continues from its checkpoint when that was made with these settings (else it is refused,
  // naming the settings that differ).
  const nlohmann::json settings = c.to_json();
  t.settings = {{"data", settings.at("data")},
                {"fingerprint", session.bundle.fingerprint},
                {"teacher", session.teacher_hash},
                {"student", settings.at("student")},
                {"time_limit", t.time_limit},
                {"options", options.to_json()},
                {"seed", seed}};
  t.resume = reuse;
  // The legacy key of results stored before settings records (the same hash as then).
  const std::string key = hash_string(t.settings.dump());
  const fs::path file = dir / "result.json";
  if (reused != nullptr) *reused = false;
  nlohmann::json j;
  MultiLayerResult stored_result;
  if (reuse && fs::exists(file)) {
    try {
      j = nlohmann::json::parse(read_file(file));
      stored_result = multilayer_result_from_json(j.at("result"));
    } catch (const std::exception& e) {
      std::cerr << fmt::format("warning: {}: unreadable ({}); training the run again\n",
                               file.string(), e.what());
      j = nlohmann::json();
    }
  }
  if (!j.is_null()) {
    // A run stored with other settings is refused, naming them (never shown as this run's).
    if (j.contains("settings_key"))
      check_stored_settings(j, t.settings, file.string());
    else
      check(j.value("key", "") == key,
            "{}: stored with other settings than this run's; refusing to reuse or continue it "
            "(run again with --fresh to discard it and start afresh)",
            file.string());
    if (!stored_result.stopped_by_time_limit) {
      if (reused != nullptr) *reused = true;
      if (verbose)
        std::cerr << fmt::format("{} seed {}: reusing the finished run in {}\n", options.method(),
                                 seed, dir.string());
      return stored_result;
    }
  }
  seed_everything(seed);
  Classifier student = make_model(session.student_spec);
  MultiLayerTrainer trainer(options, t);
  auto r = trainer.fit(*student, *session.teacher.model, session.data);
  if (!rank0) return r;
  nlohmann::json stored = {{"key", key}, {"result", multilayer_result_to_json(r)}};
  stored.update(settings_record(t.settings));
  write_file_atomic(file, stored.dump() + "\n");
  return r;
}

MultiLayerExperimentResult run_multilayer_experiment(const MultiLayerConfig& config,
                                                     const MultiLayerExperimentOptions& options) {
  const Config& c = config.base;
  const auto methods = options.methods.empty() ? config.methods : options.methods;
  const auto names = multilayer_method_names();
  for (const auto& m : methods)
    check(std::find(names.begin(), names.end(), m) != names.end(),
          "--methods: unknown method '{}': expected one of {}", m, fmt::join(names, ", "));
  const int64_t runs = options.runs > 0 ? options.runs : c.runs;
  RunQueue* const queue = options.queue.get();
  RunPoolOptions po;
  po.jobs = options.jobs;
  po.worker_command = options.worker_command;
  po.worker = options.worker;
  po.queue = queue;
  po.fresh = !options.reuse;
  po.validate();
  const bool root = queue == nullptr || queue->root();
  // The teacher is trained (or loaded) here, before any worker starts; the other ranks of a
  // group take rank 0's.
  std::unique_ptr<MultiLayerSession> session;
  prepare_teacher_in_group(queue, c, [&] {
    session = open_multilayer_session(config, options.verbose && root);
  });

  MultiLayerExperimentResult r;
  r.data = session->bundle.name;
  r.preset = c.preset;
  r.teacher_model = c.teacher_torchscript.empty() ? c.teacher.model : "torchscript";
  r.student_model = c.student.model;
  r.methods = methods;
  r.reference = c.reference;
  r.teacher_test_accuracy = session->teacher_test_accuracy;

  const fs::path out(c.out);
  struct Planned {
    std::string method;
    uint64_t seed;
    fs::path dir;
  };
  std::vector<Planned> plan;
  for (const auto& method : methods)
    for (int64_t k = 0; k < runs; ++k) {
      const uint64_t seed = c.seed + static_cast<uint64_t>(k);
      plan.push_back({method, seed, out / "runs" / method / fmt::format("seed{}", seed)});
    }
  auto train = [&](const Planned& p, bool verbose) {
    MultiLayerOptions mo = config.options;
    mo.method(p.method);
    return train_multilayer_run(*session, config, mo, p.seed, p.dir, /*reuse=*/true, verbose);
  };
  auto discard = [](const Planned& p) {
    std::error_code ignored;
    fs::remove(p.dir / "result.json", ignored);
    fs::remove(p.dir / "checkpoint.pt", ignored);
  };
  // --fresh: what it discards goes before any process looks, so workers can always reuse (the
  // other ranks of a group discard a run when they claim it).
  if (!options.reuse && !options.worker && root)
    for (const auto& p : plan) discard(p);
  auto collect = [&] {
    r.runs.clear();
    for (const auto& p : plan) {
      if (!fs::exists(p.dir / "result.json")) continue;
      MultiLayerRun run;
      run.method = p.method;
      run.seed = p.seed;
      run.result = train(p, false);  // reads the finished run back
      r.runs.push_back(std::move(run));
    }
  };
  std::vector<PoolRun> pool;
  for (size_t i = 0; i < plan.size(); ++i)
    pool.push_back({plan[i].dir.lexically_relative(out).generic_string(), plan[i].dir,
                    plan[i].seed, i});
  const bool reports = !options.worker && root;
  RunPoolHooks hooks;
  hooks.execute = [&](const PoolRun& run) {
    const Planned& p = plan[run.index];
    const auto result = train(p, options.verbose && options.jobs == 1 && reports);
    if (!reports) return;
    if (options.verbose)
      std::cerr << fmt::format("{} seed {}: final test accuracy {:.4f} ({:.1f}s)\n", p.method,
                               p.seed, result.final_test_accuracy, result.seconds);
    // Reports after every run, so an interrupted experiment leaves a usable table.
    collect();
    write_multilayer_reports(r, out);
  };
  hooks.discard = [&](const PoolRun& run) { discard(plan[run.index]); };
  // Reading a delivered run back checks its settings (a mismatch is refused, naming them).
  hooks.check_delivered = [&](const PoolRun& run) { train(plan[run.index], false); };
  hooks.say = [&](const std::string& line) {
    if (options.verbose || line.rfind("warning", 0) == 0) std::cerr << line << "\n";
  };
  hooks.summary = [&](const PoolRun& run) {
    const auto result = train(plan[run.index], false);
    return fmt::format("{} seed {}: final test accuracy {:.4f} ({:.1f}s)", plan[run.index].method,
                       run.seed, result.final_test_accuracy, result.seconds);
  };
  if (!execute_runs(pool, po, hooks)) return r;
  collect();
  write_multilayer_reports(r, out);
  return r;
}

RunRow multilayer_run_row(const MultiLayerRun& run) {
  RunRow row;
  row.method = run.method;
  row.seed = run.seed;
  const auto& r = run.result;
  row.final_accuracy = r.final_test_accuracy;
  row.best_accuracy = r.best_test_accuracy;
  row.seconds = r.seconds;
  row.steps = r.steps;
  row.hyper_steps = r.hyper_steps;
  for (const auto& e : r.history) {
    row.add_epoch(e);
    if (e.test_accuracy == r.best_test_accuracy && row.best_epoch == 0) row.best_epoch = e.epoch;
  }
  return row;
}

ExperimentResult multilayer_rows(const MultiLayerExperimentResult& r) {
  ExperimentResult e;
  e.data = r.data;
  e.preset = r.preset;
  e.teacher_accuracy = r.teacher_test_accuracy;
  e.methods = r.methods;
  e.reference = r.reference;
  for (const auto& run : r.runs) e.runs.push_back(multilayer_run_row(run));
  e.table = summarize_methods(e.runs, e.methods, e.data, {}, e.reference);
  // Every multi-layer method trains on D_train only (the Hinton experiment's notes do not apply).
  for (auto& row : e.table)
    row.note = row.method == "none" ? "cross-entropy on D_train only, like every row here" : "";
  return e;
}

std::string multilayer_table(const MultiLayerExperimentResult& r) {
  return table_markdown(multilayer_rows(r)) + multilayer_details(r);
}

std::string multilayer_details(const MultiLayerExperimentResult& r) {
  std::ostringstream s;
  s << fmt::format("\nMulti-layer distillation: teacher {} -> student {}. β, the weight of "
                   "cross-entropy, after the last step, mean over runs:\n\n| method | beta |\n"
                   "|---|---|\n",
                   r.teacher_model, r.student_model);
  for (const auto& m : r.methods) {
    std::vector<double> beta;
    for (const auto& run : r.runs)
      if (run.method == m) beta.push_back(run.result.beta);
    if (!beta.empty()) s << fmt::format("| {} | {:.3f} |\n", m, summarize(beta).mean);
  }
  s << "\nThe effective lr above is about β·η when the VID terms' gradient is small next to "
       "CE's.\n";
  // The final pair weights of each pair method as a teacher × student matrix, mean over runs
  // (the learned ones against the random ones).
  for (const auto& m : r.methods) {
    std::vector<std::string> teacher_taps, student_taps;
    std::map<std::pair<std::string, std::string>, std::vector<double>> weights;
    for (const auto& run : r.runs) {
      if (run.method != m) continue;
      for (size_t p = 0; p < run.result.pairs.size(); ++p) {
        const auto& pair = run.result.pairs[p];
        teacher_taps.push_back(pair.teacher);
        student_taps.push_back(pair.student);
        weights[{pair.teacher, pair.student}].push_back(run.result.lambda[p]);
      }
    }
    if (weights.empty()) continue;
    const auto teachers = unique_in_order(teacher_taps);
    const auto students = unique_in_order(student_taps);
    s << fmt::format("\n{}: final lambda_ij, mean over runs (rows teacher taps, columns student "
                     "taps)\n\n| teacher \\ student |",
                     m);
    for (const auto& st : students) s << " " << st << " |";
    s << "\n|---|";
    for (size_t j = 0; j < students.size(); ++j) s << "---|";
    s << "\n";
    for (const auto& te : teachers) {
      s << "| " << te << " |";
      for (const auto& st : students) {
        auto it = weights.find({te, st});
        s << (it == weights.end() ? std::string(" |")
                                  : fmt::format(" {:.3f} |", summarize(it->second).mean));
      }
      s << "\n";
    }
  }
  return s.str();
}

std::vector<fs::path> write_multilayer_reports(const MultiLayerExperimentResult& r,
                                               const fs::path& dir) {
  fs::create_directories(dir);
  std::ostringstream csv;
  csv << "method,seed,final_test_accuracy,best_test_accuracy,seconds,steps,hyper_steps,beta\n";
  for (const auto& run : r.runs)
    csv << fmt::format("{},{},{:.6f},{:.6f},{:.3f},{},{},{:.6f}\n", run.method, run.seed,
                       run.result.final_test_accuracy, run.result.best_test_accuracy,
                       run.result.seconds, run.result.steps, run.result.hyper_steps,
                       run.result.beta);
  write_file_atomic(dir / "results.csv", csv.str());
  write_tables(multilayer_rows(r), dir, multilayer_details(r));

  std::vector<fs::path> written;
  const auto folder = plots_folder(dir);
  if (!folder) return written;
  const fs::path& plots = *folder;

  // Test accuracy against epoch, mean over runs, one line per method.
  std::ostringstream data;
  std::vector<std::string> plotted;
  for (const auto& m : r.methods) {
    std::map<int64_t, std::pair<double, int>> curve;
    for (const auto& run : r.runs)
      if (run.method == m)
        for (const auto& e : run.result.history) {
          curve[e.epoch].first += e.test_accuracy;
          curve[e.epoch].second += 1;
        }
    if (curve.empty()) continue;
    data << "# " << m << "\n";
    for (const auto& [epoch, c] : curve) data << epoch << "," << c.first / c.second << "\n";
    data << "\n\n";
    plotted.push_back(m);
  }
  write_file_atomic(plots / "accuracy.dat", data.str());
  if (!plotted.empty()) {
    std::string body = "plot ";
    for (size_t i = 0; i < plotted.size(); ++i)
      body += fmt::format("{}'accuracy.dat' index {} using 1:2 with linespoints title '{}'",
                          i ? ", \\\n     " : "", i, plotted[i]);
    run_gnuplot(write_gnuplot_script(
        plots, "accuracy",
        fmt::format("set title 'Test accuracy by epoch, mean over runs ({}: {} -> {})'\n"
                    "set xlabel 'epoch'\nset ylabel 'test accuracy'\nset key bottom right\nset grid",
                    r.data, r.teacher_model, r.student_model),
        body));
    written.push_back(plots / "accuracy.png");
  }

  // The pair weights of every run that has pairs (paper Fig. 7), and the λ/β trajectories of the
  // learned ones.
  for (const auto& run : r.runs) {
    if (run.result.pairs.empty()) continue;
    std::vector<std::string> ts, ss;
    for (const auto& p : run.result.pairs) {
      ts.push_back(p.teacher);
      ss.push_back(p.student);
    }
    const std::string name = fmt::format("pairs-{}-seed{}", run.method, run.seed);
    written.push_back(draw_pair_weights(
        run.result.pairs, run.result.lambda, ts, ss, plots, name,
        fmt::format("{} seed {}: pair weights (line width ~ lambda), beta = {:.3f}, test acc {:.4f}",
                    run.method, run.seed, run.result.beta, run.result.final_test_accuracy)));
    if (run.result.hyper_steps == 0) continue;
    const auto file = dir / "runs" / run.method / fmt::format("seed{}", run.seed) / "pair_weights.csv";
    if (!fs::exists(file)) continue;
    const std::string rel = fs::relative(file, plots).string();
    std::string b1 = "plot ";
    for (size_t p = 0; p < run.result.pairs.size(); ++p)
      b1 += fmt::format("{}'{}' skip 1 using 1:{} with lines title '{}'", p ? ", " : "", rel, p + 4,
                        run.result.pairs[p].label());
    const std::string tname = fmt::format("trajectory-{}-seed{}", run.method, run.seed);
    run_gnuplot(write_gnuplot_script(
        plots, tname, "",
        fmt::format("set multiplot layout 2,1 title 'Learned metaparameters: {} seed {}'\n"
                    "set xlabel 'step'\nset ylabel 'lambda_ij'\nset key outside right font ',7'\n{}\n"
                    "set ylabel 'beta'\nset yrange [0:1]\nunset key\nplot '{}' skip 1 using 1:2 "
                    "with lines\nset yrange [*:*]\nunset multiplot",
                    run.method, run.seed, b1, rel)));
    written.push_back(plots / (tname + ".png"));
  }
  return written;
}

}  // namespace metadistill
