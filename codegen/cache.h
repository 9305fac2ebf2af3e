// The on-disk cache of compiled kernel objects.
//
// An entry is keyed by a hash of everything the object depends on: the
// canonical kernel programs (which hold the simplified IR, shapes and element
// type), the function prefix, the target triple, CPU and features, and the
// versions of nabla and LLVM. Location: $NABLA_CACHE_DIR, else
// $XDG_CACHE_HOME/nabla, else $HOME/.cache/nabla. Writers create a unique
// temporary file and rename it into place, so concurrent processes never see
// a partial entry; readers take only a regular file (not a link, FIFO or
// device) of at most 2 GiB, check its header (magic, key, size equal to the
// file's, checksum) and treat anything else as a miss.
#pragma once

#include <optional>
#include <string>

namespace nabla::codegen {

// The default cache directory ("" when no location can be found: no
// variable names one and $HOME is not an existing folder).
std::string default_cache_dir();

// Where the build left the shared GEMM support objects it compiled for the
// machine it ran on (codegen/support_objects.cpp, entries keyed as the
// cache's): $NABLA_SUPPORT_DIR, else the build tree's `support/` ("" when
// neither). Read whether or not the cache is used: it is part of the build.
std::string shipped_support_dir();

// A 128-bit hash of `material`, as 32 hex digits.
std::string cache_key(const std::string& material);

std::optional<std::string> cache_read(const std::string& dir, const std::string& key);
// Best effort: returns false (and leaves no partial file) when it cannot write.
bool cache_write(const std::string& dir, const std::string& key, const std::string& bytes);

}  // namespace nabla::codegen
