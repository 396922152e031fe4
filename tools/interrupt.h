/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIGINT, SIGTERM and SIGHUP for the commands that hold a lock or write temp files. */
#ifndef CAIRN_INTERRUPT_H
#define CAIRN_INTERRUPT_H

#include <stdatomic.h>
#include <stdbool.h>

/* From now on SIGINT, SIGTERM and SIGHUP only set a flag that the command
 * looks at between steps (interrupt_check): it stops at the next look, its
 * error paths remove its temp files and release its lock, and it ends with
 * one line, "cairn: COMMAND interrupted", and exit status 1. A second signal
 * ends the process at once, as it did before, for a command stuck where it
 * does not look. command is a short word ("prune"), static. */
void interrupt_catch(const char *command);
/* Whether one of the signals came since interrupt_catch(). Any thread. */
bool interrupt_pending(void);
/* The flag itself, for options that take one (archiver_opts.cancel). */
const atomic_bool *interrupt_flag(void);
/* -ECANCELED with the message "COMMAND interrupted" once a signal came, else 0.
 * Any thread. */
int interrupt_check(void);
/* The command's result r; when it failed after a signal came, -ECANCELED with
 * the message "COMMAND interrupted", whatever the way out added to it. (A
 * command that finished its work before it looked again succeeded.) */
int interrupt_result(int r);
/* interrupt_check() as a callback (cairn_prune_opts.check). */
int interrupt_check_cb(void *payload);

#endif
