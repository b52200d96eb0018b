/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Building scenario trees in the engine's unit tests. */
#ifndef VMCG_TEST_TREE_H
#define VMCG_TEST_TREE_H

#include <glib.h>

#include "vmcg/group.h"

/* Create the group at @path (its parent must exist); the test fails otherwise. */
static inline VmcgGroup *mk(VmcgTree *t, const char *path)
{
	VmcgGroup *g;

	g_assert_cmpint(vmcg_group_create(t, path, &g), ==, 0);
	g_assert_cmpstr(vmcg_group_path(g), ==, path);
	return g;
}

/* A VM named @name in @g with @pages charged (forcibly). */
static inline VmcgVm *vm_in(VmcgGroup *g, const char *name, uint64_t pages)
{
	VmcgVm *vm;

	g_assert_cmpint(vmcg_vm_new(g, name, &vm), ==, 0);
	vmcg_vm_charge(vm, pages);
	return vm;
}

#endif
