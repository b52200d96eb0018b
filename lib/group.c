// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The group tree: paths, create/remove/move, knobs, protection, stats and
 * the tree-level wrappers of the reclaim planner and the OOM choice.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "vmcg/oom.h"
#include "vmcg/reclaim.h"

/* ---- allocation ---- */

/* Groups and VMs embed cache-line aligned counters: calloc() does not align. */
void *vmcg_zalloc_aligned(size_t size)
{
	size_t rounded = (size + VMCG_CACHELINE - 1) & ~(size_t)(VMCG_CACHELINE - 1);
	void *p = aligned_alloc(VMCG_CACHELINE, rounded);

	if (p)
		memset(p, 0, rounded);
	return p;
}

static char *path_join(const char *parent_path, const char *name)
{
	size_t lp = strlen(parent_path), ln = strlen(name);
	bool root = lp == 1; /* "/" */
	char *p = malloc(lp + ln + 2);

	if (!p)
		return NULL;
	memcpy(p, parent_path, lp);
	if (!root)
		p[lp++] = '/';
	memcpy(p + lp, name, ln + 1);
	return p;
}

/* FNV-1a, 64 bits: names are short and come from operators, not attackers. */
static uint64_t name_hash(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static VmcgGroup *group_alloc(VmcgTree *tree, VmcgGroup *parent, const char *name, size_t name_len)
{
	VmcgGroup *g = vmcg_zalloc_aligned(sizeof(*g));

	if (!g)
		return NULL;
	g->name = strndup(name, name_len);
	g->name_len = name_len;
	g->name_hash = name_hash(name, name_len);
	g->path = parent ? path_join(parent->path, g->name ? g->name : "") : strdup("/");
	if (!g->name || !g->path) {
		free(g->name);
		free(g->path);
		free(g);
		return NULL;
	}
	g->tree = tree;
	g->parent = parent;
	g->depth = parent ? parent->depth + 1 : 0;
	g->oom_action = VMCG_OOM_NOTIFY;
	g->max_setting = VMCG_PAGES_MAX;
	g->max_cap = VMCG_PAGES_MAX;
	vmcg_counter_init(&g->counter, parent ? &parent->counter : NULL);
	for (int i = 0; i < _VMCG_EVENT_COUNT; i++) {
		atomic_init(&g->events[i], 0);
		atomic_init(&g->events_local[i], 0);
	}
	vmcg_vmpressure_init(&g->vmpressure, parent ? &parent->vmpressure : NULL);
	/* g->psi stays zero-filled: its clock starts at the first change (psi.h). */
	return g;
}

/* ---- children by name ---- */

static size_t bucket_of(const VmcgTree *tree, const VmcgGroup *parent, uint64_t hash)
{
	uint64_t h = hash ^ ((uint64_t)(uintptr_t)parent * 0x9e3779b97f4a7c15ull);

	return (size_t)(h ^ (h >> 29)) & (tree->nr_buckets - 1);
}

/* Double the buckets; on -ENOMEM keep the old ones (chains grow, lookups stay right). */
static void child_hash_grow(VmcgTree *tree)
{
	size_t n = tree->nr_buckets ? tree->nr_buckets * 2 : 64;
	VmcgGroup **old = tree->buckets, **b = calloc(n, sizeof(*b));
	size_t old_n = tree->nr_buckets;

	if (!b)
		return;
	tree->buckets = b;
	tree->nr_buckets = n;
	for (size_t i = 0; i < old_n; i++) {
		VmcgGroup *g = old[i], *next;

		for (; g; g = next) {
			size_t k = bucket_of(tree, g->parent, g->name_hash);

			next = g->hash_next;
			g->hash_next = b[k];
			b[k] = g;
		}
	}
	free(old);
}

static void child_hash_insert(VmcgTree *tree, VmcgGroup *g)
{
	size_t k;

	if (tree->nr_groups >= tree->nr_buckets)
		child_hash_grow(tree);
	if (!tree->nr_buckets)
		return; /* no memory for even the first table: find_child() walks */
	k = bucket_of(tree, g->parent, g->name_hash);
	g->hash_next = tree->buckets[k];
	tree->buckets[k] = g;
}

static void child_hash_remove(VmcgTree *tree, VmcgGroup *g)
{
	VmcgGroup **pp;

	if (!tree->nr_buckets)
		return;
	for (pp = &tree->buckets[bucket_of(tree, g->parent, g->name_hash)]; *pp;
	     pp = &(*pp)->hash_next) {
		if (*pp == g) {
			*pp = g->hash_next;
			g->hash_next = NULL;
			return;
		}
	}
}

static void group_free(VmcgGroup *g)
{
	free(g->name);
	free(g->path);
	free(g);
}

VmcgGroup *vmcg_group_common_ancestor(VmcgGroup *a, VmcgGroup *b)
{
	while (a->depth > b->depth)
		a = a->parent;
	while (b->depth > a->depth)
		b = b->parent;
	while (a != b) {
		a = a->parent;
		b = b->parent;
	}
	return a;
}

/* ---- tree ---- */

int vmcg_tree_new(const VmcgTreeOptions *opts, VmcgTree **ret)
{
	VmcgTree *t;
	uint32_t batch = opts && opts->stock_batch ? opts->stock_batch : VMCG_STOCK_BATCH_DEFAULT;

	if (batch > VMCG_STOCK_BATCH_MAX)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->recursive_protection = opts ? opts->recursive_protection : false;
	t->stock_batch = batch;
	atomic_init(&t->seq, 0);
	t->root = group_alloc(t, NULL, "", 0);
	if (!t->root) {
		free(t);
		return -ENOMEM;
	}
	t->nr_groups = 1;
	*ret = t;
	return 0;
}

void vmcg_tree_free(VmcgTree *tree)
{
	VmcgGroup *g, *next;

	if (!tree)
		return;
	while (tree->vms_head)
		vmcg_vm_free(tree->vms_head);
	/* Post-order: free children before parents. */
	g = tree->root;
	while (g) {
		if (g->children) {
			g = g->children;
			continue;
		}
		next = g->parent;
		if (next) {
			next->children = g->next_sibling;
			if (g->next_sibling)
				g->next_sibling->prev_sibling = NULL;
		}
		group_free(g);
		g = next;
	}
	free(tree->buckets);
	free(tree);
}

VmcgGroup *vmcg_tree_root(VmcgTree *tree)
{
	return tree->root;
}

bool vmcg_tree_recursive_protection(const VmcgTree *tree)
{
	return tree->recursive_protection;
}

void vmcg_tree_set_recursive_protection(VmcgTree *tree, bool on)
{
	tree->recursive_protection = on;
}

uint32_t vmcg_tree_stock_batch(const VmcgTree *tree)
{
	return tree->stock_batch;
}

int vmcg_tree_set_stock_batch(VmcgTree *tree, uint32_t batch)
{
	if (batch == 0 || batch > VMCG_STOCK_BATCH_MAX)
		return -EINVAL;
	tree->stock_batch = batch;
	return 0;
}

void vmcg_tree_set_event_fn(VmcgTree *tree, VmcgEventFn fn, void *userdata)
{
	tree->event_fn = fn;
	tree->event_userdata = userdata;
}

size_t vmcg_tree_nr_groups(const VmcgTree *tree)
{
	return tree->nr_groups;
}

size_t vmcg_tree_nr_vms(const VmcgTree *tree)
{
	return tree->nr_vms;
}

unsigned vmcg_tree_read_begin(const VmcgTree *tree)
{
	unsigned s;

	while ((s = atomic_load_explicit(&tree->seq, memory_order_acquire)) & 1)
		cpu_relax();
	return s;
}

bool vmcg_tree_read_retry(const VmcgTree *tree, unsigned seq)
{
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&tree->seq, memory_order_relaxed) != seq;
}

void vmcg_tree_write_begin(VmcgTree *tree)
{
	atomic_fetch_add(&tree->seq, 1);
}

void vmcg_tree_write_end(VmcgTree *tree)
{
	atomic_fetch_add_explicit(&tree->seq, 1, memory_order_release);
}

/* ---- paths ---- */

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/*
 * Split-free path walk: calls @fn for each component of a valid path.
 * Validates as it goes; stops at the first error.
 */
typedef int (*component_fn)(const char *name, size_t len, bool last, void *userdata);

static int path_walk(const char *path, component_fn fn, void *userdata)
{
	const char *p;
	unsigned depth = 0;

	if (!path || path[0] != '/')
		return -EINVAL;
	if (path[1] == '\0')
		return 0; /* "/" */
	p = path + 1;
	for (;;) {
		const char *end = p;
		size_t len;
		int r;

		while (*end && *end != '/') {
			if (!name_char_ok(*end))
				return -EINVAL;
			end++;
		}
		len = (size_t)(end - p);
		if (len == 0)
			return -EINVAL; /* "//" or a trailing "/" */
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return -EINVAL;
		if (len > VMCG_NAME_MAX)
			return -ENAMETOOLONG;
		if (++depth > VMCG_DEPTH_MAX)
			return -ENAMETOOLONG;
		if (fn) {
			r = fn(p, len, *end == '\0', userdata);
			if (r < 0)
				return r;
		}
		if (*end == '\0')
			return 0;
		p = end + 1;
	}
}

int vmcg_path_validate(const char *path)
{
	return path_walk(path, NULL, NULL);
}

static VmcgGroup *find_child(const VmcgGroup *g, const char *name, size_t len)
{
	const VmcgTree *tree = g->tree;
	uint64_t h = name_hash(name, len);

	if (!tree->nr_buckets) {
		for (VmcgGroup *c = g->children; c; c = c->next_sibling)
			if (c->name_len == len && memcmp(c->name, name, len) == 0)
				return c;
		return NULL;
	}
	for (VmcgGroup *c = tree->buckets[bucket_of(tree, g, h)]; c; c = c->hash_next)
		if (c->parent == g && c->name_hash == h && c->name_len == len &&
		    memcmp(c->name, name, len) == 0)
			return c;
	return NULL;
}

struct lookup_state {
	VmcgGroup *g;
	bool parent_only; /* stop before the last component */
	const char *last;
	size_t last_len;
};

static int lookup_component(const char *name, size_t len, bool last, void *userdata)
{
	struct lookup_state *s = userdata;

	if (last && s->parent_only) {
		s->last = name;
		s->last_len = len;
		return 0;
	}
	s->g = find_child(s->g, name, len);
	return s->g ? 0 : -ENOENT;
}

int vmcg_group_lookup(VmcgTree *tree, const char *path, VmcgGroup **ret)
{
	struct lookup_state s = { .g = tree->root };
	int r = path_walk(path, lookup_component, &s);

	if (r < 0)
		return r;
	*ret = s.g;
	return 0;
}

static void append_child(VmcgGroup *parent, VmcgGroup *g);

int vmcg_group_create(VmcgTree *tree, const char *path, VmcgGroup **ret)
{
	struct lookup_state s = { .g = tree->root, .parent_only = true };
	VmcgGroup *g, *parent;
	int r;

	r = path_walk(path, lookup_component, &s);
	if (r < 0)
		return r;
	if (!s.last)
		return -EEXIST; /* "/" */
	parent = s.g;
	if (find_child(parent, s.last, s.last_len))
		return -EEXIST;

	g = group_alloc(tree, parent, s.last, s.last_len);
	if (!g)
		return -ENOMEM;
	/* Append: children are listed in creation order. */
	append_child(parent, g);
	tree->nr_groups++;
	if (ret)
		*ret = g;
	return 0;
}

static void unlink_child(VmcgGroup *g)
{
	VmcgGroup *parent = g->parent;

	child_hash_remove(g->tree, g);
	if (parent->last_child == g)
		parent->last_child = g->prev_sibling;
	if (g->prev_sibling)
		g->prev_sibling->next_sibling = g->next_sibling;
	else
		parent->children = g->next_sibling;
	if (g->next_sibling)
		g->next_sibling->prev_sibling = g->prev_sibling;
	g->next_sibling = g->prev_sibling = NULL;
	parent->nr_children--;
}

static void append_child(VmcgGroup *parent, VmcgGroup *g)
{
	VmcgGroup *prev = parent->last_child;

	if (prev)
		prev->next_sibling = g;
	else
		parent->children = g;
	parent->last_child = g;
	g->prev_sibling = prev;
	g->next_sibling = NULL;
	g->parent = parent;
	parent->nr_children++;
	child_hash_insert(g->tree, g);
}

/* VMs are kept in attach order: plans and listings come out in that order. */
void vmcg_group_link_vm(VmcgGroup *group, VmcgVm *vm)
{
	vm->group = group;
	vm->group_next = NULL;
	vm->group_prev = group->vms_tail;
	if (group->vms_tail)
		group->vms_tail->group_next = vm;
	else
		group->vms = vm;
	group->vms_tail = vm;
	group->nr_vms++;
}

void vmcg_group_unlink_vm(VmcgGroup *group, VmcgVm *vm)
{
	if (vm->group_prev)
		vm->group_prev->group_next = vm->group_next;
	else
		group->vms = vm->group_next;
	if (vm->group_next)
		vm->group_next->group_prev = vm->group_prev;
	else
		group->vms_tail = vm->group_prev;
	vm->group_next = vm->group_prev = NULL;
	group->nr_vms--;
}

int vmcg_group_remove(VmcgGroup *group, unsigned flags)
{
	VmcgGroup *parent = group->parent;
	VmcgTree *tree = group->tree;

	if (!parent)
		return -EBUSY;
	if (group->children)
		return -ENOTEMPTY;
	if (group->vms && !(flags & VMCG_REMOVE_REPARENT_VMS))
		return -EBUSY;

	/*
	 * Withdraw this group's claim on its parent's protection first, as
	 * mem_cgroup_css_offline() zeroes min and low.
	 */
	vmcg_counter_set_min(&group->counter, 0);
	vmcg_counter_set_low(&group->counter, 0);

	/*
	 * Hand the VMs to the parent. Their charge is already in the parent
	 * (every walk went through it), so re-pointing is all it takes; the
	 * gate makes sure no walk is between the VM and this group's counter
	 * when it goes away.
	 */
	vmcg_tree_write_begin(tree);
	while (group->vms) {
		VmcgVm *vm = group->vms;

		vmcg_vm_gate_close(vm);
		vm->counter.parent = &parent->counter;
		vmcg_group_unlink_vm(group, vm);
		vmcg_group_link_vm(parent, vm);
		vmcg_vm_gate_open(vm);
		/* The parent's overhead setting applies from now on. */
		vmcg_vm_set_overhead(vm, vm->overhead_pages);
	}
	vmcg_tree_write_end(tree);

	unlink_child(group);
	tree->nr_groups--;
	group_free(group);
	return 0;
}

static bool is_in_subtree(const VmcgGroup *g, const VmcgGroup *root)
{
	for (; g; g = g->parent)
		if (g == root)
			return true;
	return false;
}

VmcgGroup *vmcg_group_next_descendant(const VmcgGroup *pos, const VmcgGroup *root)
{
	if (pos->children)
		return pos->children;
	while (pos != root) {
		if (pos->next_sibling)
			return pos->next_sibling;
		pos = pos->parent;
	}
	return NULL;
}

#define for_each_descendant(pos, root) \
	for ((pos) = (root); (pos); (pos) = vmcg_group_next_descendant((pos), (root)))

static int rebuild_paths(VmcgGroup *root)
{
	VmcgGroup *pos;

	for_each_descendant(pos, root) {
		char *p = path_join(pos->parent->path, pos->name);

		if (!p)
			return -ENOMEM;
		free(pos->path);
		pos->path = p;
		pos->depth = pos->parent->depth + 1;
	}
	return 0;
}

/* Transfer protected-usage contributions of @c from its old to a new parent. */
static void move_protected_usage(VmcgCounter *c, VmcgCounter *from, VmcgCounter *to)
{
	int64_t m = atomic_load(&c->min_usage), l = atomic_load(&c->low_usage);

	if (m) {
		atomic_fetch_sub(&from->children_min_usage, m);
		atomic_fetch_add(&to->children_min_usage, m);
	}
	if (l) {
		atomic_fetch_sub(&from->children_low_usage, l);
		atomic_fetch_add(&to->children_low_usage, l);
	}
}

int vmcg_group_move(VmcgGroup *group, VmcgGroup *new_parent, unsigned flags, VmcgGroup **ret_over)
{
	VmcgGroup *old_parent = group->parent, *ca, *pos;
	VmcgTree *tree = group->tree;
	unsigned max_depth = 0;
	uint64_t usage;
	int r = 0;

	if (!old_parent)
		return -EBUSY;
	if (new_parent->tree != tree)
		return -EINVAL;
	if (is_in_subtree(new_parent, group))
		return -ELOOP;
	if (new_parent == old_parent)
		return 0;
	if (find_child(new_parent, group->name, group->name_len))
		return -EEXIST;
	for_each_descendant(pos, group)
		if (pos->depth - group->depth > max_depth)
			max_depth = pos->depth - group->depth;
	if (new_parent->depth + 1 + max_depth > VMCG_DEPTH_MAX)
		return -ENAMETOOLONG;

	/* Freeze every charge walk that can reach this subtree's counters. */
	for_each_descendant(pos, group)
		for (VmcgVm *vm = pos->vms; vm; vm = vm->group_next)
			vmcg_vm_gate_close(vm);

	ca = vmcg_group_common_ancestor(old_parent, new_parent);
	usage = vmcg_counter_read(&group->counter);

	vmcg_tree_write_begin(tree);
	if (flags & VMCG_MOVE_FORCE) {
		vmcg_counter_charge_until(&new_parent->counter, &ca->counter, usage);
	} else {
		VmcgCounter *fail;

		if (!vmcg_counter_try_charge_until(&new_parent->counter, &ca->counter, usage,
						   &fail)) {
			if (ret_over)
				*ret_over = group_of_counter(fail);
			r = -ENOMEM;
			goto out;
		}
	}
	(void)vmcg_counter_uncharge_until(&old_parent->counter, &ca->counter, usage);
	move_protected_usage(&group->counter, &old_parent->counter, &new_parent->counter);
	group->counter.parent = &new_parent->counter;
	unlink_child(group);
	append_child(new_parent, group);
	/* Re-link only: listeners registered on the group stay. */
	group->vmpressure.parent = &new_parent->vmpressure;
	r = rebuild_paths(group);
out:
	vmcg_tree_write_end(tree);
	for_each_descendant(pos, group)
		for (VmcgVm *vm = pos->vms; vm; vm = vm->group_next)
			vmcg_vm_gate_open(vm);
	return r;
}

/* ---- accessors ---- */

const char *vmcg_group_path(const VmcgGroup *group)
{
	return group->path;
}

const char *vmcg_group_name(const VmcgGroup *group)
{
	return group->name;
}

VmcgTree *vmcg_group_tree(const VmcgGroup *group)
{
	return group->tree;
}

VmcgGroup *vmcg_group_parent(const VmcgGroup *group)
{
	return group->parent;
}

VmcgGroup *vmcg_group_first_child(const VmcgGroup *group)
{
	return group->children;
}

VmcgGroup *vmcg_group_next_sibling(const VmcgGroup *group)
{
	return group->next_sibling;
}

VmcgVm *vmcg_group_first_vm(const VmcgGroup *group)
{
	return group->vms;
}

size_t vmcg_group_nr_vms(const VmcgGroup *group)
{
	return group->nr_vms;
}

size_t vmcg_group_nr_children(const VmcgGroup *group)
{
	return group->nr_children;
}

void vmcg_group_set_userdata(VmcgGroup *group, void *userdata)
{
	group->userdata = userdata;
}

void *vmcg_group_get_userdata(const VmcgGroup *group)
{
	return group->userdata;
}

VmcgCounter *vmcg_group_counter(VmcgGroup *group)
{
	return &group->counter;
}

uint64_t vmcg_group_current(const VmcgGroup *group)
{
	return vmcg_counter_read(&group->counter);
}

uint64_t vmcg_group_peak(const VmcgGroup *group)
{
	return vmcg_counter_peak(&group->counter);
}

void vmcg_group_reset_peak(VmcgGroup *group)
{
	vmcg_counter_reset_peak(&group->counter);
}

uint64_t vmcg_group_min(const VmcgGroup *group)
{
	return vmcg_counter_min(&group->counter);
}

uint64_t vmcg_group_low(const VmcgGroup *group)
{
	return vmcg_counter_low(&group->counter);
}

uint64_t vmcg_group_high(const VmcgGroup *group)
{
	return vmcg_counter_high(&group->counter);
}

uint64_t vmcg_group_max(const VmcgGroup *group)
{
	return group->max_setting;
}

uint64_t vmcg_group_max_cap(const VmcgGroup *group)
{
	return group->max_cap;
}

uint64_t vmcg_group_max_effective(const VmcgGroup *group)
{
	return vmcg_counter_max(&group->counter);
}

uint64_t vmcg_group_emin(const VmcgGroup *group)
{
	return atomic_load_explicit(&group->counter.emin, memory_order_relaxed);
}

uint64_t vmcg_group_elow(const VmcgGroup *group)
{
	return atomic_load_explicit(&group->counter.elow, memory_order_relaxed);
}

/* ---- knobs ---- */

int vmcg_group_set_min(VmcgGroup *group, uint64_t nr_pages)
{
	if (!group->parent)
		return -EPERM;
	vmcg_counter_set_min(&group->counter, nr_pages);
	return 0;
}

int vmcg_group_set_low(VmcgGroup *group, uint64_t nr_pages)
{
	if (!group->parent)
		return -EPERM;
	vmcg_counter_set_low(&group->counter, nr_pages);
	return 0;
}

int vmcg_group_set_high(VmcgGroup *group, uint64_t nr_pages)
{
	if (!group->parent)
		return -EPERM;
	vmcg_counter_set_high(&group->counter, nr_pages);
	return 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* The counter enforces the lower of memory.max and its cap. */
static void apply_max(VmcgGroup *group)
{
	uint64_t old = vmcg_counter_max(&group->counter);

	vmcg_counter_set_max(&group->counter, min_u64(group->max_setting, group->max_cap));
	/*
	 * Credit cached in stocks is charged but unused: on a lower limit
	 * ask for it back, as memory_max_write() drains before reclaiming.
	 */
	if (vmcg_counter_max(&group->counter) < old)
		vmcg_group_drain_stocks(group);
}

int vmcg_group_set_max(VmcgGroup *group, uint64_t nr_pages)
{
	if (!group->parent)
		return -EPERM;
	group->max_setting = min_u64(nr_pages, VMCG_PAGES_MAX);
	apply_max(group);
	return 0;
}

int vmcg_group_set_max_cap(VmcgGroup *group, uint64_t nr_pages)
{
	if (!group->parent)
		return -EPERM;
	group->max_cap = min_u64(nr_pages, VMCG_PAGES_MAX);
	apply_max(group);
	return 0;
}

bool vmcg_group_over_high(const VmcgGroup *group)
{
	return vmcg_counter_read(&group->counter) > vmcg_counter_high(&group->counter);
}

bool vmcg_group_over_max(const VmcgGroup *group)
{
	return vmcg_counter_read(&group->counter) > vmcg_counter_max(&group->counter);
}

void vmcg_group_set_oom_group(VmcgGroup *group, bool on)
{
	group->oom_group = on;
}

bool vmcg_group_oom_group(const VmcgGroup *group)
{
	return group->oom_group;
}

int vmcg_group_set_oom_action(VmcgGroup *group, VmcgOomAction action)
{
	if ((unsigned)action >= _VMCG_OOM_ACTION_COUNT)
		return -EINVAL;
	group->oom_action = action;
	return 0;
}

VmcgOomAction vmcg_group_oom_action(const VmcgGroup *group)
{
	return group->oom_action;
}

void vmcg_group_set_overhead_counted(VmcgGroup *group, bool on)
{
	group->overhead_counted = on;
	for (VmcgVm *vm = group->vms; vm; vm = vm->group_next)
		vmcg_vm_set_overhead(vm, vm->overhead_pages);
}

bool vmcg_group_overhead_counted(const VmcgGroup *group)
{
	return group->overhead_counted;
}

VmcgVmpressure *vmcg_group_vmpressure(VmcgGroup *group)
{
	return &group->vmpressure;
}

VmcgGroup *vmcg_group_from_vmpressure(VmcgVmpressure *vmpr)
{
	return (VmcgGroup *)((char *)vmpr - offsetof(VmcgGroup, vmpressure));
}

VmcgPsi *vmcg_group_psi(VmcgGroup *group)
{
	return &group->psi;
}

int vmcg_group_psi_change(VmcgGroup *group, uint64_t now_usec, int delta_active, int delta_stalled)
{
	VmcgGroup *g;
	int r = 0;

	for (g = group; g; g = g->parent) {
		r = vmcg_psi_change(&g->psi, now_usec, delta_active, delta_stalled);
		if (r < 0)
			break;
	}
	if (r == 0)
		return 0;
	/* Undo the levels below the one that refused, at the same instant. */
	for (VmcgGroup *u = group; u != g; u = u->parent)
		(void)vmcg_psi_change(&u->psi, now_usec, -delta_active, -delta_stalled);
	return r;
}

void vmcg_group_psi_update(VmcgGroup *group, uint64_t now_usec)
{
	VmcgGroup *pos;

	for_each_descendant(pos, group)
		vmcg_psi_update(&pos->psi, now_usec);
}

uint64_t vmcg_group_stat(const VmcgGroup *group, VmcgStat item)
{
	const VmcgGroup *pos;
	uint64_t sum = 0;

	for_each_descendant(pos, group)
		for (VmcgVm *vm = pos->vms; vm; vm = vm->group_next)
			sum += vmcg_vm_stat(vm, item);
	return sum;
}

void vmcg_group_drain_stocks(VmcgGroup *group)
{
	VmcgGroup *pos;

	for_each_descendant(pos, group)
		for (VmcgVm *vm = pos->vms; vm; vm = vm->group_next)
			vmcg_vm_drain_stocks(vm);
}

/* ---- protection, reclaim, OOM ---- */

void vmcg_tree_calculate_protection(VmcgGroup *root)
{
	bool recursive = root->tree->recursive_protection;
	VmcgGroup *pos;

	for_each_descendant(pos, root) {
		vmcg_counter_calculate_protection(&root->counter, &pos->counter, recursive);
		for (VmcgVm *vm = pos->vms; vm; vm = vm->group_next)
			vmcg_counter_calculate_protection(&root->counter, &vm->counter, true);
	}
}

static size_t count_vms(const VmcgGroup *root)
{
	const VmcgGroup *pos;
	size_t n = 0;

	for_each_descendant(pos, root)
		n += pos->nr_vms;
	return n;
}

int vmcg_group_plan_reclaim(VmcgGroup *group, uint64_t nr_pages, VmcgReclaimItem **ret_items,
			    size_t *ret_n, VmcgReclaimSummary *ret_summary)
{
	size_t n = count_vms(group), i = 0, k = 0;
	VmcgReclaimTarget *targets = NULL;
	VmcgReclaimResult *results = NULL;
	VmcgReclaimItem *items = NULL;
	VmcgVm **vms = NULL;
	VmcgGroup *pos;
	int r = -ENOMEM;

	*ret_items = NULL;
	*ret_n = 0;
	vmcg_tree_calculate_protection(group);

	if (n) {
		targets = calloc(n, sizeof(*targets));
		results = calloc(n, sizeof(*results));
		vms = calloc(n, sizeof(*vms));
		if (!targets || !results || !vms)
			goto out;
	}
	for_each_descendant(pos, group) {
		for (VmcgVm *vm = pos->vms; vm; vm = vm->group_next, i++) {
			vms[i] = vm;
			targets[i] = (VmcgReclaimTarget){
				.usage_pages = vmcg_vm_current(vm),
				.emin_pages = vmcg_vm_emin(vm),
				.elow_pages = vmcg_vm_elow(vm),
				.floor_pages = vm->floor_pages,
			};
		}
	}
	r = vmcg_reclaim_plan(targets, n, nr_pages, results, ret_summary);
	if (r < 0)
		goto out;

	for (i = 0; i < n; i++)
		k += results[i].take_pages > 0;
	if (k) {
		items = calloc(k, sizeof(*items));
		if (!items) {
			r = -ENOMEM;
			goto out;
		}
	}
	k = 0;
	for (i = 0; i < n; i++) {
		if (!results[i].take_pages)
			continue;
		items[k++] = (VmcgReclaimItem){
			.vm = vms[i],
			.take_pages = results[i].take_pages,
			.low_breached = results[i].low_breached,
		};
	}
	/*
	 * One low event per group per plan, however many of its VMs pay.
	 * The items follow the pre-order walk above, group by group, so the
	 * VMs of a group are adjacent: comparing with the last group counted
	 * is enough (the scan of every earlier item was O(k^2)).
	 */
	{
		VmcgGroup *last = NULL;

		for (i = 0; i < k; i++) {
			if (!items[i].low_breached || items[i].vm->group == last)
				continue;
			last = items[i].vm->group;
			vmcg_group_event(last, VMCG_EVENT_LOW);
		}
	}
	*ret_items = items;
	*ret_n = k;
	items = NULL;
	r = 0;
out:
	free(items);
	free(targets);
	free(results);
	free(vms);
	return r;
}

int vmcg_group_oom_select(VmcgGroup *group, VmcgVm ***ret_vms, size_t *ret_n)
{
	size_t n = count_vms(group), i = 0, victim_index;
	VmcgOomCandidate *cand = NULL;
	VmcgVm **vms = NULL, **out = NULL, *victim;
	VmcgGroup *pos, *oom_group = NULL;
	uint64_t total;
	int r = -ENOMEM;

	*ret_vms = NULL;
	*ret_n = 0;
	if (!n)
		return -ESRCH;
	vmcg_tree_calculate_protection(group);

	cand = calloc(n, sizeof(*cand));
	vms = calloc(n, sizeof(*vms));
	if (!cand || !vms)
		goto out;
	for_each_descendant(pos, group) {
		for (VmcgVm *vm = pos->vms; vm; vm = vm->group_next, i++) {
			uint64_t emin = vmcg_vm_emin(vm), elow = vmcg_vm_elow(vm);

			vms[i] = vm;
			cand[i] = (VmcgOomCandidate){
				.usage_pages = vmcg_vm_current(vm),
				.protection_pages = emin > elow ? emin : elow,
				.priority = vm->oom_priority,
				.eligible = vm->oom_eligible,
			};
		}
	}
	/* totalpages of a memcg OOM is its limit; unlimited: what it uses. */
	total = vmcg_group_max_effective(group);
	if (total >= VMCG_PAGES_MAX)
		total = vmcg_group_current(group);
	r = vmcg_oom_select(cand, n, total, &victim_index);
	if (r < 0)
		goto out;
	victim = vms[victim_index];

	/* mem_cgroup_get_oom_group(): the highest oom.group ancestor in the domain. */
	for (VmcgGroup *g = victim->group; g; g = g->parent) {
		if (g->oom_group)
			oom_group = g;
		if (g == group)
			break;
	}

	r = -ENOMEM;
	out = calloc(oom_group ? n : 1, sizeof(*out));
	if (!out)
		goto out;
	if (!oom_group) {
		out[0] = victim;
		*ret_n = 1;
	} else {
		size_t k = 0;

		for (i = 0; i < n; i++)
			if (vms[i]->oom_eligible && is_in_subtree(vms[i]->group, oom_group))
				out[k++] = vms[i];
		*ret_n = k;
	}
	*ret_vms = out;
	r = 0;
out:
	free(cand);
	free(vms);
	return r;
}
