#include "metadistill/experiment/plots.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "metadistill/util/error.h"
#include "test_util.h"

namespace metadistill {
namespace {

namespace fs = std::filesystem;
using metadistill::testing::contains_all;
using metadistill::testing::TempDir;

std::string text_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// An executable file named `gnuplot` in one of the PATH folders, looked up here.
bool gnuplot_on_path() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  std::stringstream folders(path);
  std::string folder;
  while (std::getline(folders, folder, ':')) {
    if (folder.empty()) continue;
    const fs::path candidate = fs::path(folder) / "gnuplot";
    if (fs::is_regular_file(candidate) && ::access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

// gnuplot_available() agrees with a look-up of PATH done here.
TEST(Plots, GnuplotAvailableMatchesThePath) {
  EXPECT_EQ(gnuplot_available(), gnuplot_on_path());
}

// The script is dir/name.gp; it reads CSV, holds the setup before the body, and sends the drawing
// to name.png and name.svg.
TEST(Plots, ScriptHoldsSetupBodyAndBothOutputs) {
  TempDir dir("plots");
  const std::string setup = "set title 'Loss by step'\nset xlabel 'step'";
  const std::string body = "plot 'loss.csv' using 1:2 with lines title 'loss'";
  const fs::path script = write_gnuplot_script(dir.path(), "loss-curve", setup, body);
  EXPECT_EQ(script.string(), (dir.path() / "loss-curve.gp").string());
  ASSERT_TRUE(fs::is_regular_file(script));
  const std::string text = text_of(script);
  EXPECT_TRUE(contains_all(text, {setup, body, "loss-curve.png", "loss-curve.svg",
                                  "set datafile separator ','"}))
      << text;
  const auto at_setup = text.find(setup), at_body = text.find(body);
  EXPECT_LT(at_setup, at_body);
  // Both outputs come after the setup, and the body is drawn after each is chosen.
  const auto at_png = text.find("loss-curve.png"), at_svg = text.find("loss-curve.svg");
  EXPECT_LT(at_setup, at_png);
  EXPECT_LT(at_setup, at_svg);
  EXPECT_NE(text.find(body, at_png), std::string::npos);
  EXPECT_NE(text.find(body, at_svg), std::string::npos);
}

// run_gnuplot draws the script in its own folder (the data file is named relative to it) and
// writes a PNG and an SVG.
TEST(Plots, RunGnuplotWritesPngAndSvg) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot is not installed";
  TempDir dir("plots");
  write_text(dir / "loss.csv", "step,loss\n1,2.0\n2,1.2\n3,0.9\n4,0.7\n");
  const fs::path script = write_gnuplot_script(
      dir.path(), "loss", "set xlabel 'step'",
      "plot 'loss.csv' skip 1 using 1:2 with linespoints title 'loss'");
  run_gnuplot(script);
  const fs::path png = dir / "loss.png", svg = dir / "loss.svg";
  ASSERT_TRUE(fs::is_regular_file(png));
  ASSERT_TRUE(fs::is_regular_file(svg));
  const std::string png_bytes = text_of(png);
  EXPECT_EQ(png_bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_NE(text_of(svg).find("<svg"), std::string::npos);
}

// A script gnuplot rejects is an Error naming the script and gnuplot's exit status.
TEST(Plots, AScriptWithASyntaxErrorIsAnError) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot is not installed";
  TempDir dir("plots");
  const fs::path script =
      write_gnuplot_script(dir.path(), "broken", "", "plot sin(x with lines )) nonsense");
  try {
    run_gnuplot(script);
    ADD_FAILURE() << "run_gnuplot accepted a broken script";
  } catch (const Error& e) {
    EXPECT_TRUE(contains_all(e.what(), {"gnuplot", "broken.gp", "exit status 1)"})) << e.what();
  }
}

// plots_folder is dir/plots, created, when gnuplot is present.
TEST(Plots, PlotsFolderIsCreatedWhenGnuplotIsPresent) {
  if (!gnuplot_available()) GTEST_SKIP() << "gnuplot is not installed";
  TempDir dir("plots");
  const auto folder = plots_folder(dir.path());
  ASSERT_TRUE(folder.has_value());
  EXPECT_EQ(folder->string(), (dir.path() / "plots").string());
  EXPECT_TRUE(fs::is_directory(*folder));
}

}  // namespace
}  // namespace metadistill
