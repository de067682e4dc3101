#include "metadistill/search/study.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <sqlite3.h>
#include <unistd.h>

#include "metadistill/util/error.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFormatName = "metadistill-study";
// SQLite's application_id header field: "MDST".
constexpr int kApplicationId = 0x4d445354;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown-host";
  return buf;
}

// Fields 3 (state) and 22 (start time in clock ticks) of /proc/<pid>/stat; the command name in
// field 2 may hold spaces and parentheses, so parsing starts after its last ')'.
bool read_proc_stat(long pid, char& state, unsigned long long& start_ticks) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  rest >> state;  // field 3
  for (int f = 4; f < 22 && rest >> field; ++f) {
  }
  return static_cast<bool>(rest >> start_ticks);  // field 22
}

}  // namespace

struct Study::Impl {
  fs::path path;
  StudySettings settings;
  StudyOptions options;
  sqlite3* db = nullptr;

  ~Impl() {
    if (db != nullptr) sqlite3_close_v2(db);
  }

  std::string where() const { return fmt::format("study {}", path.string()); }

  [[noreturn]] void sql_fail(const std::string& what) const {
    const int code = sqlite3_extended_errcode(db);
    if ((code & 0xff) == SQLITE_NOTADB)
      fail("{}: the file is not an SQLite database (or is damaged), so not a metadistill study",
           where());
    if ((code & 0xff) == SQLITE_READONLY || (code & 0xff) == SQLITE_CANTOPEN ||
        (code & 0xff) == SQLITE_PERM || (code & 0xff) == SQLITE_AUTH)
      fail("{}: cannot {}: {} (check that the file and its folder are readable and writable)",
           where(), what, sqlite3_errmsg(db));
    if ((code & 0xff) == SQLITE_BUSY)
      fail("{}: {}: the database stayed locked by another process for more than {} ms", where(),
           what, options.busy_timeout_ms);
    fail("{}: {}: {}", where(), what, sqlite3_errmsg(db));
  }

  void exec(const std::string& sql, const std::string& what) const {
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) sql_fail(what);
  }
};

namespace {

// A prepared statement, finalized at scope exit.
class Statement {
 public:
  Statement(const Study::Impl& s, const std::string& sql) : s_(s) {
    if (sqlite3_prepare_v2(s.db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
      s.sql_fail("prepare '" + sql + "'");
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v) { return check_bind(sqlite3_bind_int64(stmt_, i, v)); }
  Statement& bind(int i, double v) {
    // SQLite stores NaN as NULL; reading NULL back gives NaN again (see `real`).
    return check_bind(std::isnan(v) ? sqlite3_bind_null(stmt_, i)
                                    : sqlite3_bind_double(stmt_, i, v));
  }
  Statement& bind(int i, const std::string& v) {
    return check_bind(sqlite3_bind_text(stmt_, i, v.c_str(), -1, SQLITE_TRANSIENT));
  }
  Statement& bind_null(int i) { return check_bind(sqlite3_bind_null(stmt_, i)); }

  /// True while rows come; false when done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    s_.sql_fail("run '" + std::string(sqlite3_sql(stmt_)) + "'");
  }
  void run() {
    while (step()) {
    }
  }

  bool is_null(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }
  int64_t integer(int c) const { return sqlite3_column_int64(stmt_, c); }
  double real(int c) const { return is_null(c) ? std::nan("") : sqlite3_column_double(stmt_, c); }
  std::string text(int c) const {
    const auto* p = sqlite3_column_text(stmt_, c);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
  }

 private:
  Statement& check_bind(int rc) {
    if (rc != SQLITE_OK) s_.sql_fail("bind a value");
    return *this;
  }
  const Study::Impl& s_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE (write) or BEGIN (read snapshot); rolled back unless committed.
class Transaction {
 public:
  Transaction(const Study::Impl& s, bool write) : s_(s) {
    s.exec(write ? "BEGIN IMMEDIATE" : "BEGIN",
           write ? "start a write transaction" : "start a read");
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(s_.db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    s_.exec("COMMIT", "commit");
    done_ = true;
  }

 private:
  const Study::Impl& s_;
  bool done_ = false;
};

const char* kSchema = R"sql(
CREATE TABLE metadistill_study (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  format TEXT NOT NULL,
  version INTEGER NOT NULL,
  name TEXT NOT NULL,
  direction TEXT NOT NULL,
  space TEXT NOT NULL,
  sampler TEXT NOT NULL,
  objective TEXT NOT NULL,
  created REAL NOT NULL
);
CREATE TABLE trials (
  number INTEGER PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('waiting', 'running', 'complete', 'pruned', 'failed')),
  value REAL,
  retry_of INTEGER REFERENCES trials(number),
  worker TEXT NOT NULL DEFAULT '',
  started REAL NOT NULL DEFAULT 0,
  finished REAL NOT NULL DEFAULT 0,
  message TEXT NOT NULL DEFAULT ''
);
CREATE TABLE trial_params (
  number INTEGER NOT NULL REFERENCES trials(number),
  name TEXT NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (number, name)
);
CREATE TABLE trial_values (
  number INTEGER NOT NULL REFERENCES trials(number),
  step INTEGER NOT NULL,
  value REAL,
  PRIMARY KEY (number, step)
);
CREATE TABLE study_attributes (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE INDEX trials_by_state ON trials(state);
)sql";

// Refuses files that cannot hold a study before SQLite sees them, so that the message says why.
void check_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  check(fs::is_regular_file(path, ec), "study {}: not a regular file", path.string());
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "study {}: cannot read the file (permissions?)", path.string());
  char header[16] = {0};
  in.read(header, sizeof(header));
  const auto got = in.gcount();
  if (got == 0) return;                              // an empty file becomes a new study
  static const char kMagic[16] = "SQLite format 3";  // 15 characters and the terminating NUL
  check(got == 16 && std::equal(header, header + 16, kMagic),
        "study {}: not an SQLite database (its first bytes are not \"SQLite format 3\"), so not "
        "a metadistill study",
        path.string());
}

std::string first_difference(const nlohmann::json& stored, const nlohmann::json& wanted,
                             const std::string& prefix) {
  if (stored.is_object() && wanted.is_object()) {
    // A different name (of a sampler, an objective) says more than any of its settings.
    if (stored.value("name", nlohmann::json()) != wanted.value("name", nlohmann::json()))
      return first_difference(stored.value("name", nlohmann::json()),
                              wanted.value("name", nlohmann::json()), prefix + ".name");
    std::set<std::string> keys;
    for (const auto& [k, v] : stored.items()) keys.insert(k);
    for (const auto& [k, v] : wanted.items()) keys.insert(k);
    for (const auto& k : keys) {
      const auto a = stored.contains(k) ? stored[k] : nlohmann::json();
      const auto b = wanted.contains(k) ? wanted[k] : nlohmann::json();
      if (a != b) return first_difference(a, b, prefix + "." + k);
    }
    return "";
  }
  return fmt::format("{} = {} in the study, {} now", prefix, stored.dump(), wanted.dump());
}

void open_database(Study::Impl& s) {
  const bool memory = s.path == ":memory:";
  if (!memory) {
    check_file(s.path);
    if (s.path.has_parent_path()) {
      std::error_code ec;
      fs::create_directories(s.path.parent_path(), ec);
      check(!ec, "study {}: cannot create its folder {}: {}", s.path.string(),
            s.path.parent_path().string(), ec.message());
    }
  }
  const int rc =
      sqlite3_open_v2(s.path.c_str(), &s.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = s.db != nullptr ? sqlite3_errmsg(s.db) : sqlite3_errstr(rc);
    fail("study {}: cannot open the database: {}", s.path.string(), msg);
  }
  sqlite3_extended_result_codes(s.db, 1);
  check(sqlite3_db_readonly(s.db, "main") != 1,
        "study {}: the file is read-only; a study needs to write its trials", s.path.string());
  sqlite3_busy_timeout(s.db, s.options.busy_timeout_ms);
  // WAL lets readers work while one process writes; NORMAL sync loses no committed transaction
  // when a process is killed (only on power loss).
  // SQLite answers SQLITE_BUSY to a journal-mode change at once, without calling the busy
  // handler, while another process creates or switches the same new file: retry until the
  // busy timeout, as the handler would.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(s.options.busy_timeout_ms);
  for (int attempt = 0;; ++attempt) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(s.db, "PRAGMA journal_mode=WAL", -1, &st, nullptr) != SQLITE_OK)
      s.sql_fail("prepare 'PRAGMA journal_mode=WAL'");
    const int rc = sqlite3_step(st);
    const std::string mode =
        rc == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0)) : "";
    sqlite3_finalize(st);
    if ((rc & 0xff) == SQLITE_BUSY && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1 + attempt, 50)));
      continue;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) s.sql_fail("run 'PRAGMA journal_mode=WAL'");
    check(rc == SQLITE_DONE || mode == "wal" || (memory && mode == "memory"),
          "study {}: cannot switch the database to WAL mode (journal mode stays '{}')",
          s.path.string(), mode);
    break;
  }
  s.exec("PRAGMA synchronous=NORMAL", "set synchronous mode");
  s.exec("PRAGMA foreign_keys=ON", "enable foreign keys");
}

std::set<std::string> table_names(const Study::Impl& s) {
  std::set<std::string> names;
  Statement st(s, "SELECT name FROM sqlite_master WHERE type = 'table'");
  while (st.step()) names.insert(st.text(0));
  return names;
}

// Reads the stored settings; the caller holds a transaction.
StudySettings read_settings(const Study::Impl& s) {
  Statement st(s,
               "SELECT format, version, name, direction, space, sampler, objective "
               "FROM metadistill_study WHERE id = 1");
  check(st.step(), "study {}: the metadistill_study table is empty: not a valid study file",
        s.path.string());
  check(st.text(0) == kFormatName, "study {}: format '{}': expected '{}'", s.path.string(),
        st.text(0), kFormatName);
  const int64_t version = st.integer(1);
  check(version >= 1 && version <= Study::kFormatVersion,
        "study {}: format version {}: this metadistill reads versions 1 to {}", s.path.string(),
        version, Study::kFormatVersion);
  StudySettings out;
  try {
    out.name = st.text(2);
    out.direction = direction_from_string(st.text(3));
    out.space = SearchSpace::from_json(nlohmann::json::parse(st.text(4)), s.path.string());
    out.sampler = nlohmann::json::parse(st.text(5));
    out.objective = nlohmann::json::parse(st.text(6));
  } catch (const nlohmann::json::exception& e) {
    fail("study {}: damaged settings: {}", s.path.string(), e.what());
  }
  return out;
}

// Creates the schema or reads the stored settings, in one write transaction so that two
// processes creating the same study at once agree on it.
void init_study(Study::Impl& s, const StudySettings* wanted) {
  Transaction tx(s, true);
  const auto tables = table_names(s);
  if (tables.empty()) {
    check(wanted != nullptr, "study {}: the file holds no study", s.path.string());
    check(!wanted->space.empty(), "study {}: the search space has no parameter", s.path.string());
    s.exec(kSchema, "create the study tables");
    s.exec(fmt::format("PRAGMA application_id={}", kApplicationId), "set the application id");
    Statement st(s,
                 "INSERT INTO metadistill_study (id, format, version, name, direction, space, "
                 "sampler, objective, created) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)");
    st.bind(1, std::string(kFormatName))
        .bind(2, int64_t{Study::kFormatVersion})
        .bind(3, wanted->name)
        .bind(4, to_string(wanted->direction))
        .bind(5, wanted->space.to_json().dump())
        .bind(6, wanted->sampler.dump())
        .bind(7, wanted->objective.dump())
        .bind(8, now_seconds())
        .run();
    s.settings = *wanted;
    tx.commit();
    return;
  }
  if (!tables.count("metadistill_study")) {
    std::vector<std::string> names(tables.begin(), tables.end());
    fail(
        "study {}: an SQLite database, but not a metadistill study (it has the tables {} and no "
        "metadistill_study table); choose another --study file",
        s.path.string(), fmt::join(names, ", "));
  }
  s.settings = read_settings(s);
  tx.commit();
  if (wanted == nullptr) return;
  const auto& have = s.settings;
  const std::string file = s.path.string();
  check(have.name == wanted->name, "study {}: holds study '{}', not '{}'", file, have.name,
        wanted->name);
  check(have.direction == wanted->direction,
        "study {}: was created to {} its objective; this run "
        "would {} it",
        file, to_string(have.direction), to_string(wanted->direction));
  check(have.space == wanted->space,
        "study {}: was created with the search space {}; this run "
        "asks for {}",
        file, have.space.to_json().dump(), wanted->space.to_json().dump());
  check(have.sampler == wanted->sampler,
        "study {}: was created with another sampler: {}; resume "
        "it with the same settings or use another file",
        file, first_difference(have.sampler, wanted->sampler, "sampler"));
  check(have.objective == wanted->objective,
        "study {}: its trials computed something else: {}; "
        "resume it with the same settings or use another file",
        file, first_difference(have.objective, wanted->objective, "objective"));
}

FrozenTrial read_trial_row(const Statement& st) {
  FrozenTrial t;
  t.number = st.integer(0);
  t.state = trial_state_from_string(st.text(1));
  if (!st.is_null(2)) t.value = st.real(2);
  t.retry_of = st.is_null(3) ? -1 : st.integer(3);
  t.worker = st.text(4);
  t.started = st.real(5);
  t.finished = st.real(6);
  t.message = st.text(7);
  return t;
}

constexpr const char* kTrialColumns =
    "number, state, value, retry_of, worker, started, finished, message";

// All trials with parameters and intermediate values; the caller holds a transaction.
std::vector<FrozenTrial> load_trials(const Study::Impl& s, std::optional<int64_t> only = {}) {
  const std::string filter = only ? " WHERE number = ?" : "";
  std::vector<FrozenTrial> trials;
  std::map<int64_t, size_t> at;
  {
    Statement st(s, fmt::format("SELECT {} FROM trials{} ORDER BY number", kTrialColumns, filter));
    if (only) st.bind(1, *only);
    while (st.step()) {
      at[st.integer(0)] = trials.size();
      trials.push_back(read_trial_row(st));
      trials.back().params.assign(s.settings.space.size(), std::nan(""));
    }
  }
  {
    Statement st(s, fmt::format("SELECT number, name, value FROM trial_params{}", filter));
    if (only) st.bind(1, *only);
    while (st.step()) {
      auto it = at.find(st.integer(0));
      if (it == at.end()) continue;
      const auto name = st.text(1);
      for (size_t p = 0; p < s.settings.space.size(); ++p)
        if (s.settings.space[p].name == name) trials[it->second].params[p] = st.real(2);
    }
  }
  {
    Statement st(s, fmt::format("SELECT number, step, value FROM trial_values{}", filter));
    if (only) st.bind(1, *only);
    while (st.step()) {
      auto it = at.find(st.integer(0));
      if (it != at.end()) trials[it->second].intermediate[st.integer(1)] = st.real(2);
    }
  }
  return trials;
}

int64_t next_number(const Study::Impl& s) {
  Statement st(s, "SELECT COALESCE(MAX(number) + 1, 0) FROM trials");
  st.step();
  return st.integer(0);
}

void insert_trial(const Study::Impl& s, int64_t number, TrialState state, const ParamValues& params,
                  int64_t retry_of, const std::string& worker, double started) {
  Statement st(
      s, "INSERT INTO trials (number, state, retry_of, worker, started) VALUES (?, ?, ?, ?, ?)");
  st.bind(1, number).bind(2, to_string(state));
  if (retry_of >= 0)
    st.bind(3, retry_of);
  else
    st.bind_null(3);
  st.bind(4, worker).bind(5, started).run();
  for (size_t p = 0; p < params.size(); ++p) {
    Statement sp(s, "INSERT INTO trial_params (number, name, value) VALUES (?, ?, ?)");
    sp.bind(1, number).bind(2, s.settings.space[p].name).bind(3, params[p]).run();
  }
}

// Marks the running trials of dead workers failed and queues retries; the caller holds a write
// transaction.
int64_t recover_locked(const Study::Impl& s) {
  std::vector<std::pair<int64_t, std::string>> dead;
  {
    Statement st(s, "SELECT number, worker FROM trials WHERE state = 'running' ORDER BY number");
    while (st.step())
      if (!Study::worker_alive(st.text(1))) dead.emplace_back(st.integer(0), st.text(1));
  }
  if (dead.empty()) return 0;
  const auto trials = load_trials(s);
  std::map<int64_t, const FrozenTrial*> by_number;
  for (const auto& t : trials) by_number[t.number] = &t;
  const std::string me = Study::current_worker();
  for (const auto& [number, worker] : dead) {
    Statement up(s,
                 "UPDATE trials SET state = 'failed', finished = ?, message = ? WHERE number = ?");
    up.bind(1, now_seconds())
        .bind(2,
              fmt::format("worker {} died while the trial was running (noticed by {})", worker, me))
        .bind(3, number)
        .run();
    int64_t retries = 0;  // how many times these parameters were already retried
    for (const FrozenTrial* t = by_number.at(number); t->retry_of >= 0;
         t = by_number.at(t->retry_of))
      ++retries;
    if (retries < s.options.max_retries)
      insert_trial(s, next_number(s), TrialState::kWaiting, by_number.at(number)->params, number,
                   "", 0.0);
  }
  return static_cast<int64_t>(dead.size());
}

StudyCounts counts_locked(const Study::Impl& s) {
  StudyCounts c;
  Statement st(s, "SELECT state, COUNT(*) FROM trials GROUP BY state");
  while (st.step()) {
    const auto state = trial_state_from_string(st.text(0));
    const int64_t n = st.integer(1);
    switch (state) {
      case TrialState::kWaiting:
        c.waiting = n;
        break;
      case TrialState::kRunning:
        c.running = n;
        break;
      case TrialState::kComplete:
        c.complete = n;
        break;
      case TrialState::kPruned:
        c.pruned = n;
        break;
      case TrialState::kFailed:
        c.failed = n;
        break;
    }
  }
  return c;
}

TrialState state_locked(const Study::Impl& s, int64_t number) {
  Statement st(s, "SELECT state FROM trials WHERE number = ?");
  st.bind(1, number);
  check(st.step(), "study {}: no trial {}", s.path.string(), number);
  return trial_state_from_string(st.text(0));
}

}  // namespace

Study::Study(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Study::Study(Study&&) noexcept = default;
Study& Study::operator=(Study&&) noexcept = default;
Study::~Study() = default;

Study Study::open(const fs::path& path, const StudySettings& settings, StudyOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  open_database(*impl);
  init_study(*impl, &settings);
  return Study(std::move(impl));
}

Study Study::load(const fs::path& path, StudyOptions options) {
  check(path == ":memory:" || fs::exists(path), "study {}: no such file", path.string());
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  open_database(*impl);
  init_study(*impl, nullptr);
  return Study(std::move(impl));
}

const fs::path& Study::path() const { return impl_->path; }
const StudySettings& Study::settings() const { return impl_->settings; }

std::optional<FrozenTrial> Study::ask(Sampler& sampler, int64_t n_trials) {
  auto& s = *impl_;
  Transaction tx(s, true);
  recover_locked(s);
  const std::string me = current_worker();
  const double t0 = now_seconds();
  int64_t number = -1;
  {
    Statement st(s, "SELECT number FROM trials WHERE state = 'waiting' ORDER BY number LIMIT 1");
    if (st.step()) number = st.integer(0);
  }
  if (number >= 0) {
    Statement up(s,
                 "UPDATE trials SET state = 'running', worker = ?, started = ? WHERE number = ?");
    up.bind(1, me).bind(2, t0).bind(3, number).run();
  } else {
    const auto c = counts_locked(s);
    if (c.finished() + c.running + c.waiting >= n_trials) {
      tx.commit();
      return std::nullopt;
    }
    number = next_number(s);
    // The sampler runs under the write lock: proposals are cheap, and no other process can
    // claim the same number or miss a trial that finishes meanwhile.
    const auto history = load_trials(s);
    ParamValues x = sampler.ask(s.settings.space, history, s.settings.direction, number);
    s.settings.space.check(
        x, fmt::format("{}: sampler {} for trial {}", s.where(), sampler.name(), number));
    insert_trial(s, number, TrialState::kRunning, x, -1, me, t0);
  }
  auto trials = load_trials(s, number);
  tx.commit();
  return trials.at(0);
}

void Study::report(int64_t number, int64_t step, double value) {
  auto& s = *impl_;
  Transaction tx(s, true);
  const auto state = state_locked(s, number);
  check(state == TrialState::kRunning, "{}: trial {} is {}, not running: no value can be reported",
        s.where(), number, to_string(state));
  Statement st(s, "INSERT OR REPLACE INTO trial_values (number, step, value) VALUES (?, ?, ?)");
  st.bind(1, number).bind(2, step).bind(3, value).run();
  tx.commit();
}

void Study::tell(int64_t number, TrialState state, std::optional<double> value,
                 const std::string& message) {
  auto& s = *impl_;
  check(state == TrialState::kComplete || state == TrialState::kPruned ||
            state == TrialState::kFailed,
        "{}: trial {} can end complete, pruned or failed, not {}", s.where(), number,
        to_string(state));
  if (state == TrialState::kComplete)
    check(value.has_value() && std::isfinite(*value),
          "{}: trial {}: a complete trial needs a finite objective value, got {}", s.where(),
          number, value ? fmt::format("{}", *value) : std::string("none"));
  Transaction tx(s, true);
  const auto current = state_locked(s, number);
  check(current == TrialState::kRunning, "{}: trial {} is {}, not running: it cannot end {}",
        s.where(), number, to_string(current), to_string(state));
  Statement st(
      s, "UPDATE trials SET state = ?, value = ?, finished = ?, message = ? WHERE number = ?");
  st.bind(1, to_string(state));
  if (value && state == TrialState::kComplete)
    st.bind(2, *value);
  else
    st.bind_null(2);
  st.bind(3, now_seconds()).bind(4, message).bind(5, number).run();
  tx.commit();
}

std::vector<FrozenTrial> Study::trials() const {
  Transaction tx(*impl_, false);
  auto t = load_trials(*impl_);
  tx.commit();
  return t;
}

FrozenTrial Study::trial(int64_t number) const {
  Transaction tx(*impl_, false);
  auto t = load_trials(*impl_, number);
  tx.commit();
  check(!t.empty(), "{}: no trial {}", impl_->where(), number);
  return t.front();
}

std::optional<FrozenTrial> Study::best_trial() const {
  std::optional<FrozenTrial> best;
  for (auto& t : trials())
    if (t.state == TrialState::kComplete && t.value &&
        (!best || is_better(*t.value, *best->value, direction())))
      best = std::move(t);
  return best;
}

StudyCounts Study::counts() const {
  Transaction tx(*impl_, false);
  auto c = counts_locked(*impl_);
  tx.commit();
  return c;
}

int64_t Study::recover_crashed() {
  Transaction tx(*impl_, true);
  const int64_t n = recover_locked(*impl_);
  tx.commit();
  return n;
}

std::optional<nlohmann::json> Study::attribute(const std::string& key) const {
  Statement st(*impl_, "SELECT value FROM study_attributes WHERE key = ?");
  st.bind(1, key);
  if (!st.step()) return std::nullopt;
  try {
    return nlohmann::json::parse(st.text(0));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: attribute '{}' is not valid JSON: {}", impl_->where(), key, e.what());
  }
}

void Study::set_attribute(const std::string& key, const nlohmann::json& value) {
  Transaction tx(*impl_, true);
  Statement st(*impl_, "INSERT OR REPLACE INTO study_attributes (key, value) VALUES (?, ?)");
  st.bind(1, key).bind(2, value.dump()).run();
  tx.commit();
}

std::string Study::current_worker() {
  // Computed on every call: a forked child has another pid than the parent.
  const long pid = static_cast<long>(::getpid());
  char state = '?';
  unsigned long long ticks = 0;
  read_proc_stat(pid, state, ticks);
  return fmt::format("{}:{}:{}", host_name(), pid, ticks);
}

bool Study::worker_alive(const std::string& worker) {
  // host:pid:ticks, where the host name itself may not contain ':'.
  const auto b = worker.rfind(':');
  const auto a = b == std::string::npos || b == 0 ? std::string::npos : worker.rfind(':', b - 1);
  if (a == std::string::npos) return !worker.empty();  // unparsable: never declared dead
  if (worker.substr(0, a) != host_name()) return true;  // cannot look at another machine
  long pid = 0;
  unsigned long long ticks = 0;
  try {
    pid = std::stol(worker.substr(a + 1, b - a - 1));
    ticks = std::stoull(worker.substr(b + 1));
  } catch (const std::exception&) {
    return true;
  }
  char state = '?';
  unsigned long long now_ticks = 0;
  if (!read_proc_stat(pid, state, now_ticks)) return false;  // no such process
  if (state == 'Z' || state == 'X') return false;            // exited, not yet reaped
  return now_ticks == ticks;                                 // else the pid was reused
}

}  // namespace metadistill
