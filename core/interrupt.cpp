#include "core/interrupt.h"

#include <signal.h>

#include <atomic>
#include <cstring>

namespace gacc {
namespace {

// Process groups a signal must end: a fixed table of lock-free slots, so that the handler reads it
// with async-signal-safe operations only. 0 marks a free slot.
constexpr int kGroupSlots = 64;
std::atomic<pid_t> groups[kGroupSlots];
std::atomic<int> received{0};

extern "C" void on_interrupt(int signal) {
  if (received.exchange(signal) != 0) {
    // The second signal: the default action, now.
    ::signal(signal, SIG_DFL);
    ::raise(signal);
    return;
  }
  for (auto& group : groups) {
    const pid_t g = group.load();
    if (g > 0) ::kill(-g, SIGKILL);
  }
}

std::string describe(int signal) {
  const char* name = signal == SIGINT ? "SIGINT (Ctrl-C)" : signal == SIGTERM ? "SIGTERM" : strsignal(signal);
  return std::string("interrupted by ") + name + ": stopped, children ended, no report written";
}

}  // namespace

Interrupted::Interrupted(int signal)
    : Error(static_cast<ExitCode>(128 + signal), describe(signal)), signal_(signal) {}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int interrupt_signal() { return received.load(); }

void check_interrupted() {
  if (const int signal = received.load()) throw Interrupted(signal);
}

InterruptibleGroup::InterruptibleGroup(pid_t group) : slot_(-1) {
  for (int i = 0; i < kGroupSlots; ++i) {
    pid_t expected = 0;
    if (groups[i].compare_exchange_strong(expected, group)) {
      slot_ = i;
      break;
    }
  }
  // A signal that came before the group was registered must still end it.
  if (received.load() != 0) ::kill(-group, SIGKILL);
}

InterruptibleGroup::~InterruptibleGroup() {
  if (slot_ >= 0) groups[slot_].store(0);
}

}  // namespace gacc
