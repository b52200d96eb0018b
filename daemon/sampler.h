/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Sampling charge: how much of a QEMU's guest RAM is resident on the host.
 *
 * Where guest RAM is: QEMU maps each RAMBlock as one private anonymous
 * region of exactly the block's size (qemu_ram_mmap()) and madvises the
 * whole region MADV_DONTFORK, so that a fork (e.g. for a migration helper)
 * does not copy guest memory (ram_block_add(): QEMU_MADV_DONTFORK). In
 * /proc/PID/smaps that is a run of anonymous VMAs with the "dc" VmFlag whose
 * sizes add up to the block's size; nothing else QEMU maps carries "dc"
 * except the other, small RAMBlocks (firmware, option ROMs, ACPI tables).
 * The size of the main block comes from QMP query-memdev (the "pc.ram" or
 * "ram" backend, the sum of all memdevs for NUMA guests). The resident
 * charge is the sum of Rss over those VMAs: pages the guest never touched,
 * ballooned out or reported free (MADV_DONTNEED) are not in it.
 *
 * Why not QEMU's own view: x-query-ramblock in QEMU 7.2 prints no host
 * address, and the guest's own numbers are hints, never trusted for
 * charging. Why not pagemap: Rss per VMA is exact for private anonymous
 * memory and costs one pass over smaps (about 300 VMAs for a TCG QEMU).
 *
 * Memory-backed by memfd or hugetlbfs files (libvirt's memoryBacking) maps
 * a file, not anonymous memory: such VMAs are accepted when their path is
 * "/memfd:..." or on hugetlbfs ("ht" VmFlag) and still carry "dc".
 */
#ifndef VMCG_SAMPLER_H
#define VMCG_SAMPLER_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct VmcgSample {
	uint64_t guest_resident; /* bytes of guest RAM resident */
	uint64_t guest_size;	 /* bytes of the VMAs counted as guest RAM */
	uint64_t total_rss;	 /* bytes resident in the whole process */
} VmcgSample;

/**
 * vmcg_sample_parse_smaps() - find guest RAM of @ram_size bytes in the
 * smaps text @text and measure it.
 * Returns TRUE, or FALSE with a G_IO_ERROR_INVALID_DATA error if the text is
 * not smaps, or G_IO_ERROR_NOT_FOUND if no run of guest-RAM VMAs of that
 * size exists (e.g. hugepage or file backing we do not recognise).
 */
gboolean vmcg_sample_parse_smaps(const char *text, gsize len, uint64_t ram_size, VmcgSample *ret,
				 GError **error);

/** vmcg_sample_read() - vmcg_sample_parse_smaps() on /proc/@pid/smaps. */
gboolean vmcg_sample_read(pid_t pid, uint64_t ram_size, VmcgSample *ret, GError **error);

/*
 * The cheap signal between full samples: the kernel's per-mm counters
 * from /proc/PID/status, O(1) where smaps walks every page table (3-13 ms
 * for a 512 MiB guest, docs/performance.md). Guest RAM is private
 * anonymous memory, so its changes show in RssAnon.
 */
typedef struct VmcgStatusSample {
	uint64_t rss_anon; /* bytes */
	uint64_t rss;	   /* VmRSS, bytes */
} VmcgStatusSample;

/** vmcg_status_parse() - RssAnon and VmRSS from status text; G_IO_ERROR_INVALID_DATA if missing. */
gboolean vmcg_status_parse(const char *text, gsize len, VmcgStatusSample *ret, GError **error);
gboolean vmcg_status_read(pid_t pid, VmcgStatusSample *ret, GError **error);

/*
 * One VM's read, as one request: smaps and status when @full, else status
 * alone, and smaps too if RssAnon moved by more than @drift_bytes from
 * @cal_anon (the calibration of charge-sampling.c). Pure data in and
 * out, so that it can run on the sampler thread.
 */
typedef struct VmcgSampleReq {
	/* in */
	pid_t pid;
	uint64_t ram_size;
	gboolean full;
	uint64_t cal_anon;
	uint64_t drift_bytes;
	/* out */
	gboolean ok;
	gboolean read_smaps; /* ->smp is valid: a full sample */
	VmcgSample smp;
	VmcgStatusSample st;
	GError *error; /* if !ok; the consumer frees it */
	/* the sampler's */
	gint cancelled; /* g_atomic_int: set by the owner, the read is skipped */
	void (*done)(struct VmcgSampleReq *req, gpointer userdata);
	gpointer userdata;
} VmcgSampleReq;

/** vmcg_sample_req_read() - do @req's reads now, on the calling thread; returns ->ok. */
gboolean vmcg_sample_req_read(VmcgSampleReq *req);

/*
 * The sampler thread(s): /proc reads off the main loop. A smaps read
 * walks the page tables of the whole process (3 - 13 ms for a 512 MiB
 * guest, docs/performance.md); 1000 of them on the main loop stall the
 * API for seconds. Requests go to the sampler's queue and its reader
 * threads; each result comes back
 * to the main context the sampler was created in, where @done runs. The
 * owner of a request may mark it cancelled (g_atomic_int_set(&req->
 * cancelled, 1)) at any time: a queued read is then skipped, but @done
 * still runs, exactly once, and is where the owner frees the request.
 */
typedef struct VmcgSampler VmcgSampler;
typedef void (*VmcgSampleDone)(VmcgSampleReq *req, gpointer userdata);

/** A sampler of @threads threads (1 or more) delivering to the thread-default context. */
VmcgSampler *vmcg_sampler_new(unsigned threads);
/**
 * vmcg_sampler_free() - wait for the reads in progress (cancel queued ones
 * first if their owners are gone), then run @done for every result not yet
 * delivered, on the calling thread (NULL ok).
 */
void vmcg_sampler_free(VmcgSampler *s);
/** Queue @req; @done(@req, @userdata) runs in the sampler's context once it is read. */
void vmcg_sampler_submit(VmcgSampler *s, VmcgSampleReq *req, VmcgSampleDone done,
			 gpointer userdata);
/**
 * vmcg_sampler_submit_batch() - queue @n requests under one lock and one
 * wakeup; each one's ->done and ->userdata must be set.
 */
void vmcg_sampler_submit_batch(VmcgSampler *s, VmcgSampleReq **reqs, size_t n);
/** Requests queued or being read (any thread; a hint). */
unsigned vmcg_sampler_pending(VmcgSampler *s);

#endif
