/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A libvirt domain's XML, as virDomainGetXMLDesc() returns it (live or
 * inactive), read into a plain struct for vmcgd's libvirt backend: the pure
 * half. No I/O, no main loop, no logging; GLib's GMarkup parser, no libxml2.
 *
 * The XML is hostile input: the domain's <metadata> is writable by whoever
 * may call virDomainSetMetadata(), a tenant included. Every size is bounded
 * (the VMCG_DOMAIN_XML_* limits below), nothing is an assert, and every
 * refusal is a one-line message.
 *
 * Two kinds of trouble, kept apart:
 * - The domain XML itself is unusable (not well-formed, too large, too
 *   deep, no <name>, no valid <uuid>, a bad <memory>): the parse fails.
 * - vmcg's own metadata element is wrong: the parse succeeds, each problem
 *   is a message in ->problems, and the metadata is dropped as a whole
 *   (has_meta false, meta zero), so that the daemon falls back to its
 *   defaults rather than half-applying a tenant's mistake.
 *
 * Only elements at their documented place count (<memory> directly under
 * <domain>, <memballoon> under <domain><devices>, ...); everything else in
 * the hundreds of elements libvirt knows is skipped without a look.
 * Namespaces are resolved as XML Namespaces 1.0 says (GMarkup does not):
 * libvirt's own elements are those in no namespace; vmcg's element is the
 * <domain><metadata> child named "vm" in VMCG_LIBVIRT_NS, whatever its
 * prefix, or unprefixed under xmlns="urn:vmcg:domain:1":
 *
 *   <metadata>
 *     <vmcg:vm xmlns:vmcg="urn:vmcg:domain:1">
 *       <vmcg:group>/tenants/acme/web</vmcg:group>
 *       <vmcg:floor>256M</vmcg:floor>
 *       <vmcg:oom-priority>0</vmcg:oom-priority>
 *       <vmcg:memory.high>8G</vmcg:memory.high>
 *     </vmcg:vm>
 *   </metadata>
 *
 * All of its children are optional; each appears at most once, has no
 * attributes and no children, and holds text (trimmed of leading and
 * trailing whitespace) of at most VMCG_DOMAIN_XML_TEXT_MAX bytes.
 */
#ifndef VMCG_DAEMON_LIBVIRT_XML_H
#define VMCG_DAEMON_LIBVIRT_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

/* vmcg's namespace in a domain's <metadata> (virDomainSetMetadata()'s uri). */
#define VMCG_LIBVIRT_NS "urn:vmcg:domain:1"

/* The virtio-serial port name of the guest pressure channel (docs/guest-channel.md). */
#define VMCG_CHANNEL_PORT_NAME "org.vmcg.pressure.0"

/*
 * 4 MiB: the most virDomainGetXMLDesc() can return over libvirt's remote
 * protocol (REMOTE_STRING_MAX, src/remote/remote_protocol.x). A domain with
 * hundreds of devices is well below 1 MiB.
 */
#define VMCG_DOMAIN_XML_MAX_BYTES (UINT32_C(4) << 20)

/*
 * 64 levels of elements: libvirt's deepest own elements are about 7 deep
 * (<domain><cpu><numa><cell><distances><sibling>); the rest is room for
 * other programs' metadata. Deeper, the parse fails.
 */
#define VMCG_DOMAIN_XML_DEPTH_MAX 64

/*
 * 4096 bytes (PATH_MAX): the most text of one value element vmcgd reads
 * (<name>, <uuid>, <memory>, ..., each vmcg value) and of the channel's
 * source path. A group path is at most 16 names of 64 bytes.
 */
#define VMCG_DOMAIN_XML_TEXT_MAX 4096

/* 32: four times the elements vmcg:vm knows, so a newer vmcg's extras fit the limit. */
#define VMCG_DOMAIN_XML_META_CHILDREN_MAX 32

/*
 * 16 problems are listed, then one line saying that more were found: the
 * daemon logs them, and a tenant's metadata must not flood the log.
 */
#define VMCG_DOMAIN_XML_PROBLEMS_MAX 16

typedef struct VmcgDomainMeta { /* vmcg's own <metadata> element, all optional */
	/* <vmcg:group>: a group path, as vmcg_path_validate() accepts it; NULL if absent */
	char *group;
	/* <vmcg:floor>: a size; "max" (UINT64_MAX) is never balloon it, as the API's floor */
	bool has_floor;
	uint64_t floor; /* bytes, at most the domain's <memory>, or UINT64_MAX */
	/* <vmcg:oom-priority>: an integer in [VMCG_OOM_PRIORITY_MIN, VMCG_OOM_PRIORITY_MAX] */
	bool has_oom_priority;
	int32_t oom_priority;
	/*
	 * The knobs of the VM's group, so that one XML can carry a tenant:
	 * <vmcg:memory.min>, <vmcg:memory.low>, <vmcg:memory.high>,
	 * <vmcg:memory.max>; each a size or "max" (UINT64_MAX, daemon.h's
	 * VMCG_BYTES_MAX). Those present are in order: min <= low <= high <= max.
	 */
	bool has_min, has_low, has_high, has_max;
	uint64_t min, low, high, max; /* bytes */
} VmcgDomainMeta;

typedef struct VmcgDomainXml {
	char *name;	 /* <name>, exactly as written (not empty) */
	char uuid[37];	 /* <uuid>, canonical lowercase 8-4-4-4-12 */
	int64_t id;	 /* <domain id='N'> of a running domain, -1 if absent */
	uint64_t memory; /* <memory> in bytes (> 0, at most VMCG_SIZE_LIMIT) */
	/* <currentMemory> in bytes, at most memory; = memory if absent */
	uint64_t current_memory;
	uint64_t min_guarantee; /* <memtune><min_guarantee> in bytes; 0 if absent */
	bool has_balloon;	/* a <devices><memballoon> whose model is not 'none' */
	bool hugepages;		/* <memoryBacking><hugepages/> */
	bool locked;		/* <memoryBacking><locked/> */
	/*
	 * VFIO pins all of guest memory: a <devices><hostdev mode='subsystem'
	 * type='pci'> (mode defaults to subsystem), or an <interface
	 * type='hostdev'> (an SR-IOV VF, assigned the same way).
	 */
	bool vfio;
	/*
	 * The source path of the <devices><channel type='unix'> whose <target
	 * type='virtio' name='org.vmcg.pressure.0'/>; NULL if there is none,
	 * or if it has no path (inactive XML omits a path libvirt generates at
	 * start). The first such channel counts; its path is absolute.
	 */
	char *channel;
	bool has_meta; /* a vmcg:vm element was found, without problems */
	VmcgDomainMeta meta;
	/*
	 * char *: one line per problem found in vmcg's metadata, naming the
	 * element and the value, e.g. `vmcg:floor: "12Q" is not a size (e.g.
	 * 256M)`; at most VMCG_DOMAIN_XML_PROBLEMS_MAX + 1. If not empty,
	 * has_meta is false and meta is all zero. Never NULL after a
	 * successful parse.
	 */
	GPtrArray *problems;
} VmcgDomainXml;

/**
 * vmcg_domain_xml_parse() - read a domain's XML
 * @xml: the XML, not necessarily NUL-terminated
 * @len: its length in bytes
 * @ret: the result; overwritten without being freed (clear a previous
 *       result first); on failure all zero, so vmcg_domain_xml_clear() is
 *       always safe on it
 * @error: G_MARKUP_ERROR when the XML is not well-formed (GMarkup's own
 *         message, with line and character), G_IO_ERROR_INVALID_DATA when it
 *         is not a usable domain: above VMCG_DOMAIN_XML_MAX_BYTES, a NUL
 *         byte, deeper than VMCG_DOMAIN_XML_DEPTH_MAX, a root that is not
 *         <domain> or a second root, a bad id, no <name>, no valid <uuid>,
 *         no valid <memory>, a bad <currentMemory> or <min_guarantee>, one
 *         of these twice, a text above VMCG_DOMAIN_XML_TEXT_MAX, the
 *         pressure channel's source path not absolute or longer than that.
 *
 * Problems in vmcg's metadata never fail the parse: see ->problems.
 * Returns TRUE on success.
 */
gboolean vmcg_domain_xml_parse(const char *xml, size_t len, VmcgDomainXml *ret, GError **error);

/** vmcg_domain_xml_clear() - free what @x holds and zero it; safe twice, and on NULL. */
void vmcg_domain_xml_clear(VmcgDomainXml *x);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(VmcgDomainXml, vmcg_domain_xml_clear)

#endif
