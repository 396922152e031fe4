/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIGINT, SIGTERM and SIGHUP: a flag the commands look at, so that they stop cleanly. */
#include "interrupt.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>

#include "cairn/util.h"

static atomic_bool caught;
static const char *interrupted_command = "command";

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&caught, true);
}

void interrupt_catch(const char *command)
{
	/* SA_RESETHAND: the second signal takes its default course. SA_RESTART:
	 * a read or write under way goes on, and the command stops after it. */
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND | SA_RESTART };
	interrupted_command = command;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

bool interrupt_pending(void)
{
	return atomic_load(&caught);
}

const atomic_bool *interrupt_flag(void)
{
	return &caught;
}

int interrupt_check(void)
{
	if (!atomic_load(&caught))
		return 0;
	return cairn_err_set(-ECANCELED, "%s interrupted", interrupted_command);
}

int interrupt_result(int r)
{
	return r < 0 && atomic_load(&caught) ? interrupt_check() : r;
}

int interrupt_check_cb(void *payload)
{
	(void)payload;
	return interrupt_check();
}
