#include "runtime/npz.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <libdeflate.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>

#include "ir/assert.h"
#include "runtime/aligned.h"
#include "runtime/budget.h"
#include "runtime/output.h"

namespace nabla::runtime {
namespace {

// ---------------------------------------------------------------------------
// Little-endian fields (the caller has checked the bounds)

uint32_t u16(const char* p) {
  return static_cast<uint32_t>(static_cast<unsigned char>(p[0])) |
         static_cast<uint32_t>(static_cast<unsigned char>(p[1])) << 8;
}
uint32_t u32(const char* p) { return u16(p) | u16(p + 2) << 16; }
uint64_t u64(const char* p) { return static_cast<uint64_t>(u32(p)) | static_cast<uint64_t>(u32(p + 4)) << 32; }
void put16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>((v >> 8) & 0xFF);
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xFFFF);
  put16(s, v >> 16);
}

// ---------------------------------------------------------------------------
// Names in messages

// Code points a terminal shows as nothing, or that reorder the text around
// them: C1 controls, soft hyphen, zero-width and direction marks, separators,
// the byte order mark, tags.
bool invisible(uint32_t cp) {
  return cp < 0xA0 || cp == 0xAD || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
         (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
         (cp >= 0xE0000 && cp <= 0xE007F);
}

// The length of the valid UTF-8 sequence of a visible code point of two to
// four bytes at s[i], or 0.
size_t printable_utf8(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char lead = byte(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (lead >= 0xC2 && lead <= 0xDF) n = 2, cp = lead & 0x1F;
  else if (lead >= 0xE0 && lead <= 0xEF) n = 3, cp = lead & 0x0F;
  else if (lead >= 0xF0 && lead <= 0xF4) n = 4, cp = lead & 0x07;
  else return 0;
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (byte(i + k) & 0x3F);
  }
  const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};  // shorter forms are overlong
  if (cp < least[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || invisible(cp)) return 0;
  return n;
}

std::string quoted(std::string_view text) { return "'" + escaped(text) + "'"; }

// The start of a long text for a message.
std::string excerpt(std::string_view text) {
  constexpr size_t kShown = 120;
  return quoted(text.substr(0, kShown)) + (text.size() > kShown ? "..." : "");
}

}  // namespace

std::string escaped(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
      ++i;
    } else if (const size_t n = printable_utf8(text, i)) {
      out.append(text.substr(i, n));
      i += n;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
      ++i;
    }
  }
  return out;
}

namespace {

// ---------------------------------------------------------------------------
// Where archives are read from

// The archive being read: size() bytes with random access.
class ByteSource {
public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Copies the `n` bytes at `offset`, which lie within size(), to `out`.
  virtual void read(uint64_t offset, size_t n, char* out) const = 0;
  // All size() bytes, when they are in memory already; else nullptr.
  virtual const char* bytes() const { return nullptr; }
};

class MemorySource final : public ByteSource {
public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  void read(uint64_t offset, size_t n, char* out) const override {
    NABLA_ASSERT(offset <= bytes_.size() && n <= bytes_.size() - offset, "read past the archive");
    if (n > 0) std::memcpy(out, bytes_.data() + offset, n);
  }
  const char* bytes() const override { return bytes_.data(); }

private:
  std::string_view bytes_;
};

// A regular file read with pread: only what is asked for is in memory.
class FileSource final : public ByteSource {
public:
  FileSource(int fd, uint64_t size, std::string what) : fd_(fd), size_(size), what_(std::move(what)) {}
  uint64_t size() const override { return size_; }
  void read(uint64_t offset, size_t n, char* out) const override {
    NABLA_ASSERT(offset <= size_ && n <= size_ - offset, "read past the archive");
    while (n > 0) {
      const ssize_t got = ::pread(fd_, out, std::min<size_t>(n, size_t{1} << 30), static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw NpzError("cannot read " + what_ + ": " + std::strerror(errno));
      if (got == 0) throw NpzError(what_ + " became shorter while it was read");
      out += got, offset += static_cast<uint64_t>(got), n -= static_cast<size_t>(got);
    }
  }

private:
  int fd_;
  uint64_t size_;
  std::string what_;
};

// ---------------------------------------------------------------------------
// One member's bytes

// A deflated member of at most this many compressed bytes is inflated whole
// (MemberStream::read_whole), its compressed bytes read into memory first.
constexpr uint64_t kWholeInflateMax = uint64_t{1} << 30;
std::atomic<uint64_t> whole_inflated{0};  // members inflated whole (whole_inflated_members)

// The bytes of one ZIP member in order, inflated when it is deflated, with
// their running CRC-32. It never produces more than the member's declared
// size, so a member that inflates past it costs no memory.
class MemberStream {
public:
  // `size` bytes (declared), stored or deflated in the `csize` bytes at `at`.
  // `spare`: the memory budget left for its compressed bytes, to inflate it
  // whole (read_whole); 0: a stream only.
  MemberStream(const ByteSource& src, uint64_t at, uint64_t csize, uint64_t size, bool deflated, std::string what,
               uint64_t spare = 0)
      : src_(src), at_(at), csize_(csize), size_(size), deflated_(deflated), what_(std::move(what)), spare_(spare) {
    if (!deflated_) return;
    in_.resize(static_cast<size_t>(std::min<uint64_t>(csize_, 64 * 1024)));
    if (inflateInit2(&z_, -MAX_WBITS) != Z_OK) throw NpzError(what_ + ": cannot start inflating");
  }
  ~MemberStream() {
    if (deflated_) inflateEnd(&z_);
  }
  MemberStream(const MemberStream&) = delete;
  MemberStream& operator=(const MemberStream&) = delete;

  uint32_t crc() const { return crc_; }
  // The declared bytes produced so far.
  uint64_t produced() const { return produced_; }

  // Whether read_whole may take the member: deflated, nothing read past
  // its .npy header, and compressed bytes within kWholeInflateMax and what
  // the declared size allows for (a few bytes of deflate's framing per 64
  // KiB: more is a member that would be read into memory whole only to be
  // refused).
  bool whole_possible() const {
    return deflated_ && !ended_ && csize_ <= kWholeInflateMax && csize_ <= size_ + size_ / 8 + (uint64_t{64} << 10);
  }

  // The whole member inflated at once into out[0, size), from its first
  // byte (those read() has produced included), with its CRC-32: libdeflate
  // inflates MNIST's 25 MB of pixels in 7.5 ms where zlib's stream takes
  // 31. The compressed bytes are read where they lie when the archive is in
  // memory, else copied into memory first. False where it does not apply:
  // not whole_possible(); compressed bytes to copy beyond the spare budget;
  // data that is not exactly the declared bytes of valid deflate data. Then
  // out[] holds anything, and the stream state is as it was: read() goes
  // on from where it stopped, with zlib, which says what is wrong.
  bool read_whole(char* out) {
    if (!whole_possible()) return false;
    const size_t csize = static_cast<size_t>(csize_);
    struct Release {
      size_t bytes;
      void operator()(char* p) const { release_values(p, bytes); }
    };
    std::unique_ptr<char, Release> copy(nullptr, Release{csize});
    const char* in = src_.bytes() ? src_.bytes() + at_ : nullptr;  // an archive in memory: read in place
    if (!in) {
      if (csize_ > spare_) return false;
      try {
        copy.reset(static_cast<char*>(allocate_values(csize)));  // huge pages from 512 KiB (aligned.h)
      } catch (const std::bad_alloc&) {
        return false;
      }
      src_.read(at_, csize, copy.get());
      in = copy.get();
    }
    struct Free {
      void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
    };
    const std::unique_ptr<libdeflate_decompressor, Free> d(libdeflate_alloc_decompressor());
    if (!d) return false;
    size_t got = 0;
    if (libdeflate_deflate_decompress(d.get(), in, csize, out, static_cast<size_t>(size_),
                                      &got) != LIBDEFLATE_SUCCESS ||
        got != size_)
      return false;
    crc_ = size_ ? static_cast<uint32_t>(libdeflate_crc32(0, out, static_cast<size_t>(size_))) : 0;
    produced_ = size_;
    ended_ = true;
    whole_inflated.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Fills out[0, n) with the next n of the declared bytes.
  void read(char* out, size_t n) {
    NABLA_ASSERT(n <= size_ - produced_, "read past a member's declared size");
    while (n > 0) {
      const size_t k = next(out, n);
      if (k == 0)
        throw NpzError(what_ + ": its data inflates to " + std::to_string(produced_) + " bytes, fewer than the " +
                       std::to_string(size_) + " its ZIP entry declares (the file is truncated or corrupt)");
      crc_ = static_cast<uint32_t>(crc32_z(crc_, reinterpret_cast<const Bytef*>(out), k));
      produced_ += k, out += k, n -= k;
    }
  }

  // Throws unless the member ends right after its declared bytes.
  void expect_end() {
    NABLA_ASSERT(produced_ == size_, "a member's end checked before its declared size");
    char extra;
    if (next(&extra, 1) != 0)
      throw NpzError(what_ + ": trailing data: it inflates past the " + std::to_string(size_) +
                     " bytes its ZIP entry and .npy header declare");
  }

  // Reads the rest of the declared bytes for their CRC-32; false when they
  // cannot be read, or are more than `at_most` (a member whose entry
  // declares gigabytes would otherwise be inflated whole only to check
  // its CRC-32: 4 GiB took 9 s).
  bool finish(uint64_t at_most) {
    if (size_ - produced_ > at_most) return false;
    std::vector<char> scratch(static_cast<size_t>(std::min<uint64_t>(size_ - produced_, 64 * 1024)));
    try {
      while (produced_ < size_)
        read(scratch.data(), static_cast<size_t>(std::min<uint64_t>(size_ - produced_, scratch.size())));
    } catch (const NpzError&) {
      return false;
    }
    return true;
  }

private:
  // Up to n next bytes of the member, 0 at its end.
  size_t next(char* out, size_t n) {
    if (!deflated_) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, csize_ - produced_));
      src_.read(at_ + produced_, k, out);
      return k;
    }
    if (ended_) return 0;
    const uInt want = static_cast<uInt>(std::min<size_t>(n, UINT_MAX));
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = want;
    while (z_.avail_out == want) {
      if (z_.avail_in == 0 && consumed_ < csize_) refill();
      const int rc = ::inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        ended_ = true;
        break;
      }
      if (rc == Z_BUF_ERROR && z_.avail_in == 0 && consumed_ == csize_)
        throw NpzError(what_ + ": its deflate data is truncated");
      if (rc != Z_OK)
        throw NpzError(what_ + ": corrupt deflate data" + (z_.msg ? std::string(" (") + z_.msg + ")" : ""));
    }
    return want - z_.avail_out;
  }

  void refill() {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(in_.size(), csize_ - consumed_));
    src_.read(at_ + consumed_, k, in_.data());
    consumed_ += k;
    z_.next_in = reinterpret_cast<Bytef*>(in_.data());
    z_.avail_in = static_cast<uInt>(k);
  }

  const ByteSource& src_;
  uint64_t at_, csize_, size_;
  bool deflated_;
  std::string what_;
  uint64_t spare_;
  uint64_t produced_ = 0, consumed_ = 0;  // bytes out; compressed bytes handed to zlib
  uint32_t crc_ = 0;
  bool ended_ = false;
  z_stream z_{};
  std::vector<char> in_;
};

// ---------------------------------------------------------------------------
// .npy header: {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }

constexpr uint64_t kMaxHeaderBytes = 65536;  // NumPy writes a few hundred
constexpr size_t kMaxDims = 64;              // NumPy's limit

// What a .npy header declares.
struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// The Python dict literal of a .npy header, parsed strictly: the keys
// 'descr', 'fortran_order' and 'shape', once each and no other, their values
// a string, True or False, and a tuple of non-negative integers; nothing is
// evaluated.
//   header := '{' [item (',' item)* [',']] '}' (' ' | '\n')*
//   item   := string ':' value            (spaces and tabs between tokens)
class HeaderParser {
public:
  HeaderParser(std::string_view text, const std::string& what) : text_(text), what_(what) {}

  NpyHeader parse() {
    NpyHeader h;
    bool seen[3] = {false, false, false};  // descr, fortran_order, shape
    expect('{');
    while (skip_spaces(), !accept('}')) {
      const std::string_view key = string_literal("a key");
      skip_spaces();
      expect(':');
      skip_spaces();
      const int k = key == "descr" ? 0 : key == "fortran_order" ? 1 : key == "shape" ? 2 : -1;
      if (k < 0) fail("unknown key " + quoted(key) + "; a .npy header has 'descr', 'fortran_order' and 'shape'");
      if (seen[k]) fail("the key " + quoted(key) + " appears twice");
      seen[k] = true;
      if (k == 0) h.descr = descr();
      else if (k == 1) h.fortran_order = boolean();
      else h.shape = shape();
      skip_spaces();
      if (!accept(',')) {
        expect('}');
        break;
      }
    }
    for (; at_ < text_.size(); ++at_)
      if (text_[at_] != ' ' && text_[at_] != '\n') fail("text after the closing '}'");
    for (int k = 0; k < 3; ++k)
      if (!seen[k]) fail(std::string("no key '") + (k == 0 ? "descr" : k == 1 ? "fortran_order" : "shape") + "'");
    return h;
  }

private:
  [[noreturn]] void fail(const std::string& why) const {
    const size_t end = text_.find_last_not_of(" \n");  // without NumPy's padding
    throw NpzError(what_ + ": bad .npy header " + excerpt(text_.substr(0, end + 1)) + ": " + why);
  }
  void skip_spaces() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t')) ++at_;
  }
  bool accept(char c) {
    if (at_ >= text_.size() || text_[at_] != c) return false;
    ++at_;
    return true;
  }
  void expect(char c) {
    if (!accept(c)) fail(std::string("expected '") + c + "' at byte " + std::to_string(at_));
  }
  // A quoted string without escapes: 'text' or "text".
  std::string_view string_literal(const char* expected) {
    const char quote = at_ < text_.size() ? text_[at_] : '\0';
    if (quote != '\'' && quote != '"') fail(std::string("expected ") + expected + " at byte " + std::to_string(at_));
    const size_t end = text_.find(quote, at_ + 1);
    if (end == std::string_view::npos) fail("a string that does not end");
    const std::string_view s = text_.substr(at_ + 1, end - at_ - 1);
    if (s.find_first_of("\\\n") != std::string_view::npos) fail("a string with an escape or a line break");
    at_ = end + 1;
    return s;
  }
  std::string descr() {
    if (at_ < text_.size() && text_[at_] == '[')
      fail("a structured dtype (a list of fields); nabla reads float32 and float64 arrays");
    return std::string(string_literal("a dtype string"));
  }
  bool boolean() {
    for (const bool b : {true, false}) {
      const std::string_view word = b ? "True" : "False";
      if (text_.substr(at_, word.size()) == word) {
        at_ += word.size();
        return b;
      }
    }
    fail("'fortran_order' is not True or False");
  }
  std::vector<int64_t> shape();
  int64_t dimension();

  std::string_view text_;
  const std::string& what_;
  size_t at_ = 0;
};

// A tuple of dimensions: (), (3,), (3, 4) or (3, 4,).
std::vector<int64_t> HeaderParser::shape() {
  expect('(');
  std::vector<int64_t> dims;
  bool trailing_comma = false;
  while (skip_spaces(), !accept(')')) {
    if (dims.size() == kMaxDims) fail("a shape of more than " + std::to_string(kMaxDims) + " dimensions");
    dims.push_back(dimension());
    skip_spaces();
    trailing_comma = accept(',');
    if (!trailing_comma) {
      expect(')');
      break;
    }
  }
  if (dims.size() == 1 && !trailing_comma) fail("the shape is not a tuple (a 1-d shape is written (n,))");
  return dims;
}

// A non-negative decimal integer (Python 2 wrote a long as 3L).
int64_t HeaderParser::dimension() {
  if (at_ >= text_.size() || text_[at_] < '0' || text_[at_] > '9')
    fail("a dimension that is not a non-negative integer, at byte " + std::to_string(at_));
  int64_t d = 0;
  for (; at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9'; ++at_) {
    const int digit = text_[at_] - '0';
    if (d > (INT64_MAX - digit) / 10) fail("a dimension too large for 64 bits");
    d = d * 10 + digit;
  }
  accept('L');
  return d;
}

// What a dtype's kind letter holds, for a refusal.
std::string dtype_kind(std::string_view body) {
  if (body.empty()) return "";
  switch (body[0]) {
    case 'i': return " (integers)";
    case 'u': return " (unsigned integers)";
    case 'b': case '?': return " (booleans)";
    case 'f': return body == "f2" ? " (float16)" : " (floats of another size)";
    case 'c': return " (complex numbers)";
    case 'O': return " (Python objects)";
    case 'S': case 'a': case 'U': return " (strings)";
    case 'V': return " (raw bytes)";
    case 'M': case 'm': return " (dates or times)";
    default: return "";
  }
}

// The element type and byte order of `descr`: float32 or float64, in this
// machine's order ('=' or none), little ('<') or big ('>') endian.
DType element_type(std::string_view descr, bool* swap, const std::string& what) {
  const char first = descr.empty() ? '\0' : descr[0];
  const bool marked = first == '<' || first == '>' || first == '=' || first == '|';
  const char order = marked ? first : '=';
  const std::string_view body = marked ? descr.substr(1) : descr;
  const bool float_body = body == "f4" || body == "f8";
  if (float_body && order != '|') {
    constexpr bool little = std::endian::native == std::endian::little;
    *swap = (order == '<' && !little) || (order == '>' && little);
    return body == "f4" ? DType::F32 : DType::F64;
  }
  throw NpzError(what + " has dtype " + quoted(descr) + (float_body ? " (no byte order)" : dtype_kind(body)) +
                 "; nabla reads float32 and float64 arrays ('<f4', '<f8', or big-endian '>f4', '>f8'): "
                 "convert it with .astype(numpy.float32)");
}

size_t element_size(DType t) { return t == DType::F32 ? 4 : 8; }

// The bytes of the data `shape` declares; throws when the shape's size (zero
// dimensions counted as one) overflows 64 bits, so no product of its
// dimensions ever overflows.
uint64_t data_bytes(const std::vector<int64_t>& shape, DType t, const std::string& what) {
  uint64_t bound = element_size(t), elements = 1;
  for (const int64_t d : shape) {
    const uint64_t u = static_cast<uint64_t>(d);
    bound = product_bytes(bound, std::max<uint64_t>(u, 1));
    elements *= u;
    if (bound > static_cast<uint64_t>(INT64_MAX))
      throw NpzError(what + " has shape " + shape_str(shape) + ", too large for 64-bit sizes");
  }
  return elements * element_size(t);
}

// Reverses the bytes of each `size`-byte element of data[0, bytes): exact
// for every bit pattern, NaN payloads included.
void swap_bytes(char* data, size_t bytes, size_t size) {
  for (size_t i = 0; i + size <= bytes; i += size) std::reverse(data + i, data + i + size);
}

// An array with the header's shape and type, its data read from `in`, which
// holds exactly `bytes` more bytes.
Array read_data(MemberStream& in, uint64_t bytes, const NpyHeader& h, const std::string& what) {
  Array a;
  bool swap = false;
  a.dtype = element_type(h.descr, &swap, what);
  if (h.fortran_order && std::count_if(h.shape.begin(), h.shape.end(), [](int64_t d) { return d > 1; }) > 1)
    throw NpzError(what + " is in Fortran order; write it in C order (numpy.ascontiguousarray)");
  a.shape = h.shape;
  const uint64_t want = data_bytes(a.shape, a.dtype, what);
  if (bytes != want)
    throw NpzError(what + ": " + std::to_string(bytes) + " bytes of data for shape " + shape_str(a.shape) + " of " +
                   dtype_name(a.dtype) + " (" + std::to_string(want) + " expected; " +
                   (bytes > want ? "trailing data)" : "the array is truncated)"));
  check_memory(what, want);
  const size_t elem = element_size(a.dtype), n = static_cast<size_t>(want / elem);
  // Room in front of the data for the bytes already read (magic and
  // header), so the member inflates whole straight into the array; the
  // data then moves to the front.
  const uint64_t before = in.produced();
  const bool whole = in.whole_possible();
  const size_t lead = whole ? static_cast<size_t>((before + elem - 1) / elem) : 0;
  auto storage = [&](size_t count) {
    if (a.dtype == DType::F32) return a.f32.resize(count), reinterpret_cast<char*>(a.f32.data());
    return a.f64.resize(count), reinterpret_cast<char*>(a.f64.data());
  };
  char* out = storage(n + lead);
  if (whole && in.read_whole(out + lead * elem - before))
    std::memmove(out, out + lead * elem, static_cast<size_t>(want));
  else
    in.read(out, static_cast<size_t>(want));
  out = storage(n);  // the same buffer, shorter
  if (swap) swap_bytes(out, static_cast<size_t>(want), elem);
  return a;
}

// The .npy payload of `size` bytes that `in` produces: magic, version,
// header length, header, data.
Array read_npy(MemberStream& in, uint64_t size, const std::string& what) {
  char prefix[12] = {};
  in.read(prefix, static_cast<size_t>(std::min<uint64_t>(size, 8)));
  if (size < 10 || std::memcmp(prefix, "\x93NUMPY", 6) != 0) throw NpzError(what + " is not a .npy array (bad magic)");
  const int major = static_cast<unsigned char>(prefix[6]), minor = static_cast<unsigned char>(prefix[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    throw NpzError(what + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  const uint64_t header_at = major == 1 ? 10 : 12;
  if (size < header_at) throw NpzError(what + ": truncated .npy header");
  in.read(prefix + 8, static_cast<size_t>(header_at - 8));
  const uint64_t header_len = major == 1 ? u16(prefix + 8) : u32(prefix + 8);
  if (header_len > kMaxHeaderBytes)
    throw NpzError(what + ": a .npy header of " + std::to_string(header_len) + " bytes (nabla reads up to " +
                   std::to_string(kMaxHeaderBytes) + ")");
  if (size - header_at < header_len) throw NpzError(what + ": truncated .npy header");
  std::string text(static_cast<size_t>(header_len), '\0');
  in.read(text.data(), text.size());
  const NpyHeader h = HeaderParser(text, what).parse();
  return read_data(in, size - header_at - header_len, h, what);
}

// ---------------------------------------------------------------------------
// ZIP

constexpr uint32_t kEncrypted = 1 | 1 << 6 | 1 << 13;  // encrypted, strong encryption, masked headers
constexpr uint32_t kDataDescriptor = 1 << 3;          // sizes and CRC after the data
constexpr uint32_t kFull32 = 0xFFFFFFFF;              // the field is in the ZIP64 extra record

// Where the central directory lies and how many entries it holds.
struct ZipDirectory {
  uint64_t at = 0, size = 0, entries = 0;
};

// One member as the central directory describes it.
struct ZipEntry {
  std::string name;
  uint32_t flags = 0, method = 0, crc = 0;
  uint64_t csize = 0, usize = 0, local = 0;
};

// Replaces each of `fields` that holds 0xFFFFFFFF, in order, by its 64-bit
// value in the ZIP64 extra record (id 1) of `extra`.
void apply_zip64(std::string_view extra, std::initializer_list<uint64_t*> fields, const std::string& what) {
  for (size_t x = 0; extra.size() - x >= 4;) {
    const uint32_t id = u16(extra.data() + x), len = u16(extra.data() + x + 2);
    if (extra.size() - x - 4 < len) throw NpzError(what + ": corrupt ZIP extra field");
    if (id == 0x0001) {
      size_t q = x + 4;
      for (uint64_t* f : fields) {
        if (*f != kFull32) continue;
        if (x + 4 + len - q < 8) throw NpzError(what + ": corrupt ZIP64 extra field");
        *f = u64(extra.data() + q);
        q += 8;
      }
    }
    x += 4 + len;
  }
}

// The ZIP64 end record's directory, when the end record at `eocd` points to
// one; `d` unchanged otherwise. `*end` becomes the record's offset.
void read_zip64_end(const ByteSource& src, uint64_t eocd, ZipDirectory& d, uint64_t* end, const std::string& what) {
  if (eocd < 20) return;
  char loc[20];
  src.read(eocd - 20, 20, loc);
  if (std::memcmp(loc, "PK\x06\x07", 4) != 0) return;
  const uint64_t at = u64(loc + 8);
  if (at > eocd - 20 || eocd - 20 - at < 56) throw NpzError(what + ": corrupt ZIP64 end record");
  char rec[56];
  src.read(at, 56, rec);
  if (std::memcmp(rec, "PK\x06\x06", 4) != 0) throw NpzError(what + ": corrupt ZIP64 end record");
  d.entries = u64(rec + 32);
  d.size = u64(rec + 40);
  d.at = u64(rec + 48);
  *end = at;
}

// The central directory, from the end record (the last "PK\5\6" in the final
// 64 KiB + 22 bytes), bounded by the file.
ZipDirectory find_directory(const ByteSource& src, const std::string& what) {
  const uint64_t n = src.size();
  const size_t tail_len = static_cast<size_t>(std::min<uint64_t>(n, 22 + 0xFFFF));
  std::string tail(tail_len, '\0');
  src.read(n - tail_len, tail_len, tail.data());
  const size_t i = tail_len < 22 ? std::string::npos : tail.rfind("PK\x05\x06", tail_len - 22);
  if (i == std::string::npos) throw NpzError(what + " is not a .npz file (no ZIP directory)");
  const char* e = tail.data() + i;
  ZipDirectory d{u32(e + 16), u32(e + 12), u16(e + 10)};
  uint64_t end = n - tail_len + i;  // the directory ends before this
  if (d.entries == 0xFFFF || d.size == kFull32 || d.at == kFull32) read_zip64_end(src, end, d, &end, what);
  if (d.at > end || d.size > end - d.at)
    throw NpzError(what + ": corrupt ZIP directory (it does not lie within the file)");
  if (d.entries > d.size / 46)
    throw NpzError(what + ": corrupt ZIP directory (" + std::to_string(d.entries) + " entries cannot fit in " +
                   std::to_string(d.size) + " bytes)");
  return d;
}

// The entries of the central directory.
std::vector<ZipEntry> read_entries(const ByteSource& src, const ZipDirectory& d, const std::string& what) {
  check_memory("the ZIP directory of " + what, d.size);
  std::string cd(static_cast<size_t>(d.size), '\0');
  src.read(d.at, cd.size(), cd.data());
  std::vector<ZipEntry> out;
  out.reserve(static_cast<size_t>(d.entries));
  size_t p = 0;
  for (uint64_t k = 0; k < d.entries; ++k) {
    const auto corrupt = [&] {
      return NpzError(what + ": corrupt ZIP directory (entry " + std::to_string(k + 1) + ")");
    };
    if (cd.size() - p < 46 || cd.compare(p, 4, "PK\x01\x02") != 0) throw corrupt();
    const char* h = cd.data() + p;
    ZipEntry e{"", u16(h + 8), u16(h + 10), u32(h + 16), u32(h + 20), u32(h + 24), u32(h + 42)};
    const size_t name_len = u16(h + 28), extra_len = u16(h + 30), comment_len = u16(h + 32);
    if (cd.size() - p - 46 < name_len + extra_len + comment_len) throw corrupt();
    e.name = cd.substr(p + 46, name_len);
    apply_zip64(std::string_view(cd).substr(p + 46 + name_len, extra_len), {&e.usize, &e.csize, &e.local}, what);
    out.push_back(std::move(e));
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

// Where entry `e`'s data starts, once its local header agrees with the
// directory (name, method, and CRC and sizes unless they follow the data) and
// the data lies before `data_end`.
uint64_t local_data_at(const ByteSource& src, const ZipEntry& e, uint64_t data_end, const std::string& what) {
  char h[30];
  if (e.local > data_end || data_end - e.local < 30) throw NpzError(what + ": corrupt ZIP entry (bad offset)");
  src.read(e.local, 30, h);
  if (std::memcmp(h, "PK\x03\x04", 4) != 0) throw NpzError(what + ": corrupt ZIP entry (no local header)");
  const size_t name_len = u16(h + 26), extra_len = u16(h + 28);
  if (data_end - e.local - 30 < name_len + extra_len) throw NpzError(what + ": corrupt ZIP entry (bad local header)");
  std::string rest(name_len + extra_len, '\0');
  src.read(e.local + 30, rest.size(), rest.data());
  const uint32_t flags = u16(h + 6);
  uint64_t csize = u32(h + 18), usize = u32(h + 22);
  apply_zip64(std::string_view(rest).substr(name_len), {&usize, &csize}, what);
  bool agree = rest.compare(0, name_len, e.name) == 0 && u16(h + 8) == e.method;
  if (!(flags & kDataDescriptor)) agree = agree && u32(h + 14) == e.crc && csize == e.csize && usize == e.usize;
  if (!agree) throw NpzError(what + ": corrupt ZIP entry (its local header disagrees with the ZIP directory)");
  if (flags & kEncrypted) throw NpzError(what + " is encrypted; nabla reads unencrypted archives");
  const uint64_t at = e.local + 30 + name_len + extra_len;
  if (data_end - at < e.csize) throw NpzError(what + ": truncated ZIP entry");
  return at;
}

[[noreturn]] void crc_mismatch(const std::string& what) {
  throw NpzError(what + ": CRC-32 mismatch (the file is corrupt)");
}

// The array name of member `name`: NAME for NAME.npy, as numpy.savez writes.
std::string array_name(const std::string& name, const std::string& what) {
  if (name.size() <= 4 || !name.ends_with(".npy"))
    throw NpzError(what + " holds " + quoted(name) +
                   ", which is not an array: the members of a .npz are NAME.npy, as numpy.savez writes them");
  return name.substr(0, name.size() - 4);
}

// A member ready to be read: its entry, its array's name, the array as
// messages name it, and where its data starts.
struct Member {
  ZipEntry entry;
  std::string name, what;
  uint64_t data_at = 0;
};

// Throws unless the members' bytes (local header to the end of the data) are
// disjoint: overlapping members would let a small file make the reader
// inflate the same bytes once for every member.
void check_disjoint(const std::vector<Member>& members, const std::string& what) {
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const Member& m : members) spans.emplace_back(m.entry.local, m.data_at + m.entry.csize);
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) throw NpzError(what + ": corrupt ZIP directory (two members overlap)");
}

// The members of the directory, checked before any is read: arrays named
// once each, entries nabla reads, local headers that agree, no overlap.
std::vector<Member> locate_members(const ByteSource& src, const ZipDirectory& d, std::vector<ZipEntry> entries,
                                   const std::string& what) {
  std::vector<Member> out;
  std::set<std::string> names;
  for (ZipEntry& e : entries) {
    Member m;
    m.name = array_name(e.name, what);
    if (!names.insert(m.name).second) throw NpzError(what + " holds two arrays named " + quoted(m.name));
    m.what = "array " + quoted(m.name) + " in " + what;
    if (e.flags & kEncrypted) throw NpzError(m.what + " is encrypted; nabla reads unencrypted archives");
    if (e.method != 0 && e.method != 8)
      throw NpzError(m.what + " uses ZIP compression method " + std::to_string(e.method) +
                     "; nabla reads stored and deflate entries (numpy.savez, numpy.savez_compressed)");
    if (e.method == 0 && e.csize != e.usize)
      throw NpzError(m.what + ": corrupt ZIP entry (a stored entry whose sizes differ)");
    m.data_at = local_data_at(src, e, d.at, m.what);
    m.entry = std::move(e);
    out.push_back(std::move(m));
  }
  check_disjoint(out, what);
  return out;
}

// The array in member `m`, its CRC-32 checked. When the array cannot be read
// and its bytes do not match their CRC-32, the corruption is what is reported
// (checked when at most kCrcCheckMax bytes are left to read; past that, the
// error found is reported as it is).
constexpr uint64_t kCrcCheckMax = 64ull << 20;
Array read_member(const ByteSource& src, const Member& m, uint64_t spare) {
  const ZipEntry& e = m.entry;
  MemberStream in(src, m.data_at, e.csize, e.usize, e.method == 8, m.what, spare);
  Array a;
  try {
    a = read_npy(in, e.usize, m.what);
    in.expect_end();
  } catch (const NpzError&) {
    if (in.finish(kCrcCheckMax) && in.crc() != e.crc) crc_mismatch(m.what);
    throw;
  }
  if (in.crc() != e.crc) crc_mismatch(m.what);
  return a;
}

ArrayMap read_archive(const ByteSource& src, const std::string& file) {
  const std::string what = quoted(file);
  const ZipDirectory d = find_directory(src, what);
  std::vector<ZipEntry> entries = read_entries(src, d, what);
  uint64_t total = 0;  // the arrays' declared bytes, saturating
  for (const ZipEntry& e : entries) total = e.usize > UINT64_MAX - total ? UINT64_MAX : total + e.usize;
  check_memory("reading the arrays of " + what, total);
  // What the budget leaves beside all the arrays: room for one member's
  // compressed bytes at a time, to inflate it whole.
  const uint64_t spare = memory_budget() > total ? memory_budget() - total : 0;
  ArrayMap out;
  for (const Member& m : locate_members(src, d, std::move(entries), what))
    out.emplace(m.name, read_member(src, m, spare));
  return out;
}

// A file that is not a regular file (a pipe, a device), read to its end
// within the memory budget.
std::string read_stream(int fd, const std::string& what) {
  std::string bytes;
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t got = ::read(fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw NpzError("cannot read " + what + ": " + std::strerror(errno));
    if (got == 0) return bytes;
    check_memory(what, bytes.size() + static_cast<size_t>(got));
    const bool first = bytes.size() < 4;
    bytes.append(chunk, static_cast<size_t>(got));
    // An .npz starts with a ZIP record ("PK\3\4", or "PK\5\6" when empty):
    // a stream that does not (/dev/zero, /dev/urandom) is refused at once,
    // not read until the memory budget runs out.
    if (first && bytes.size() >= 4 && bytes.compare(0, 4, "PK\x03\x04") != 0 && bytes.compare(0, 4, "PK\x05\x06") != 0)
      throw NpzError(what + " is not a .npz file (it does not start as a ZIP archive)");
  }
}

// Closes a file descriptor when it goes out of scope.
struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

}  // namespace

std::string deflate_bytes(std::string_view in) {
  z_stream z{};
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, static_cast<uLong>(in.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

uint64_t whole_inflated_members() { return whole_inflated.load(std::memory_order_relaxed); }

const char* dtype_name(DType t) { return t == DType::F32 ? "float32" : "float64"; }

int64_t Array::size() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Array Array::zeros(std::vector<int64_t> shape, DType t) {
  Array a;
  a.shape = std::move(shape);
  a.dtype = t;
  if (t == DType::F32) a.f32.assign(static_cast<size_t>(a.size()), 0.0f);
  else a.f64.assign(static_cast<size_t>(a.size()), 0.0);
  return a;
}

Array Array::as(DType t) const {
  if (t == dtype) return *this;
  Array out = zeros(shape, t);
  for (size_t i = 0; i < static_cast<size_t>(size()); ++i) {
    if (t == DType::F32) out.f32[i] = static_cast<float>(f64[i]);
    else out.f64[i] = f32[i];
  }
  return out;
}

Array Array::as(DType t, const std::string& what) const {
  check_fits(t, what);
  return as(t);
}

void Array::check_fits(DType t, const std::string& what) const {
  if (t == DType::F32 && dtype == DType::F64)
    for (size_t i = 0; i < f64.size(); ++i)
      if (std::isfinite(f64[i]) && !std::isfinite(static_cast<float>(f64[i])))
        throw NpzError(beyond_float32(what, f64[i], i));
}

std::string beyond_float32(const std::string& what, double value, size_t element) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return what + " holds " + text + " (element " + std::to_string(element) +
         "), beyond float32's range: the model computes in float32 (compiled for float64 it takes such values)";
}

void Array::check_finite(const std::string& what, const std::string& why) const {
  const size_t n = static_cast<size_t>(size());
  for (size_t i = 0; i < n; ++i) {
    const double v = dtype == DType::F32 ? f32[i] : f64[i];
    if (std::isfinite(v)) continue;
    throw NpzError(what + " holds " + (std::isnan(v) ? std::string("NaN") : v > 0 ? "inf" : "-inf") + " (element " +
                   std::to_string(i) + "): " + why);
  }
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Array parse_npy(std::string_view bytes, const std::string& what) {
  const MemorySource src(bytes);
  MemberStream in(src, 0, bytes.size(), bytes.size(), false, what);
  return read_npy(in, bytes.size(), what);
}

namespace {

// A .npy file's header (magic, version, length, the dict padded so that the
// data starts at a multiple of 64), and its data: the array's values.
std::string npy_header(const Array& a) {
  std::string shape = "(";
  for (size_t i = 0; i < a.shape.size(); ++i)
    shape += std::to_string(a.shape[i]) + (a.shape.size() == 1 || i + 1 < a.shape.size() ? "," : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + (a.dtype == DType::F32 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces and end with '\n' so the data starts at a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  put16(out, static_cast<uint32_t>(header.size()));
  return out + header;
}

std::string_view npy_data(const Array& a) {
  return a.dtype == DType::F32 ? std::string_view(reinterpret_cast<const char*>(a.f32.data()), a.f32.size() * 4)
                               : std::string_view(reinterpret_cast<const char*>(a.f64.data()), a.f64.size() * 8);
}

}  // namespace

std::string make_npy(const Array& a) {
  std::string out = npy_header(a);
  out.append(npy_data(a));
  return out;
}

ArrayMap read_npz(const std::string& path) {
  const std::string what = quoted(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw NpzError("cannot open " + what + ": " + std::strerror(errno));
  const FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw NpzError("cannot open " + what + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw NpzError("cannot open " + what + ": " + std::strerror(EISDIR));
  if (S_ISREG(st.st_mode)) return read_archive(FileSource(fd, static_cast<uint64_t>(st.st_size), what), path);
  const std::string bytes = read_stream(fd, what);
  return read_npz_bytes(bytes, path);
}

ArrayMap read_npz_bytes(std::string_view bytes, const std::string& what) {
  return read_archive(MemorySource(bytes), what);
}

// Stored (not compressed), each array's values are copied once, into the
// archive, which is sized once: the params of the MNIST MLP were copied
// three times (the .npy, the member, the member with its name), 800 KB a
// copy of W1 in fresh pages, 14 ms of page faults at a first save.
std::string npz_bytes(const ArrayMap& arrays, bool compress) {
  std::string zip, dir;
  if (!compress) {
    size_t total = 22;  // the end record
    for (const auto& [name, array] : arrays)
      total += 30 + 46 + 2 * (name.size() + 4) + 128 + npy_data(array).size();  // headers, names, .npy header
    zip.reserve(total);
  }
  uint32_t count = 0;
  for (const auto& [name, array] : arrays) {
    const std::string header = npy_header(array);
    const std::string_view data = npy_data(array);
    const std::string deflated = compress ? deflate_bytes(make_npy(array)) : std::string();
    const uint64_t npy_size = header.size() + data.size();
    const uint64_t body_size = compress ? deflated.size() : npy_size;
    const std::string file = name + ".npy";
    uint32_t crc = static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(header.data()), header.size()));
    if (!data.empty())  // crc32_z of a null buffer returns 0, not `crc`
      crc = static_cast<uint32_t>(crc32_z(crc, reinterpret_cast<const Bytef*>(data.data()), data.size()));
    if (zip.size() > 0xFFFFFFF0u || npy_size > 0xFFFFFFF0u || body_size > 0xFFFFFFF0u)
      throw NpzError("arrays over 4 GiB are not supported");
    if (file.size() > 0xFFFF) throw NpzError("an array name of " + std::to_string(name.size()) + " bytes is too long");
    const uint32_t offset = static_cast<uint32_t>(zip.size());
    auto common = [&](std::string& s) {
      put16(s, 20);                   // version needed
      put16(s, 0);                    // flags
      put16(s, compress ? 8 : 0);     // method
      put16(s, 0);                    // time
      put16(s, 0x21);                 // date (1980-01-01)
      put32(s, crc);
      put32(s, static_cast<uint32_t>(body_size));
      put32(s, static_cast<uint32_t>(npy_size));
      put16(s, static_cast<uint32_t>(file.size()));
      put16(s, 0);                    // extra
    };
    zip += "PK\x03\x04";
    common(zip);
    zip += file;
    if (compress) {
      zip += deflated;
    } else {
      zip += header;
      zip += data;
    }
    dir += "PK\x01\x02";
    put16(dir, 20);  // version made by
    common(dir);
    put16(dir, 0);   // comment
    put16(dir, 0);   // disk
    put16(dir, 0);   // internal attributes
    put32(dir, 0);   // external attributes
    put32(dir, offset);
    dir += file;
    ++count;
  }
  const uint32_t dir_at = static_cast<uint32_t>(zip.size());
  zip += dir;
  zip += "PK\x05\x06";
  put16(zip, 0);
  put16(zip, 0);
  put16(zip, count);
  put16(zip, count);
  put32(zip, static_cast<uint32_t>(dir.size()));
  put32(zip, dir_at);
  put16(zip, 0);
  return zip;
}

void write_npz(const std::string& path, const ArrayMap& arrays, bool compress,
               const std::vector<std::string>& inputs) {
  std::string zip;
  try {
    zip = npz_bytes(arrays, compress);
  } catch (const NpzError& e) {
    throw NpzError("'" + path + "': " + e.what());
  }
  write_output(path, zip, inputs);
}

}  // namespace nabla::runtime
