// The one way nabla writes a file a user named (`-o`, checkpoints).
//
// - A regular file, or a name that does not exist yet, is written through a
//   temporary file in the same folder, flushed to disk, then renamed over the
//   name: a reader, a crash or a kill never sees half a file, and the old
//   contents stay whole until the new ones are complete. A symbolic link is
//   followed: the file it points to is replaced (or made, when the link
//   dangles), the link stays. Temporaries a killed writer left beside the
//   output (`NAME.tmp.PID` of a process that is gone; NAME cut to leave room
//   in a 255-byte file name) are removed.
// - An existing file the user may not write (read-only, another user's) is
//   refused, as a shell's `>` refuses it, though the folder would allow the
//   rename.
// - An existing file that is not regular (a device such as /dev/null, a FIFO)
//   is opened and written in place: it is never replaced by a regular file.
// - A folder is refused, and so is any name that is the same file (same
//   device and inode, links followed) as one of the command's inputs: an
//   output never overwrites what the command reads.
// - Every failure is an OutputError that names the file and says why
//   ("cannot write 'x.o': Permission denied").
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace nabla::runtime {

class OutputError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Refuses `path` as an output before any work is spent: a folder, a file that
// is one of `inputs`, a name whose folder does not exist, or a folder where
// the temporary cannot be made (made and removed to find out: a read-only
// file system, /proc). Throws OutputError.
void check_output(const std::string& path, const std::vector<std::string>& inputs);

// Writes `bytes` to `path` as described above (check_output included).
void write_output(const std::string& path, std::string_view bytes,
                  const std::vector<std::string>& inputs = {});

}  // namespace nabla::runtime
