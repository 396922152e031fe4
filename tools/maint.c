/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the maintenance commands: locks, recovery, the prune report, tree paths. */
#include "maint.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "interrupt.h"

int maint_parse_wait(const char *arg, unsigned *out)
{
	long v;
	int r = cli_parse_int(arg, 0, 7 * 24 * 3600, &v);
	if (r >= 0)
		*out = (unsigned)v;
	return r;
}

void maint_short_id(char out[9], const struct cairn_id *id)
{
	cairn_hex(out, id->b, 4);
}

int maint_snapshot_damaged(const struct cairn_snapshot *s, int r)
{
	char id[9];
	if (r != -EBADMSG && r != -ENOENT && r != -EKEYREJECTED && r != -ELOOP)
		return 0;
	maint_short_id(id, &s->id);
	log_error("snapshot %s: %s", id, cairn_err_msg());
	return 1;
}

int maint_damaged_result(size_t n)
{
	if (n == 0)
		return 0;
	return cairn_err_set(-EBADMSG, "%zu %s could not be read (see above)", n,
	                     cli_plural(n, "snapshot", "snapshots"));
}

void maint_recover(cairn_repo *repo, const cairn_lock *own)
{
	struct cairn_recover_stats st;
	if (cairn_repo_recover(repo, own, &st) < 0) {
		log_warn("cannot tidy up after an interrupted run: %s", cairn_err_msg());
		return;
	}
	if (st.packs_indexed)
		log_info("indexed %d %s left by an interrupted run", st.packs_indexed,
		         cli_plural((uint64_t)st.packs_indexed, "pack", "packs"));
	if (st.temps_removed)
		log_info("removed %d %s from tmp/", st.temps_removed,
		         cli_plural((uint64_t)st.temps_removed,
		                    "unfinished file of an interrupted run",
		                    "unfinished files of interrupted runs"));
}

/* ---- prune -------------------------------------------------------------- */

void maint_test_point(const char *step)
{
	const char *crash = getenv("CAIRN_TEST_CRASH_POINT");
	const char *stop = getenv("CAIRN_TEST_STOP_POINT");
	/* Die like kill -9 would, with no cleanup of any kind; or stop until
	 * SIGCONT, for another process to act at that moment. */
	if (crash && strcmp(crash, step) == 0)
		raise(SIGKILL);
	if (stop && strcmp(stop, step) == 0)
		raise(SIGSTOP);
}

static void on_step(const char *step, void *payload)
{
	(void)payload;
	log_debug("prune: %s", step);
	maint_test_point(step);
}

static void report_json(const struct cairn_prune_stats *s, bool dry_run)
{
	printf("{\"message_type\":\"summary\",\"command\":\"prune\",\"dry_run\":%s,"
	       "\"snapshots\":%llu,\"trees\":%llu,"
	       "\"blobs_used\":%llu,\"blobs_unused\":%llu,\"packs\":%llu,\"packs_kept\":%llu,"
	       "\"packs_deleted\":%llu,\"packs_repacked\":%llu,\"packs_written\":%llu,"
	       "\"bytes_total\":%llu,\"bytes_unused\":%llu,\"bytes_repacked\":%llu,"
	       "\"bytes_written\":%llu,\"bytes_freed\":%llu,\"bytes_left_unused\":%llu,"
	       "\"packs_pending\":%llu,\"bytes_pending\":%llu,\"packs_finished\":%llu,"
	       "\"bytes_finished\":%llu}\n",
	       dry_run ? "true" : "false", (unsigned long long)s->snapshots,
	       (unsigned long long)s->trees, (unsigned long long)s->blobs_used,
	       (unsigned long long)s->blobs_unused, (unsigned long long)s->packs,
	       (unsigned long long)s->packs_kept, (unsigned long long)s->packs_deleted,
	       (unsigned long long)s->packs_repacked, (unsigned long long)s->packs_written,
	       (unsigned long long)s->bytes_total, (unsigned long long)s->bytes_unused,
	       (unsigned long long)s->bytes_repacked, (unsigned long long)s->bytes_written,
	       (unsigned long long)s->bytes_freed, (unsigned long long)s->bytes_left_unused,
	       (unsigned long long)s->packs_pending, (unsigned long long)s->bytes_pending,
	       (unsigned long long)s->packs_finished, (unsigned long long)s->bytes_finished);
}

static void report_text(const struct cairn_prune_stats *s, bool dry_run)
{
	char total[32], unused[32], freed[32], left[32];

	printf("%llu %s %llu %s (%llu %s); %llu %s unused\n", (unsigned long long)s->snapshots,
	       cli_plural(s->snapshots, "snapshot uses", "snapshots use"),
	       (unsigned long long)s->blobs_used, cli_plural(s->blobs_used, "blob", "blobs"),
	       (unsigned long long)s->trees, cli_plural(s->trees, "tree", "trees"),
	       (unsigned long long)s->blobs_unused,
	       cli_plural(s->blobs_unused, "blob is", "blobs are"));
	printf("packs: %llu (%s, %s unused): ", (unsigned long long)s->packs,
	       cli_fmt_bytes(total, sizeof(total), s->bytes_total),
	       cli_fmt_bytes(unused, sizeof(unused), s->bytes_unused));
	if (dry_run)
		printf("%llu to delete, %llu to repack, %llu to keep\n",
		       (unsigned long long)s->packs_deleted, (unsigned long long)s->packs_repacked,
		       (unsigned long long)s->packs_kept);
	else
		printf("%llu deleted, %llu repacked into %llu new, %llu kept\n",
		       (unsigned long long)s->packs_deleted, (unsigned long long)s->packs_repacked,
		       (unsigned long long)s->packs_written, (unsigned long long)s->packs_kept);
	if (s->packs_finished)
		printf("deleted %llu %s (%s) an earlier prune set aside\n",
		       (unsigned long long)s->packs_finished,
		       cli_plural(s->packs_finished, "pack", "packs"),
		       cli_fmt_bytes(total, sizeof(total), s->bytes_finished));
	if (s->index_files_replaced)
		printf("removed %llu index %s that an earlier prune had replaced (a listing had "
		       "left %s out)\n",
		       (unsigned long long)s->index_files_replaced,
		       cli_plural(s->index_files_replaced, "file", "files"),
		       s->index_files_replaced == 1 ? "it" : "them");
	if (s->uploads_aborted)
		printf("aborted %llu abandoned %s of packs\n",
		       (unsigned long long)s->uploads_aborted,
		       cli_plural(s->uploads_aborted, "upload", "uploads"));
	if (s->packs_pending)
		printf("%llu %s (%s) wait for the backups running now to end; the next prune "
		       "deletes them\n",
		       (unsigned long long)s->packs_pending,
		       cli_plural(s->packs_pending, "pack", "packs"),
		       cli_fmt_bytes(unused, sizeof(unused), s->bytes_pending));
	printf("%s %s; %s unused left in kept packs%s\n",
	       dry_run ? "would reclaim about" : "reclaimed",
	       cli_fmt_bytes(freed, sizeof(freed), s->bytes_freed),
	       cli_fmt_bytes(left, sizeof(left), s->bytes_left_unused),
	       dry_run ? " (dry run: nothing was changed)" : "");
}

int maint_prune(cairn_repo *repo, const struct maint_prune_opts *o)
{
	struct cairn_prune_opts po = {
		.version = CAIRN_PRUNE_OPTS_VERSION,
		.max_unused = o->max_unused,
		.dry_run = o->dry_run,
		.lock = o->lock,
		.on_step = on_step,
		.check = interrupt_check_cb,
	};
	struct cairn_prune_stats st;
	/* A prune writes too: the packs a killed run left on this cache (a
	 * prune's first copies, say) are named, or no other cache learns them. */
	if (!o->dry_run && o->lock)
		maint_recover(repo, o->lock);
	int r = cairn_repo_prune(repo, &po, &st);

	if (r < 0)
		return r;
	if (o->json)
		report_json(&st, o->dry_run);
	else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		report_text(&st, o->dry_run);
	return 0;
}

/* ---- paths -------------------------------------------------------------- */

int maint_path_push(struct maint_path *p, const uint8_t *name, size_t len, size_t *mark)
{
	*mark = p->b.len;
	if (cairn_buf_put_u8(&p->b, '/') < 0 || cairn_buf_put(&p->b, name, len) < 0 ||
	    cairn_buf_reserve(&p->b, 1) < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	p->b.data[p->b.len] = '\0';
	return 0;
}

void maint_path_pop(struct maint_path *p, size_t mark)
{
	p->b.len = mark;
	if (p->b.data)
		p->b.data[mark] = '\0';
}

const char *maint_path_str(const struct maint_path *p, size_t *len)
{
	if (p->b.len == 0) {
		*len = 1;
		return "/";
	}
	*len = p->b.len;
	return (const char *)p->b.data;
}
