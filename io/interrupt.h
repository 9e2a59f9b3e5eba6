// Interrupted runs leave nothing behind that a user could mistake for output.
//
// Every temporary a writer makes beside its target (temporary_path_for, previous_path_for in
// file_util.h) is registered here while the process lives. Two ways a run ends early:
// - SIGINT / SIGTERM: install_interrupt_cleanup (called first thing in main) sets a handler
//   that hands the signal to one waiting thread; it removes every registered temporary (and
//   anything named after one, e.g. OPCM's scratch), says so in one line, and exits with
//   128 + the signal (130, 143). A move of finished files into place holds it off
//   (lock_commit), so the target is always either the old or the new complete output.
// - SIGKILL (or a crash): nothing runs. The temporaries carry the writer's process id in
//   their names (".NAME.partial-PID-N", ".NAME.previous-PID-N"), so the next run that writes
//   beside them (recover_interrupted, called by temporary_path_for once per target) removes
//   the partial ones of processes that no longer exist and restores a set-aside previous
//   output whose target is missing (killed between its two renames), and says what it did.
#pragma once
#include <mutex>
#include <string>
#include <vector>

namespace modelpress {

void register_temporary(const std::string& path);

// Held while a finished output replaces its target: interrupt cleanup waits for it.
std::unique_lock<std::mutex> lock_commit();

// SIGINT / SIGTERM handling for a command-line process (see above); SIGXFSZ is ignored, so a
// file-size limit fails the write (an error naming the file, staging removed) like a full disk.
void install_interrupt_cleanup();

// Leftovers of dead processes beside `target` (see above): removes or restores them and returns
// one line per action (also printed on stderr as notes).
std::vector<std::string> recover_interrupted(const std::string& target);

}  // namespace modelpress
