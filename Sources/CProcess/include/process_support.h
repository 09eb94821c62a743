#ifndef DISTILL_PROCESS_SUPPORT_H
#define DISTILL_PROCESS_SUPPORT_H

/// Installs handlers for SIGINT and SIGTERM that only set a flag (the trainer polls it at
/// the end of each step), and ignores SIGXFSZ so that a write past a file-size limit fails
/// with EFBIG instead of killing the process. A second SIGINT restores the default action,
/// so pressing Ctrl-C twice stops at once.
void distill_install_interrupt_handlers(void);

/// The signal that asked the run to stop (SIGINT or SIGTERM), or 0.
int distill_interrupt_signal(void);

/// Whether standard error is a terminal.
int distill_stderr_is_terminal(void);

#endif
