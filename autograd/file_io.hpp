#pragma once
/// \file file_io.hpp
/// The file handling shared by every reader and writer of files that may be hostile (IDX,
/// safetensors, run states): opening only regular files, reading exactly what was asked for, and
/// writing atomically. Errors carry the operating system's reason (strerror):
///
///     io::ReadFile f(path);                       // never blocks: a FIFO is refused, not opened
///     if (!f.ok()) throw MyError("my_reader: " + f.error());   // "cannot open 'x': Is a directory"
///     if (!f.read_at(0, buf, 8)) throw MyError("my_reader: " + f.error());
///
/// It sits in autograd/, the lowest layer, because nn/ (safetensors), datasets/ (IDX, .npy, CSV,
/// text) and train/ (run states) all use it.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tapegrad::io {

/// A regular file opened for reading; closes itself. Opening never throws and never blocks: the
/// file is opened with O_NONBLOCK and checked with fstat (race-free, unlike stat then open), and
/// anything that is not a regular file (a FIFO, a directory, a device, a socket) is refused.
class ReadFile {
 public:
  /// Opens `path`. On failure ok() is false and error() says "cannot open '<path>': <reason>",
  /// the reason being strerror's ("Permission denied", "Too many levels of symbolic links",
  /// "Is a directory", "No such file or directory") or "not a regular file (a FIFO)" and the like.
  explicit ReadFile(std::string path);
  ~ReadFile();
  ReadFile(const ReadFile&) = delete;
  ReadFile& operator=(const ReadFile&) = delete;

  /// Whether the file is open (false after a failed open; see error()).
  bool ok() const { return fd_ >= 0; }
  /// What went wrong last, naming the path; empty while nothing has.
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }  ///< the path as given
  /// The size in bytes when it was opened.
  uint64_t size() const { return size_; }

  /// Reads exactly `n` bytes at `offset` (retrying short reads and EINTR). False, with error() set,
  /// on a read error or when the file ends first.
  bool read_at(uint64_t offset, void* dst, uint64_t n);
  /// Reads up to `n` bytes from the current position: the count, 0 at the end, -1 on error (error()
  /// set).
  int64_t read_some(void* dst, uint64_t n);

 private:
  std::string path_, error_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

/// Writes `pieces` (pointer, size) one after the other to `path` atomically: into a temporary file
/// "<path>.tmp.<pid>.<n>" in the same directory, fsync'ed, renamed over `path`, then the directory
/// fsync'ed. Every write, fsync, close and rename is checked. On any failure the temporary is
/// removed, `path` is left as it was, and std::runtime_error says "<who>: <what> (<strerror>);
/// '<path>' is unchanged". Stale temporaries of `path` are removed first
/// (remove_stale_temporaries).
void atomic_write(const std::string& path, const std::vector<std::pair<const char*, uint64_t>>& pieces,
                  const char* who);

/// Removes the temporaries "<path>.tmp.<pid>.<n>" that atomic_write left behind when its process
/// was killed mid-write: those of a process that no longer exists (kill(pid, 0) fails with ESRCH)
/// and those of this process that no write in progress owns (a dead process with the same pid).
/// A live process's temporary is never touched. Best effort: returns how many were removed.
int remove_stale_temporaries(const std::string& path);

namespace testing {
/// Fault injection for tests: every atomic_write fails with ENOSPC (as on a full disk) once it has
/// written `bytes` bytes of its temporary file; -1 (the default) turns this off.
void fail_writes_after(int64_t bytes);
}  // namespace testing

}  // namespace tapegrad::io
