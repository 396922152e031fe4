/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The scan that lets a mount without xattrs say ENOSYS. */
#include "xscan.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define RECHECK_S 10 /* how often the scan looks for new snapshots */
#define SCAN_NICE 10 /* the scan yields the CPU to the requests */
#define SCANNED 1    /* value of a snapshot or tree in the scan's sets */

struct fs_xscan {
	struct fs_cache *tree_cache; /* the mount's */
	struct fs_snapview *snapview;
	bool always;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;                 /* protected by lock */
	_Atomic uint64_t none_gen; /* a view generation known to hold no xattr; 0: none */
	atomic_bool some;          /* a snapshot holds one: the scan is over */
	atomic_bool told;          /* ENOSYS was sent: the kernel asks no more */
	/* The scan thread's own: */
	struct cairn_idset snaps; /* snapshots walked to the end */
	struct cairn_idset trees; /* trees walked */
	struct cairn_id *stack;   /* trees still to walk */
	size_t nstack, capstack;
};

static bool stopping(struct fs_xscan *x)
{
	pthread_mutex_lock(&x->lock);
	bool s = x->stop;
	pthread_mutex_unlock(&x->lock);
	return s;
}

static int push(struct fs_xscan *x, const struct cairn_id *id)
{
	if (x->nstack == x->capstack) {
		size_t cap = x->capstack ? 2 * x->capstack : 256;
		struct cairn_id *p = realloc(x->stack, cap * sizeof(*p));
		if (!p)
			return cairn_err_set(-ENOMEM, "out of memory");
		x->stack = p;
		x->capstack = cap;
	}
	x->stack[x->nstack++] = *id;
	return 0;
}

/* One tree: 1 if an entry has an xattr, else its subdirectories pushed. */
static int scan_tree(struct fs_xscan *x, const struct cairn_id *id)
{
	struct fs_cache_ent *t;
	int r = fs_cache_get(x->tree_cache, id, &t);
	if (r < 0)
		return r;
	const cairn_tree *tree = fs_cache_val(t);
	for (size_t i = 0; r == 0 && i < cairn_tree_count(tree); i++) {
		const struct cairn_node *cn = cairn_tree_node(tree, i);
		if (cn->nxattrs > 0)
			r = 1;
		else if (cn->type == CAIRN_NODE_DIR && !cairn_idset_has(&x->trees, &cn->subtree))
			r = push(x, &cn->subtree);
	}
	fs_cache_put(x->tree_cache, t);
	if (r != 0)
		return r;
	return cairn_idset_add(&x->trees, id, SCANNED) < 0 ? -ENOMEM : 0;
}

/* Every tree of one snapshot not walked before: 1 (an xattr), 0, -errno. */
static int scan_snapshot(struct fs_xscan *x, const struct fs_snap *s)
{
	int r = 0;
	x->nstack = 0;
	if (!cairn_idset_has(&x->trees, &s->root))
		r = push(x, &s->root);
	while (r == 0 && x->nstack > 0) {
		struct cairn_id id = x->stack[--x->nstack];
		if (cairn_idset_has(&x->trees, &id))
			continue;
		r = stopping(x) ? -ECANCELED : scan_tree(x, &id);
	}
	if (r == 0)
		r = cairn_idset_add(&x->snaps, &s->id, SCANNED) < 0 ? -ENOMEM : 0;
	return r;
}

/* The snapshots of the current view not walked before. The view is taken as it
 * is: requests rescan the repository when it is due, the scan never does. */
static int scan_view(struct fs_xscan *x)
{
	struct fs_view *v = fs_snapview_peek(x->snapview);
	int r = 0;
	for (size_t i = 0; r == 0 && i < v->n; i++)
		if (!cairn_idset_has(&x->snaps, &v->v[i].snap->id))
			r = scan_snapshot(x, v->v[i].snap);
	if (r == 0)
		atomic_store(&x->none_gen, v->gen);
	fs_view_put(v);
	return r;
}

static void *scanner(void *arg)
{
	struct fs_xscan *x = arg;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), SCAN_NICE) < 0)
		log_debug("xattr scan: cannot lower its priority");
	for (;;) {
		int r = scan_view(x);
		if (r == 1) {
			atomic_store(&x->some, true);
			if (atomic_load(&x->told))
				log_warn("a new snapshot has extended attributes or ACLs, which "
				         "this "
				         "mount no longer shows: remount to see them");
			else
				log_debug("xattr scan: a snapshot has xattrs; they are served");
			break;
		}
		if (r < 0 && r != -ECANCELED)
			log_debug("xattr scan: %s; trying again later", cairn_err_msg());
		if (r == 0)
			log_debug("xattr scan: no snapshot has xattrs");
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += RECHECK_S;
		pthread_mutex_lock(&x->lock);
		if (!x->stop)
			pthread_cond_timedwait(&x->wake, &x->lock, &until);
		bool stop = x->stop;
		pthread_mutex_unlock(&x->lock);
		if (stop)
			break;
	}
	/* The sets are the scan's: gone with it (the mount keeps nothing). */
	cairn_idset_release(&x->trees);
	cairn_idset_release(&x->snaps);
	free(x->stack);
	x->stack = NULL;
	return NULL;
}

int fs_xscan_new(struct fs_xscan **out, struct fs_cache *tree_cache, struct fs_snapview *snapview,
                 bool always)
{
	struct fs_xscan *x = calloc(1, sizeof(*x));
	if (!x)
		return cairn_err_set(-ENOMEM, "out of memory");
	x->tree_cache = tree_cache;
	x->snapview = snapview;
	x->always = always;
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->wake, NULL);
	cairn_idset_init(&x->snaps);
	cairn_idset_init(&x->trees);
	if (!always) {
		int r = pthread_create(&x->thread, NULL, scanner, x);
		if (r != 0) {
			fs_xscan_free(x);
			return cairn_err_set(-r, "cannot start the xattr scan: %s", strerror(r));
		}
		x->started = true;
	}
	*out = x;
	return 0;
}

void fs_xscan_free(struct fs_xscan *x)
{
	if (!x)
		return;
	if (x->started) {
		pthread_mutex_lock(&x->lock);
		x->stop = true;
		pthread_cond_signal(&x->wake);
		pthread_mutex_unlock(&x->lock);
		pthread_join(x->thread, NULL);
	} else {
		cairn_idset_release(&x->trees);
		cairn_idset_release(&x->snaps);
	}
	pthread_cond_destroy(&x->wake);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

bool fs_xscan_none(struct fs_xscan *x)
{
	return !x->always && !atomic_load(&x->some) && atomic_load(&x->none_gen) != 0;
}

bool fs_xscan_enosys(struct fs_xscan *x)
{
	if (atomic_load(&x->told))
		return true;
	uint64_t none = atomic_load(&x->none_gen);
	if (x->always || none == 0 || atomic_load(&x->some))
		return false;
	struct fs_view *v = fs_snapview_peek(x->snapview);
	bool same = v->gen == none;
	fs_view_put(v);
	if (!same) {
		pthread_mutex_lock(&x->lock);
		pthread_cond_signal(&x->wake);
		pthread_mutex_unlock(&x->lock);
		return false;
	}
	if (!atomic_exchange(&x->told, true))
		log_debug("no snapshot has xattrs: the kernel stops asking for them");
	return true;
}
