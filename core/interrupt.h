#pragma once
/// Ctrl-C (SIGINT) and SIGTERM: the first one asks gacc to stop — it ends the child process groups
/// registered here at once (external commands run in groups of their own, out of reach of the
/// terminal's signal), and the loops that wait (cases, collectives, commands) throw Interrupted at
/// their next check; nothing half-written is left, the exit code is 128 + the signal. A second
/// signal ends gacc at once, the default way.

#include <sys/types.h>

#include <string>

#include "core/errors.h"

namespace gacc {

/// The run was interrupted by a signal (exit 128 + signal: 130 for Ctrl-C, 143 for SIGTERM).
class Interrupted : public Error {
 public:
  explicit Interrupted(int signal);
  int signal() const noexcept { return signal_; }

 private:
  int signal_;
};

/// Installs the SIGINT and SIGTERM handlers (once per process; `gacc` does it in main).
void install_interrupt_handlers();

/// The signal that asked gacc to stop, 0 if none.
int interrupt_signal();

/// Throws Interrupted if a signal asked gacc to stop.
void check_interrupted();

/// While alive, a signal also ends process group `group` (SIGKILL to the whole group).
class InterruptibleGroup {
 public:
  explicit InterruptibleGroup(pid_t group);
  ~InterruptibleGroup();
  InterruptibleGroup(const InterruptibleGroup&) = delete;
  InterruptibleGroup& operator=(const InterruptibleGroup&) = delete;

 private:
  int slot_;
};

}  // namespace gacc
