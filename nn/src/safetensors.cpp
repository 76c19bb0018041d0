#include "optimi/nn/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "optimi/autograd.hpp"

// Tensor bytes go to and from the file as they sit in memory.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

namespace optimi::nn {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The reference implementation's limit; a larger header is corrupt, not a big model.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

constexpr std::pair<DType, const char*> kDTypeCodes[] = {
    {DType::Float64, "F64"},   {DType::Float32, "F32"}, {DType::Float16, "F16"},
    {DType::BFloat16, "BF16"}, {DType::Int64, "I64"},   {DType::Bool, "BOOL"},
};

std::optional<DType> dtype_from_code(const std::string& code) {
  for (const auto& [dtype, c] : kDTypeCodes) {
    if (code == c) return dtype;
  }
  return std::nullopt;
}

const char* code_of(DType dtype) {
  for (const auto& [d, code] : kDTypeCodes) {
    if (d == dtype) return code;
  }
  throw std::invalid_argument("save_safetensors: dtype " + std::string(dtype_name(dtype)) +
                              " has no safetensors code");
}

std::runtime_error file_error(const char* op, const fs::path& path, const std::string& problem) {
  return std::runtime_error(std::string(op) + ": " + path.string() + ": " + problem);
}

std::string errno_text() {
  return std::strerror(errno);
}

// Closes on scope exit unless released.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// ---- writing ----

void write_all(int fd, const void* data, size_t bytes, const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw file_error("save_safetensors", path, "write failed: " + errno_text());
    p += n;
    bytes -= size_t(n);
  }
}

// Removes the temporaries of `path` left by writers that were killed mid-write: their process
// is gone, so nobody will rename them. Live writers' files are left alone.
void remove_stale_temporaries(const fs::path& dir, const fs::path& path) {
  std::string prefix = ".";
  prefix += path.filename().string();
  prefix += ".tmp.";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string rest = name.substr(prefix.size());
    const long pid = std::strtol(rest.c_str(), nullptr, 10);
    if (pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH) fs::remove(entry.path(), ec);
  }
}

// Creates a fresh file beside `path` that no other writer can be using.
std::pair<int, fs::path> create_temporary(const fs::path& path) {
  static std::atomic<uint64_t> counter{0};
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  remove_stale_temporaries(dir, path);
  for (int attempt = 0;; ++attempt) {
    // Appended piece by piece: GCC 12 misreports `"." + std::string` under -Wrestrict.
    std::string name = ".";
    name += path.filename().string();
    name += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    const fs::path tmp = dir / name;
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) return {fd, tmp};
    // A leftover of an earlier process with our pid can hold a name: try the next one.
    if (errno != EEXIST || attempt == 100) {
      throw file_error("save_safetensors", path,
                       "cannot create temporary file " + tmp.string() + ": " + errno_text());
    }
  }
}

// Makes the rename itself durable. A failure here leaves a complete file in place, so it is not
// reported.
void sync_directory(const fs::path& path) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());
}

std::string encode_header(const std::map<std::string, Tensor>& tensors,
                          const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t bytes = uint64_t(t.nbytes());
    header[name] = {{"dtype", code_of(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception&) {
    throw std::invalid_argument(
        "save_safetensors: a tensor name or metadata entry is not valid "
        "UTF-8");
  }
  // Other writers pad so that the data starts 8-byte aligned; readers may rely on it.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

// ---- reading ----

void read_exact(int fd, void* data, uint64_t bytes, uint64_t offset, const fs::path& path) {
  char* p = static_cast<char*>(data);
  while (bytes > 0) {
    ssize_t n = ::pread(fd, p, bytes, off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw file_error("load_safetensors", path, "read failed: " + errno_text());
    if (n == 0) throw file_error("load_safetensors", path, "file ended while reading");
    p += n;
    bytes -= uint64_t(n);
    offset += uint64_t(n);
  }
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;
  uint64_t end;
};

class HeaderParser {
 public:
  HeaderParser(const fs::path& path, uint64_t data_bytes) : path_(path), data_bytes_(data_bytes) {}

  Entry entry(const std::string& name, const json& value) const {
    if (!value.is_object()) fail(name, "entry is not a JSON object");
    Entry e{name, DType::Float32, {}, 0, 0};

    auto dtype = value.find("dtype");
    if (dtype == value.end() || !dtype->is_string()) fail(name, "missing or non-string \"dtype\"");
    auto parsed = dtype_from_code(dtype->get<std::string>());
    if (!parsed) fail(name, "unsupported dtype '" + dtype->get<std::string>() + "'");
    e.dtype = *parsed;

    auto shape = value.find("shape");
    if (shape == value.end() || !shape->is_array()) fail(name, "missing or non-array \"shape\"");
    uint64_t numel = 1;
    bool empty = false;
    for (const json& dim : *shape) {
      const uint64_t d = non_negative(name, "shape", dim);
      if (d > uint64_t(std::numeric_limits<int64_t>::max())) fail(name, "dimension too large");
      // Strides are products of trailing dimensions: even with a zero dimension, the product of
      // the others must fit in int64.
      if (d == 0) {
        empty = true;
      } else if (__builtin_mul_overflow(numel, d, &numel) ||
                 numel > uint64_t(std::numeric_limits<int64_t>::max())) {
        fail(name, "shape " + shape->dump() + " has too many elements");
      }
      e.shape.push_back(int64_t(d));
    }
    if (empty) numel = 0;

    auto offsets = value.find("data_offsets");
    if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2) {
      fail(name, "missing \"data_offsets\" or not a [begin, end] pair");
    }
    e.begin = non_negative(name, "data_offsets", (*offsets)[0]);
    e.end = non_negative(name, "data_offsets", (*offsets)[1]);
    if (e.begin > e.end) fail(name, "data_offsets begin > end " + offsets->dump());
    if (e.end > data_bytes_) {
      fail(name, "data_offsets " + offsets->dump() + " exceed the " + std::to_string(data_bytes_) +
                     " bytes of data");
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(numel, uint64_t(element_size(e.dtype)), &bytes) ||
        bytes != e.end - e.begin) {
      fail(name, "shape " + shape->dump() + " of " + dtype->get<std::string>() + " does not fit " +
                     "data_offsets " + offsets->dump());
    }
    return e;
  }

  std::map<std::string, std::string> metadata(const json& value) const {
    if (!value.is_object()) fail_header("\"__metadata__\" is not a JSON object");
    std::map<std::string, std::string> out;
    for (const auto& [key, v] : value.items()) {
      if (!v.is_string()) fail_header("metadata value for '" + key + "' is not a string");
      out.emplace(key, v.get<std::string>());
    }
    return out;
  }

  // Ranges holding bytes must not share any.
  void check_disjoint(std::vector<Entry>& entries) const {
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
    const Entry* previous = nullptr;
    for (const Entry& e : entries) {
      if (e.begin == e.end) continue;
      if (previous && e.begin < previous->end) {
        fail_header("data of '" + previous->name + "' and '" + e.name + "' overlap");
      }
      if (!previous || e.end > previous->end) previous = &e;
    }
  }

  [[noreturn]] void fail_header(const std::string& problem) const {
    throw file_error("load_safetensors", path_, problem);
  }

 private:
  [[noreturn]] void fail(const std::string& name, const std::string& problem) const {
    fail_header("tensor '" + name + "': " + problem);
  }

  uint64_t non_negative(const std::string& name, const char* field, const json& v) const {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer()) fail(name, std::string("negative value in \"") + field + "\"");
    fail(name, std::string("non-integer value in \"") + field + "\"");
  }

  const fs::path& path_;
  uint64_t data_bytes_;
};

}  // namespace

void save_safetensors(const fs::path& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  NoGradGuard no_grad;
  std::map<std::string, Tensor> host;
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey) {
      throw std::invalid_argument(
          "save_safetensors: '__metadata__' is reserved, not a tensor name");
    }
    if (!t.defined()) {
      throw std::invalid_argument("save_safetensors: tensor '" + name + "' is undefined");
    }
    host.emplace(name, t.to(Device::cpu()).contiguous());
  }
  const std::string header = encode_header(host, metadata);
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(header.size()) >> (8 * i));

  auto [raw_fd, tmp] = create_temporary(path);
  FileDescriptor fd(raw_fd);
  try {
    write_all(fd.get(), length, sizeof(length), path);
    write_all(fd.get(), header.data(), header.size(), path);
    for (const auto& [name, t] : host) write_all(fd.get(), t.data_ptr(), size_t(t.nbytes()), path);
    if (::fsync(fd.get()) != 0)
      throw file_error("save_safetensors", path, "fsync: " + errno_text());
    if (::close(fd.release()) != 0) {
      throw file_error("save_safetensors", path, "close: " + errno_text());
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      throw file_error("save_safetensors", path,
                       "cannot rename " + tmp.string() + " over it: " + errno_text());
    }
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  sync_directory(path);
}

SafetensorsFile load_safetensors(const fs::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw file_error("load_safetensors", path, "cannot open: " + errno_text());
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    throw file_error("load_safetensors", path, "cannot stat: " + errno_text());
  }
  if (!S_ISREG(info.st_mode)) throw file_error("load_safetensors", path, "not a regular file");
  const uint64_t size = uint64_t(info.st_size);
  if (size < 8) {
    throw file_error("load_safetensors", path,
                     "file has " + std::to_string(size) +
                         " bytes, fewer than the 8-byte header "
                         "length");
  }

  unsigned char length[8];
  read_exact(fd.get(), length, 8, 0, path);
  uint64_t header_bytes = 0;
  for (int i = 0; i < 8; ++i) header_bytes |= uint64_t(length[i]) << (8 * i);
  if (header_bytes > kMaxHeaderBytes) {
    throw file_error("load_safetensors", path,
                     "header length " + std::to_string(header_bytes) + " exceeds the limit of " +
                         std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (header_bytes > size - 8) {
    throw file_error("load_safetensors", path,
                     "header length " + std::to_string(header_bytes) + " exceeds the " +
                         std::to_string(size - 8) + " bytes after the length field");
  }
  std::string text(header_bytes, '\0');
  read_exact(fd.get(), text.data(), header_bytes, 8, path);

  const json header = json::parse(text, nullptr, /*allow_exceptions=*/false);
  const uint64_t data_start = 8 + header_bytes;
  HeaderParser parser(path, size - data_start);
  if (header.is_discarded()) parser.fail_header("header is not valid JSON");
  if (!header.is_object()) parser.fail_header("header is not a JSON object");

  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      file.metadata = parser.metadata(value);
    } else {
      entries.push_back(parser.entry(name, value));
    }
  }
  parser.check_disjoint(entries);

  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    const uint64_t bytes = e.end - e.begin;
    if (bytes > 0) read_exact(fd.get(), t.data_ptr(), bytes, data_start + e.begin, path);
    if (e.dtype == DType::Bool) {
      // Any non-zero byte means true; storing other values in a bool would be undefined.
      auto* p = static_cast<unsigned char*>(t.data_ptr());
      for (uint64_t i = 0; i < bytes; ++i) p[i] = p[i] != 0;
    }
    file.tensors.emplace(e.name, std::move(t));
  }
  return file;
}

void save_state_dict(const Module& module, const fs::path& path,
                     const std::map<std::string, std::string>& metadata) {
  save_safetensors(path, module.state_dict(), metadata);
}

void load_state_dict_file(Module& module, const fs::path& path, bool strict) {
  module.load_state_dict(load_safetensors(path).tensors, strict);
}

}  // namespace optimi::nn
