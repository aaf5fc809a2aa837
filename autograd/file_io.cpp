#include "autograd/file_io.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <stdexcept>

namespace tapegrad::io {
namespace {

const char* not_regular(mode_t mode) {
  if (S_ISDIR(mode)) return std::strerror(EISDIR);
  if (S_ISFIFO(mode)) return "not a regular file (a FIFO)";
  if (S_ISCHR(mode)) return "not a regular file (a character device)";
  if (S_ISBLK(mode)) return "not a regular file (a block device)";
  if (S_ISSOCK(mode)) return "not a regular file (a socket)";
  return "not a regular file";
}

std::atomic<int64_t> g_fail_writes_after{-1};  // testing::fail_writes_after

// The file names of the temporaries this process is writing now (unique: pid and a counter), which
// remove_stale_temporaries leaves alone.
std::mutex g_in_flight_mutex;
std::set<std::string> g_in_flight;

// write(2) of every byte, retrying short writes and EINTR; false with errno set on failure. The
// test hook makes the write fail with ENOSPC once `budget` bytes are written, as a full disk would.
bool write_all(int fd, const char* p, uint64_t size, int64_t& budget) {
  while (size > 0) {
    uint64_t chunk = std::min<uint64_t>(size, uint64_t{1} << 30);
    if (budget >= 0) {
      if (budget == 0) {
        errno = ENOSPC;
        return false;
      }
      chunk = std::min<uint64_t>(chunk, static_cast<uint64_t>(budget));
    }
    const ssize_t w = ::write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    size -= static_cast<uint64_t>(w);
    if (budget >= 0) budget -= w;
  }
  return true;
}

// "<digits>.<digits>" → the pid (the first number); -1 when `rest` is not of that form.
long temporary_pid(const std::string& rest) {
  const auto dot = rest.find('.');
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (dot == std::string::npos || !digits(rest.substr(0, dot)) || !digits(rest.substr(dot + 1))) return -1;
  return std::stol(rest.substr(0, dot));
}

}  // namespace

ReadFile::ReadFile(std::string path) : path_(std::move(path)) {
  auto fail = [&](const std::string& why) { error_ = "cannot open '" + path_ + "': " + why; };
  const int fd = ::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    fail(std::strerror(errno));
    return;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    fail(std::strerror(errno));
    ::close(fd);
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    fail(not_regular(st.st_mode));
    ::close(fd);
    return;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // regular files never block; tidy only
  fd_ = fd;
  size_ = static_cast<uint64_t>(st.st_size);
}

ReadFile::~ReadFile() {
  if (fd_ >= 0) ::close(fd_);
}

bool ReadFile::read_at(uint64_t offset, void* dst, uint64_t n) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd_, p, std::min<uint64_t>(n, uint64_t{1} << 30), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      error_ =
          "reading '" + path_ + "' failed: " + (got < 0 ? std::strerror(errno) : "the file ended early (truncated?)");
      return false;
    }
    p += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
  return true;
}

int64_t ReadFile::read_some(void* dst, uint64_t n) {
  for (;;) {
    const ssize_t got = ::read(fd_, dst, std::min<uint64_t>(n, uint64_t{1} << 30));
    if (got >= 0) return got;
    if (errno != EINTR) {
      error_ = "reading '" + path_ + "' failed: " + std::strerror(errno);
      return -1;
    }
  }
}

int remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path p(path);
  const std::string prefix = p.filename().string() + ".tmp.";
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  int removed = 0;
  for (; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const long pid = temporary_pid(name.substr(prefix.size()));
    if (pid <= 0) continue;  // not of our naming: someone else's file
    std::lock_guard<std::mutex> lock(g_in_flight_mutex);
    const bool stale =
        pid == ::getpid() ? !g_in_flight.count(name) : ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    std::error_code rm;
    if (stale && fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

void atomic_write(const std::string& path, const std::vector<std::pair<const char*, uint64_t>>& pieces,
                  const char* who) {
  static std::atomic<uint64_t> counter{0};
  remove_stale_temporaries(path);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const std::string tmp_name = std::filesystem::path(tmp).filename().string();
  {
    std::lock_guard<std::mutex> lock(g_in_flight_mutex);
    g_in_flight.insert(tmp_name);
  }
  struct Unregister {
    const std::string& name;
    ~Unregister() {
      std::lock_guard<std::mutex> lock(g_in_flight_mutex);
      g_in_flight.erase(name);
    }
  } unregister{tmp_name};
  auto fail = [&](const std::string& what, int err) {
    std::remove(tmp.c_str());
    throw std::runtime_error(std::string(who) + ": " + what + " (" + std::strerror(err) + "); '" + path +
                             "' is unchanged");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create the temporary file '" + tmp + "'", errno);
  int64_t budget = g_fail_writes_after.load();
  for (auto& [data, size] : pieces) {
    if (!write_all(fd, data, size, budget)) {
      const int err = errno;
      ::close(fd);
      fail("writing '" + tmp + "' failed", err);
    }
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail("flushing '" + tmp + "' to disk failed", err);
  }
  if (::close(fd) != 0) fail("closing '" + tmp + "' failed", errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename '" + tmp + "' to '" + path + "'", errno);
  // Make the rename itself durable: fsync the directory (best effort; some file systems refuse).
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

namespace testing {
void fail_writes_after(int64_t bytes) { g_fail_writes_after.store(bytes); }
}  // namespace testing

}  // namespace tapegrad::io
