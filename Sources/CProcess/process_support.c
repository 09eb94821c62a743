#include "process_support.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t interrupt_signal = 0;

static void on_signal(int signal_number) {
  interrupt_signal = signal_number;
  if (signal_number == SIGINT) {
    struct sigaction restore;
    memset(&restore, 0, sizeof restore);
    restore.sa_handler = SIG_DFL;
    sigaction(SIGINT, &restore, 0);
  }
}

void distill_install_interrupt_handlers(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, 0);
  sigaction(SIGTERM, &action, 0);
  signal(SIGXFSZ, SIG_IGN);
  // A parent may have spawned us with these blocked (posix_spawn inherits the mask).
  sigset_t unblock;
  sigemptyset(&unblock);
  sigaddset(&unblock, SIGINT);
  sigaddset(&unblock, SIGTERM);
  pthread_sigmask(SIG_UNBLOCK, &unblock, 0);
}

int distill_interrupt_signal(void) { return interrupt_signal; }

int distill_stderr_is_terminal(void) { return isatty(STDERR_FILENO); }
