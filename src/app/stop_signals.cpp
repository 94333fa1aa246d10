#include "app/stop_signals.hpp"

#include <csignal>

namespace rewarm {
namespace {

// A signal handler can only set a flag of this type: the one global of its kind in rewarm.
volatile std::sig_atomic_t stop_signal = 0;
extern "C" void on_stop_signal(int sig) { stop_signal = sig; }

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() { return stop_signal != 0; }

}  // namespace rewarm
