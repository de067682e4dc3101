// `metadistill export RUN_DIR [--out DIR]`: the run's student as files PyTorch loads.
#include <iostream>
#include <optional>

#include "commands.h"
#include "metadistill/train/checkpoint.h"
#include "metadistill/train/export.h"
#include "metadistill/util/error.h"

namespace metadistill::cli {

namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::string run_dir;
  std::optional<std::string> out;
};

int run(const ExportOptions& o) {
  // A run folder holds student.pt; a student file may be given directly.
  const fs::path given(o.run_dir);
  const fs::path student = fs::is_directory(given) ? given / "student.pt" : given;
  check(fs::exists(student),
        "export {}: no student.pt there; expected the folder of one run (e.g. "
        "runs/x/distill/fixed-seed0, runs/x/runs/<method>/seed<k>) or a student file",
        o.run_dir);
  const fs::path out = o.out ? fs::path(*o.out) : student.parent_path() / "export";
  LoadedModel m = load_model_file(student);
  m.model->eval();
  const ExportedStudent e = export_student(*m.model, m.spec, out, student.string());
  std::cout << fmt::format(
      "exported {} student ({} classes, input [{}]) from {}:\n  {}\n  {}\n  {}\n  {}\n"
      "in Python: import sys; sys.path.insert(0, \"{}\"); from student_model import Model\n"
      "           model = Model(); model.load_state_dict(torch.load(\"{}\")); model.eval()\n"
      "       or: model = torch.jit.load(\"{}\")\n",
      m.spec.name, m.spec.num_classes, fmt::join(m.spec.input_shape, ", "), student.string(),
      e.state_dict.string(), e.python_module.string(), e.torchscript.string(),
      e.manifest.string(), out.string(), e.state_dict.string(), e.torchscript.string());
  return 0;
}

}  // namespace

void setup_export(CLI::App& app) {
  auto o = std::make_shared<ExportOptions>();
  auto* sub = app.add_subcommand(
      "export", "write a run's student as files PyTorch loads (state dict, Python module, "
                "TorchScript)");
  sub->add_option("RUN_DIR", o->run_dir, "folder of one run (holding student.pt), or a student file")
      ->required();
  sub->add_option("--out", o->out, "output folder (default: RUN_DIR/export)");
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
