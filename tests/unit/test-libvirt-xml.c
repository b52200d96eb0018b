// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libvirt domain XML (daemon/libvirt-xml.c): a realistic domain as libvirt
 * 9.0 writes a running TCG guest (data/libvirt-domain-running.xml), then one
 * table of small documents, each with the values it must give (as tokens of
 * a one-line dump of the result), the exact problem its vmcg metadata must
 * get, or the error the parse must fail with. Then the limits (depth, size,
 * the problem cap) and broken documents: every prefix of a valid one, and
 * single-byte damage at every offset, must fail or succeed cleanly.
 */
#include <string.h>

#include <gio/gio.h>
#include <glib.h>

#include "libvirt-xml.h"
#include "test-util.h"

/* The problem of a group path that vmcg_path_validate() refuses; @q is quoted. */
#define BAD_GROUP(q)                                                                        \
	"vmcg:group: " q " is not a group path (expected \"/\" or /name/name..., names of " \
	"letters, digits, '_', '-' and '.', not \".\" or \"..\")"

#define UUID "0b5e3c1d-7a2f-4c8e-9d1b-6f3a2e8c4b70"

/* A minimal domain around @body, with 1 GiB of memory. */
#define DOM(body)                                                \
	"<domain type='kvm'><name>t</name><uuid>" UUID "</uuid>" \
	"<memory unit='GiB'>1</memory>" body "</domain>"
/* vmcg's element as libvirt writes it, in a minimal domain. */
#define META(body) \
	DOM("<metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'>" body "</vmcg:vm></metadata>")

typedef struct {
	const char *name;
	const char *xml;
	/*
	 * Success: space-separated key=value tokens that the dump (see dump())
	 * must hold. Failure: NULL.
	 */
	const char *want;
	/* Success: the first problem, exactly; NULL: there is none. */
	const char *problem;
	/* Failure: a substring of the error message. */
	const char *error;
} Row;

static const Row rows[] = {
	/* ---- the domain's values ---- */
	{ "minimal", DOM(""),
	  "name=t uuid=" UUID " id=-1 memory=1073741824 current=1073741824 min_guarantee=0 "
	  "balloon=0 hugepages=0 locked=0 vfio=0 channel=- meta=0 problems=0" },
	{ "running id",
	  "<domain type='kvm' id='42'><name>t</name><uuid>" UUID
	  "</uuid><memory>1024</memory></domain>",
	  "id=42 memory=1048576" },
	{ "id -1", "<domain id='-1'><name>t</name><uuid>" UUID "</uuid><memory>1</memory></domain>",
	  "id=-1" },
	{ "id garbage",
	  "<domain id='4x'><name>t</name><uuid>" UUID "</uuid><memory>1</memory></domain>", NULL,
	  NULL, "<domain id=\"4x\"> is not a domain id" },
	{ "id too large",
	  "<domain id='2147483648'><name>t</name><uuid>" UUID "</uuid><memory>1</memory></domain>",
	  NULL, NULL, "is not a domain id" },
	{ "uuid upper case, spaces",
	  "<domain><name>t</name><uuid> 0B5E3C1D-7A2F-4C8E-9D1B-6F3A2E8C4B70\n"
	  "</uuid><memory>1</memory></domain>",
	  "uuid=" UUID },
	{ "uuid without dashes",
	  "<domain><name>t</name><uuid>0b5e3c1d7a2f4c8e9d1b6f3a2e8c4b70</uuid><memory>1</memory></"
	  "domain>",
	  "uuid=" UUID },
	{ "name as written",
	  "<domain><name> web 1&amp;2 </name><uuid>" UUID "</uuid><memory>1</memory></domain>",
	  "name=\\sweb\\s1&2\\s" },
	/* units: libvirt's virScaleInteger() */
	{ "unit default KiB", DOM("<currentMemory>1024</currentMemory>"), "current=1048576" },
	{ "unit b", DOM("<currentMemory unit='b'>4097</currentMemory>"), "current=4097" },
	{ "unit bytes", DOM("<currentMemory unit='bytes'>4097</currentMemory>"), "current=4097" },
	{ "unit k", DOM("<currentMemory unit='k'>3</currentMemory>"), "current=3072" },
	{ "unit KB", DOM("<currentMemory unit='KB'>3</currentMemory>"), "current=3000" },
	{ "unit M", DOM("<currentMemory unit='M'>3</currentMemory>"), "current=3145728" },
	{ "unit MiB", DOM("<currentMemory unit='MiB'>3</currentMemory>"), "current=3145728" },
	{ "unit MB", DOM("<currentMemory unit='MB'>3</currentMemory>"), "current=3000000" },
	{ "unit gib lower case", DOM("<currentMemory unit='gib'>1</currentMemory>"),
	  "current=1073741824" },
	{ "unit GB", DOM("<currentMemory unit='GB'>1</currentMemory>"), "current=1000000000" },
	{ "unit T",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory unit='T'>2</memory></domain>",
	  "memory=2199023255552" },
	{ "unit TB",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory unit='TB'>2</memory></domain>",
	  "memory=2000000000000" },
	{ "unit PiB",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory unit='PiB'>1</memory></domain>",
	  "memory=1125899906842624" },
	{ "unit E",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory unit='E'>7</memory></domain>",
	  "memory=8070450532247928832" },
	{ "memory at the limit",
	  "<domain><name>t</name><uuid>" UUID
	  "</uuid><memory unit='b'>9223372036854771712</memory></domain>",
	  "memory=9223372036854771712" },
	{ "memory whitespace",
	  "<domain><name>t</name><uuid>" UUID
	  "</uuid><memory unit='KiB'>\n  1024\n</memory></domain>",
	  "memory=1048576" },
	{ "memtune min_guarantee",
	  DOM("<memtune><hard_limit unit='KiB'>9</hard_limit><min_guarantee unit='MiB'>256"
	      "</min_guarantee></memtune>"),
	  "min_guarantee=268435456" },
	{ "min_guarantee outside memtune: ignored", DOM("<min_guarantee>5</min_guarantee>"),
	  "min_guarantee=0" },
	{ "memory elsewhere: ignored",
	  DOM("<memtune><memory>5</memory></memtune><devices><memory model='dimm'><target><size "
	      "unit='KiB'>524288</size></target></memory></devices>"),
	  "memory=1073741824" },
	{ "memory in a namespace: not libvirt's",
	  "<domain xmlns:x='urn:x'><name>t</name><uuid>" UUID
	  "</uuid><x:memory>5</x:memory><memory>1</memory></domain>",
	  "memory=1024" },
	/* balloon, backing, VFIO, channel */
	{ "balloon virtio", DOM("<devices><memballoon model='virtio'/></devices>"), "balloon=1" },
	{ "balloon stats period",
	  DOM("<devices><memballoon model='virtio-non-transitional'><stats period='10'/>"
	      "</memballoon></devices>"),
	  "balloon=1" },
	{ "balloon none", DOM("<devices><memballoon model='none'/></devices>"), "balloon=0" },
	{ "balloon outside devices", DOM("<memballoon model='virtio'/>"), "balloon=0" },
	{ "hugepages",
	  DOM("<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages>"
	      "</memoryBacking>"),
	  "hugepages=1 locked=0" },
	{ "locked", DOM("<memoryBacking><nosharepages/><locked/></memoryBacking>"),
	  "hugepages=0 locked=1" },
	{ "hugepages outside memoryBacking", DOM("<cpu><hugepages/></cpu>"), "hugepages=0" },
	{ "vfio pci hostdev",
	  DOM("<devices><hostdev mode='subsystem' type='pci' managed='yes'><source><address "
	      "domain='0x0000' bus='0x65' slot='0x00' "
	      "function='0x1'/></source></hostdev></devices>"),
	  "vfio=1" },
	{ "vfio mode default", DOM("<devices><hostdev type='pci'/></devices>"), "vfio=1" },
	{ "usb hostdev", DOM("<devices><hostdev mode='subsystem' type='usb'/></devices>"),
	  "vfio=0" },
	{ "capabilities hostdev",
	  DOM("<devices><hostdev mode='capabilities' type='storage'/></devices>"), "vfio=0" },
	{ "vfio interface hostdev",
	  DOM("<devices><interface type='hostdev' managed='yes'/></devices>"), "vfio=1" },
	{ "network interface", DOM("<devices><interface type='network'/></devices>"), "vfio=0" },
	{ "channel",
	  DOM("<devices><channel type='unix'><source mode='bind' path='/run/c/p.sock'/>"
	      "<target type='virtio' name='org.vmcg.pressure.0'/></channel></devices>"),
	  "channel=/run/c/p.sock" },
	{ "channel target first",
	  DOM("<devices><channel type='unix'><target type='virtio' name='org.vmcg.pressure.0'/>"
	      "<source mode='bind' path='/run/c/p.sock'/></channel></devices>"),
	  "channel=/run/c/p.sock" },
	{ "channel inactive, no path",
	  DOM("<devices><channel type='unix'><source mode='bind'/>"
	      "<target type='virtio' name='org.vmcg.pressure.0'/></channel></devices>"),
	  "channel=-" },
	{ "channel other name",
	  DOM("<devices><channel type='unix'><source mode='bind' path='/run/c/ga'/>"
	      "<target type='virtio' name='org.qemu.guest_agent.0'/></channel></devices>"),
	  "channel=-" },
	{ "channel pty",
	  DOM("<devices><channel type='pty'><source path='/dev/pts/4'/>"
	      "<target type='virtio' name='org.vmcg.pressure.0'/></channel></devices>"),
	  "channel=-" },
	{ "channel guestfwd target",
	  DOM("<devices><channel type='unix'><source path='/run/c/p'/>"
	      "<target type='guestfwd' name='org.vmcg.pressure.0'/></channel></devices>"),
	  "channel=-" },
	{ "channel first of two",
	  DOM("<devices><channel type='unix'><source path='/run/a'/>"
	      "<target type='virtio' name='org.vmcg.pressure.0'/></channel>"
	      "<channel type='unix'><source path='/run/b'/>"
	      "<target type='virtio' name='org.vmcg.pressure.0'/></channel></devices>"),
	  "channel=/run/a" },
	{ "channel relative path",
	  DOM("<devices><channel type='unix'><source path='p.sock'/>"
	      "<target type='virtio' name='org.vmcg.pressure.0'/></channel></devices>"),
	  NULL, NULL, "the source path \"p.sock\" is not absolute" },
	{ "channel outside devices",
	  DOM("<channel type='unix'><source path='/run/a'/>"
	      "<target type='virtio' name='org.vmcg.pressure.0'/></channel>"),
	  "channel=-" },
	{ "comments, CDATA, PI, doctype",
	  "<?xml version='1.0'?><!DOCTYPE domain><!-- c --><domain><name><![CDATA[a<b]]></name>"
	  "<uuid>" UUID "</uuid><memory>1<!-- x -->0</memory></domain>",
	  "name=a<b memory=10240" },

	/* ---- the domain unusable ---- */
	{ "no name", "<domain><uuid>" UUID "</uuid><memory>1</memory></domain>", NULL, NULL,
	  "domain XML: no <name>" },
	{ "empty name", "<domain><name/><uuid>" UUID "</uuid><memory>1</memory></domain>", NULL,
	  NULL, "<name> is empty" },
	{ "two names",
	  "<domain><name>a</name><name>b</name><uuid>" UUID "</uuid><memory>1</memory></domain>",
	  NULL, NULL, "<name> appears twice" },
	{ "name too long", NULL, NULL, NULL, "<name> is longer than 4096 bytes" }, /* built */
	{ "no uuid", "<domain><name>t</name><memory>1</memory></domain>", NULL, NULL,
	  "domain XML: no <uuid>" },
	{ "bad uuid",
	  "<domain><name>t</name><uuid>0b5e3c1d-7a2f-4c8e-9d1b-6f3a2e8c4b7g</uuid>"
	  "<memory>1</memory></domain>",
	  NULL, NULL, "domain XML: <uuid> \"0b5e3c1d-7a2f-4c8e-9d1b-6f3a2e8c4b7g\" is not a UUID" },
	{ "uuid dashes misplaced",
	  "<domain><name>t</name><uuid>0b5e3c1d7-a2f-4c8e-9d1b-6f3a2e8c4b70"
	  "</uuid><memory>1</memory></domain>",
	  NULL, NULL, "is not a UUID" },
	{ "uuid short", "<domain><name>t</name><uuid>0b5e</uuid><memory>1</memory></domain>", NULL,
	  NULL, "is not a UUID" },
	{ "no memory", "<domain><name>t</name><uuid>" UUID "</uuid></domain>", NULL, NULL,
	  "domain XML: no <memory>" },
	{ "memory empty", "<domain><name>t</name><uuid>" UUID "</uuid><memory> </memory></domain>",
	  NULL, NULL, "<memory> is empty" },
	{ "memory zero", "<domain><name>t</name><uuid>" UUID "</uuid><memory>0</memory></domain>",
	  NULL, NULL, "<memory> is 0" },
	{ "memory negative",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory>-1</memory></domain>", NULL, NULL,
	  "<memory> \"-1\" is not a number" },
	{ "memory fraction",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory>1.5</memory></domain>", NULL, NULL,
	  "<memory> \"1.5\" is not a number" },
	{ "memory with a suffix",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory>1G</memory></domain>", NULL, NULL,
	  "<memory> \"1G\" is not a number" },
	{ "memory unknown unit",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory unit='ZiB'>1</memory></domain>", NULL,
	  NULL, "<memory>: unknown unit \"ZiB\"" },
	{ "memory unit KiBB",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory unit='KiBB'>1</memory></domain>",
	  NULL, NULL, "unknown unit" },
	{ "memory unit empty",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory unit=''>1</memory></domain>", NULL,
	  NULL, "unknown unit" },
	{ "memory unit overflow",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory unit='EiB'>16</memory></domain>",
	  NULL, NULL, "<memory> 16 EiB is too large" },
	{ "memory KiB overflow",
	  "<domain><name>t</name><uuid>" UUID "</uuid><memory>18014398509481984</memory></domain>",
	  NULL, NULL, "<memory> 18014398509481984 KiB is too large" },
	{ "memory above the limit",
	  "<domain><name>t</name><uuid>" UUID
	  "</uuid><memory unit='b'>9223372036854771713</memory></domain>",
	  NULL, NULL, "is too large" },
	{ "memory above 64 bits",
	  "<domain><name>t</name><uuid>" UUID
	  "</uuid><memory unit='b'>99999999999999999999999</memory></domain>",
	  NULL, NULL, "is too large" },
	{ "two memory", DOM("<memory>1</memory>"), NULL, NULL, "<memory> appears twice" },
	{ "current above memory", DOM("<currentMemory unit='GiB'>2</currentMemory>"), NULL, NULL,
	  "<currentMemory> (2147483648 bytes) is above <memory> (1073741824 bytes)" },
	{ "bad current", DOM("<currentMemory>x</currentMemory>"), NULL, NULL,
	  "<currentMemory> \"x\" is not a number" },
	{ "bad min_guarantee",
	  DOM("<memtune><min_guarantee unit='KiB'>-5</min_guarantee></memtune>"), NULL, NULL,
	  "<memtune><min_guarantee> \"-5\" is not a number" },
	{ "two min_guarantee",
	  DOM("<memtune><min_guarantee>1</min_guarantee></memtune>"
	      "<memtune><min_guarantee>1</min_guarantee></memtune>"),
	  NULL, NULL, "<memtune><min_guarantee> appears twice" },
	{ "root not domain", "<network><name>t</name></network>", NULL, NULL,
	  "the root element is <network>, not <domain>" },
	{ "root domain in a namespace",
	  "<d:domain xmlns:d='urn:x'><name>t</name><uuid>" UUID
	  "</uuid><memory>1</memory></d:domain>",
	  NULL, NULL, "the root element is <d:domain>, not <domain>" },
	{ "second root", DOM("") "<domain/>", NULL, NULL, "a second root element <domain>" },
	{ "empty document", "", NULL, NULL, "domain XML: " },
	{ "whitespace only", " \n ", NULL, NULL, "domain XML: " },
	{ "text before the root", "x" DOM(""), NULL, NULL, "domain XML: " },
	{ "text after the root", DOM("") "x", NULL, NULL, "domain XML: " },
	{ "unclosed", "<domain><name>t</name><uuid>" UUID "</uuid><memory>1</memory>", NULL, NULL,
	  "domain XML: " },
	{ "mismatched", "<domain><name>t</memory></domain>", NULL, NULL, "domain XML: " },
	{ "unknown entity", DOM("<title>&lol;</title>"), NULL, NULL, "domain XML: " },
	{ "GMarkup's message made one line", DOM("<title>&\n;</title>"), NULL, NULL,
	  "\\n" }, /* escaped */
	{ "bad UTF-8", DOM("<title>\xc0\xaf</title>"), NULL, NULL, "domain XML: " },
	{ "attribute without quotes", DOM("<devices><memballoon model=virtio/></devices>"), NULL,
	  NULL, "domain XML: " },
	{ "undeclared prefix elsewhere: ignored", DOM("<x:foo/>"), "memory=1073741824 meta=0" },

	/* ---- vmcg's element ---- */
	{ "meta all",
	  META("<vmcg:group>/tenants/acme/web</vmcg:group><vmcg:floor>256M</vmcg:floor>"
	       "<vmcg:oom-priority>-1000</vmcg:oom-priority><vmcg:memory.min>64M</vmcg:memory.min>"
	       "<vmcg:memory.low>128M</vmcg:memory.low><vmcg:memory.high>8G</vmcg:memory.high>"
	       "<vmcg:memory.max>max</vmcg:memory.max>"),
	  "meta=1 group=/tenants/acme/web floor=268435456 oom=-1000 min=67108864 low=134217728 "
	  "high=8589934592 max=max problems=0" },
	{ "meta empty", META(""),
	  "meta=1 group=- floor=- oom=- min=- low=- high=- max=- problems=0" },
	{ "meta self-closed", DOM("<metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/></metadata>"),
	  "meta=1 group=- problems=0" },
	{ "meta whitespace trimmed",
	  META("<vmcg:group>\n  /a/b \t</vmcg:group><vmcg:floor> 1G </vmcg:floor>"
	       "<vmcg:oom-priority>\n7\n</vmcg:oom-priority>"),
	  "meta=1 group=/a/b floor=1073741824 oom=7" },
	{ "meta root group", META("<vmcg:group>/</vmcg:group>"), "meta=1 group=/" },
	{ "meta floor max", META("<vmcg:floor>max</vmcg:floor>"), "meta=1 floor=max" },
	{ "meta floor = memory", META("<vmcg:floor>1G</vmcg:floor>"), "meta=1 floor=1073741824" },
	{ "meta floor 0", META("<vmcg:floor>0</vmcg:floor>"), "meta=1 floor=0" },
	{ "meta floor fraction", META("<vmcg:floor>0.5G</vmcg:floor>"), "meta=1 floor=536870912" },
	{ "meta oom-priority 1000", META("<vmcg:oom-priority>1000</vmcg:oom-priority>"),
	  "meta=1 oom=1000" },
	{ "meta knobs equal",
	  META("<vmcg:memory.min>1G</vmcg:memory.min><vmcg:memory.low>1G</vmcg:memory.low>"
	       "<vmcg:memory.high>1G</vmcg:memory.high><vmcg:memory.max>1G</vmcg:memory.max>"),
	  "meta=1 min=1073741824 low=1073741824 high=1073741824 max=1073741824" },
	{ "meta knobs all max",
	  META("<vmcg:memory.min>max</vmcg:memory.min><vmcg:memory.max>max</vmcg:memory.max>"),
	  "meta=1 min=max max=max" },
	{ "meta knob above RAM is fine", META("<vmcg:memory.min>64G</vmcg:memory.min>"),
	  "meta=1 min=68719476736" },
	{ "meta other prefix",
	  DOM("<metadata><m:vm "
	      "xmlns:m='urn:vmcg:domain:1'><m:floor>1M</m:floor></m:vm></metadata>"),
	  "meta=1 floor=1048576" },
	{ "meta default namespace",
	  DOM("<metadata><vm xmlns='urn:vmcg:domain:1'><group>/g</group><floor>1M</floor></vm>"
	      "</metadata>"),
	  "meta=1 group=/g floor=1048576" },
	{ "meta prefix declared on the root",
	  "<domain xmlns:vmcg='urn:vmcg:domain:1'><name>t</name><uuid>" UUID
	  "</uuid><memory>1048576</memory><metadata><vmcg:vm><vmcg:floor>2M</vmcg:floor>"
	  "</vmcg:vm></metadata></domain>",
	  "meta=1 floor=2097152" },
	{ "meta prefix declared on metadata",
	  DOM("<metadata "
	      "xmlns:q='urn:vmcg:domain:1'><q:vm><q:floor>2M</q:floor></q:vm></metadata>"),
	  "meta=1 floor=2097152" },
	{ "meta prefix rebound inside",
	  DOM("<metadata><a:vm xmlns:a='urn:vmcg:domain:1'><a:floor>2M</a:floor>"
	      "<b:floor xmlns:b='urn:vmcg:domain:1'>3M</b:floor></a:vm></metadata>"),
	  NULL, "vmcg:floor appears more than once" },
	{ "meta CDATA and comment", META("<vmcg:floor><![CDATA[25]]><!-- n -->6M</vmcg:floor>"),
	  "meta=1 floor=268435456" },
	{ "meta entity", META("<vmcg:group>&#x2F;a</vmcg:group>"), "meta=1 group=/a" },
	{ "meta among others",
	  DOM("<metadata><app:x xmlns:app='urn:app'><app:floor>zz</app:floor></app:x>"
	      "<vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'><vmcg:floor>1M</vmcg:floor></vmcg:vm>"
	      "<vm><floor>x</floor></vm><y:vm xmlns:y='urn:vmcg:domain:2'/></metadata>"),
	  "meta=1 floor=1048576 problems=0" },
	{ "meta wrong namespace only",
	  DOM("<metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:10'><vmcg:floor>x</vmcg:floor>"
	      "</vmcg:vm></metadata>"),
	  "meta=0 problems=0" },
	{ "meta default namespace undeclared",
	  DOM("<metadata><vm xmlns='urn:vmcg:domain:1'><x xmlns=''><vm/></x></vm></metadata>"),
	  NULL, "vmcg:vm: unknown element <x>" },
	{ "meta outside metadata: ignored",
	  DOM("<description><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/></description>"
	      "<devices><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/></devices>"),
	  "meta=0 problems=0" },
	{ "meta under a nested metadata: ignored",
	  DOM("<devices><metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/></metadata></devices>"),
	  "meta=0 problems=0" },
	{ "meta before memory",
	  "<domain><name>t</name><uuid>" UUID
	  "</uuid><metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'><vmcg:floor>2M</vmcg:floor>"
	  "</vmcg:vm></metadata><memory unit='MiB'>1</memory></domain>",
	  NULL, "vmcg:floor: \"2M\" is above the domain's <memory> (1M)" },
	{ "meta an xml:lang attribute", META("<vmcg:group xml:lang='en'>/a</vmcg:group>"), NULL,
	  "vmcg:group: unexpected attribute \"xml:lang\"" },

	/* ---- problems in vmcg's element ---- */
	{ "problem bad size", META("<vmcg:floor>12Q</vmcg:floor>"), "meta=0 floor=- problems=1",
	  "vmcg:floor: \"12Q\" is not a size (e.g. 256M)" },
	{ "problem empty size", META("<vmcg:floor/>"), "meta=0",
	  "vmcg:floor: \"\" is not a size (e.g. 256M)" },
	{ "problem negative size", META("<vmcg:memory.high>-1</vmcg:memory.high>"), "meta=0",
	  "vmcg:memory.high: \"-1\" is not a size (e.g. 256M)" },
	{ "problem size too large", META("<vmcg:memory.max>8E</vmcg:memory.max>"), "meta=0",
	  "vmcg:memory.max: \"8E\" is too large (at most 9223372036854771712 bytes, or max)" },
	{ "problem size MAX", META("<vmcg:memory.low>MAX</vmcg:memory.low>"), "meta=0",
	  "vmcg:memory.low: \"MAX\" is not a size (e.g. 256M)" },
	{ "problem size with space inside", META("<vmcg:memory.min>1 G</vmcg:memory.min>"),
	  "meta=0", "vmcg:memory.min: \"1 G\" is not a size (e.g. 256M)" },
	{ "problem floor above memory", META("<vmcg:floor>2G</vmcg:floor>"),
	  "meta=0 floor=- problems=1", "vmcg:floor: \"2G\" is above the domain's <memory> (1G)" },
	{ "problem floor one byte above", META("<vmcg:floor>1073741825</vmcg:floor>"), "meta=0",
	  "vmcg:floor: \"1073741825\" is above the domain's <memory> (1G)" },
	{ "problem group relative", META("<vmcg:group>tenants/a</vmcg:group>"),
	  "meta=0 group=- problems=1", BAD_GROUP("\"tenants/a\"") },
	{ "problem group dotdot", META("<vmcg:group>/tenants/../root</vmcg:group>"), "meta=0",
	  BAD_GROUP("\"/tenants/../root\"") },
	{ "problem group dot", META("<vmcg:group>/a/.</vmcg:group>"), "meta=0",
	  BAD_GROUP("\"/a/.\"") },
	{ "problem group double slash", META("<vmcg:group>/a//b</vmcg:group>"), "meta=0",
	  BAD_GROUP("\"/a//b\"") },
	{ "problem group trailing slash", META("<vmcg:group>/a/b/</vmcg:group>"), "meta=0",
	  BAD_GROUP("\"/a/b/\"") },
	{ "problem group empty", META("<vmcg:group></vmcg:group>"), "meta=0", BAD_GROUP("\"\"") },
	{ "problem group bad char", META("<vmcg:group>/a b</vmcg:group>"), "meta=0",
	  BAD_GROUP("\"/a b\"") },
	{ "problem group too deep",
	  META("<vmcg:group>/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q</vmcg:group>"), "meta=0",
	  "vmcg:group: \"/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q\" is too long: at most 16 levels of "
	  "names of at most 64 bytes" },
	{ "problem oom-priority word", META("<vmcg:oom-priority>high</vmcg:oom-priority>"),
	  "meta=0 oom=-", "vmcg:oom-priority: \"high\" is not an integer" },
	{ "problem oom-priority float", META("<vmcg:oom-priority>1.0</vmcg:oom-priority>"),
	  "meta=0", "vmcg:oom-priority: \"1.0\" is not an integer" },
	{ "problem oom-priority hex", META("<vmcg:oom-priority>0x10</vmcg:oom-priority>"), "meta=0",
	  "vmcg:oom-priority: \"0x10\" is not an integer" },
	{ "problem oom-priority empty", META("<vmcg:oom-priority/>"), "meta=0",
	  "vmcg:oom-priority: \"\" is not an integer" },
	{ "problem oom-priority above", META("<vmcg:oom-priority>1001</vmcg:oom-priority>"),
	  "meta=0", "vmcg:oom-priority: \"1001\" is out of range [-1000, 1000]" },
	{ "problem oom-priority below", META("<vmcg:oom-priority>-1001</vmcg:oom-priority>"),
	  "meta=0", "vmcg:oom-priority: \"-1001\" is out of range [-1000, 1000]" },
	{ "problem oom-priority huge",
	  META("<vmcg:oom-priority>99999999999999999999999</vmcg:oom-priority>"), "meta=0",
	  "vmcg:oom-priority: \"99999999999999999999999\" is out of range [-1000, 1000]" },
	{ "problem unknown element", META("<vmcg:flor>1M</vmcg:flor>"), "meta=0 problems=1",
	  "vmcg:vm: unknown element <vmcg:flor>" },
	{ "problem element of another namespace", META("<x:floor xmlns:x='urn:x'>1M</x:floor>"),
	  "meta=0", "vmcg:vm: unknown element <x:floor>" },
	{ "problem unprefixed child", META("<floor>1M</floor>"), "meta=0",
	  "vmcg:vm: unknown element <floor>" },
	{ "problem undeclared prefix", META("<zz:floor>1M</zz:floor>"), "meta=0",
	  "vmcg:vm: unknown element <zz:floor>" },
	{ "problem twice", META("<vmcg:floor>1M</vmcg:floor><vmcg:floor>2M</vmcg:floor>"),
	  "meta=0 floor=- problems=1", "vmcg:floor appears more than once" },
	{ "problem twice, same value",
	  META("<vmcg:group>/a</vmcg:group><vmcg:group>/a</vmcg:group>"), "meta=0",
	  "vmcg:group appears more than once" },
	{ "problem nested", META("<vmcg:floor><b>1M</b></vmcg:floor>"), "meta=0 problems=1",
	  "vmcg:floor: unexpected child element <b>" },
	{ "problem nested vmcg",
	  META("<vmcg:group><vmcg:group>/a</vmcg:group><vmcg:x/></vmcg:group>"),
	  "meta=0 problems=1", "vmcg:group: unexpected child element <vmcg:group>" },
	{ "problem attribute", META("<vmcg:floor unit='K'>1</vmcg:floor>"), "meta=0 problems=1",
	  "vmcg:floor: unexpected attribute \"unit\"" },
	{ "problem attribute on vm",
	  DOM("<metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1' version='2'/></metadata>"),
	  "meta=0 problems=1", "vmcg:vm: unexpected attribute \"version\"" },
	{ "xmlns attributes are fine",
	  META("<vmcg:floor xmlns:vmcg='urn:vmcg:domain:1' xmlns:o='urn:o'>1M</vmcg:floor>"),
	  "meta=1 floor=1048576" },
	{ "problem text in vm", META("hello<vmcg:floor>1M</vmcg:floor>world"), "meta=0 problems=1",
	  "vmcg:vm: text outside of its elements" },
	{ "problem two vm",
	  DOM("<metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/>"
	      "<v:vm xmlns:v='urn:vmcg:domain:1'><v:floor>1M</v:floor></v:vm></metadata>"),
	  "meta=0 floor=- problems=1", "<metadata>: more than one vmcg:vm element" },
	{ "problem two vm in two metadata",
	  DOM("<metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/></metadata>"
	      "<metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/></metadata>"),
	  "meta=0 problems=1", "<metadata>: more than one vmcg:vm element" },
	{ "problem three vm",
	  DOM("<metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/>"
	      "<vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'/>"
	      "</metadata>"),
	  "meta=0 problems=1", "<metadata>: more than one vmcg:vm element" },
	{ "problem other element in vmcg's namespace",
	  DOM("<metadata><vmcg:floor xmlns:vmcg='urn:vmcg:domain:1'>1M</vmcg:floor></metadata>"),
	  "meta=0 problems=1",
	  "<metadata>: unknown element <vmcg:floor> in vmcg's namespace (expected vmcg:vm)" },
	{ "problem value too long", NULL, "meta=0 problems=1",
	  "vmcg:group: the value is longer than 4096 bytes" }, /* built */
	{ "problem too many children", NULL, "meta=0 problems=17",
	  "vmcg:vm: more than 32 child elements, the rest is not read" }, /* built */
	{ "problem min above max",
	  META("<vmcg:memory.min>2G</vmcg:memory.min><vmcg:memory.max>1G</vmcg:memory.max>"),
	  "meta=0 min=- max=- problems=1", "vmcg:memory.min (2G) is above vmcg:memory.max (1G)" },
	{ "problem low above high",
	  META("<vmcg:memory.low>3G</vmcg:memory.low><vmcg:memory.high>2G</vmcg:memory.high>"),
	  "meta=0 problems=1", "vmcg:memory.low (3G) is above vmcg:memory.high (2G)" },
	{ "problem min above low, high, max",
	  META("<vmcg:memory.min>max</vmcg:memory.min><vmcg:memory.low>1G</vmcg:memory.low>"
	       "<vmcg:memory.high>1G</vmcg:memory.high><vmcg:memory.max>1G</vmcg:memory.max>"),
	  "meta=0 problems=3", "vmcg:memory.min (max) is above vmcg:memory.low (1G)" },
	{ "problem high above max, in any order",
	  META("<vmcg:memory.max>4095</vmcg:memory.max><vmcg:memory.high>4096</vmcg:memory.high>"),
	  "meta=0 problems=1", "vmcg:memory.high (4K) is above vmcg:memory.max (4095)" },
	{ "problem several",
	  META("<vmcg:group>..</vmcg:group><vmcg:floor>x</vmcg:floor><vmcg:bogus/>"),
	  "meta=0 problems=3", "vmcg:vm: unknown element <vmcg:bogus>" },
	{ "problem quoted value escaped", META("<vmcg:floor>a\"b\\c&#10;d&#9;e&#1;</vmcg:floor>"),
	  "meta=0", "vmcg:floor: \"a\\\"b\\\\c\\nd\\te\\u0001\" is not a size (e.g. 256M)" },
	{ "problem long value cut",
	  META("<vmcg:floor>a123456789012345678901234567890123456789012345678901234567890123456789"
	       "</vmcg:floor>"),
	  "meta=0",
	  "vmcg:floor: \"a123456789012345678901234567890123456789012345678901234567890123...\" is "
	  "not a size (e.g. 256M)" },
	{ "problem does not fail the parse, metadata dropped whole",
	  META("<vmcg:group>/a</vmcg:group><vmcg:floor>1M</vmcg:floor>"
	       "<vmcg:oom-priority>x</vmcg:oom-priority>"),
	  "name=t memory=1073741824 meta=0 group=- floor=- oom=- problems=1",
	  "vmcg:oom-priority: \"x\" is not an integer" },
};

/* The result as one line of key=value tokens; "-" is absent. */
static char *dump(const VmcgDomainXml *x)
{
	GString *s = g_string_new(NULL);
	const VmcgDomainMeta *m = &x->meta;
	const bool has[] = { m->has_min, m->has_low, m->has_high, m->has_max };
	const uint64_t v[] = { m->min, m->low, m->high, m->max };
	const char *const k[] = { "min", "low", "high", "max" };

	/* Spaces in the name as \s, so that the dump splits at spaces. */
	for (const char *c = x->name; *c; c++)
		g_string_append(s, *c == ' ' ? "\\s" : (char[]){ *c, 0 });
	g_string_prepend(s, "name=");
	g_string_append_printf(s,
			       " uuid=%s id=%" G_GINT64_FORMAT " memory=%" G_GUINT64_FORMAT
			       " current=%" G_GUINT64_FORMAT " min_guarantee=%" G_GUINT64_FORMAT,
			       x->uuid, x->id, x->memory, x->current_memory, x->min_guarantee);
	g_string_append_printf(s, " balloon=%d hugepages=%d locked=%d vfio=%d channel=%s meta=%d",
			       x->has_balloon, x->hugepages, x->locked, x->vfio,
			       x->channel ? x->channel : "-", x->has_meta);
	g_string_append_printf(s, " group=%s", m->group ? m->group : "-");
	if (!m->has_floor)
		g_string_append(s, " floor=-");
	else if (m->floor == UINT64_MAX)
		g_string_append(s, " floor=max");
	else
		g_string_append_printf(s, " floor=%" G_GUINT64_FORMAT, m->floor);
	if (m->has_oom_priority)
		g_string_append_printf(s, " oom=%d", m->oom_priority);
	else
		g_string_append(s, " oom=-");
	for (int i = 0; i < 4; i++) {
		if (!has[i])
			g_string_append_printf(s, " %s=-", k[i]);
		else if (v[i] == UINT64_MAX)
			g_string_append_printf(s, " %s=max", k[i]);
		else
			g_string_append_printf(s, " %s=%" G_GUINT64_FORMAT, k[i], v[i]);
	}
	g_string_append_printf(s, " problems=%u", x->problems->len);
	return g_string_free(s, FALSE);
}

/* Every space-separated token of @want is a token of @got. */
static void assert_tokens(const char *got, const char *want)
{
	g_auto(GStrv) have = g_strsplit(got, " ", -1);
	g_auto(GStrv) need = g_strsplit(want, " ", -1);

	for (size_t i = 0; need[i]; i++)
		if (*need[i] && !g_strv_contains((const char *const *)have, need[i]))
			g_error("token %s not in: %s", need[i], got);
}

/* What every successful parse keeps, whatever the input. */
static void check_invariants(const VmcgDomainXml *x)
{
	static const VmcgDomainMeta zero;

	g_assert_nonnull(x->name);
	g_assert_cmpuint(strlen(x->name), >, 0);
	g_assert_cmpuint(strlen(x->uuid), ==, 36);
	g_assert_cmpuint(x->memory, >, 0);
	g_assert_cmpuint(x->current_memory, <=, x->memory);
	g_assert_nonnull(x->problems);
	g_assert_cmpuint(x->problems->len, <=, VMCG_DOMAIN_XML_PROBLEMS_MAX + 1);
	if (x->problems->len || !x->has_meta)
		g_assert_true(memcmp(&x->meta, &zero, sizeof(zero)) == 0);
	if (x->has_meta)
		g_assert_cmpuint(x->problems->len, ==, 0);
	for (guint i = 0; i < x->problems->len; i++) {
		const char *msg = g_ptr_array_index(x->problems, i);

		g_assert_true(g_utf8_validate(msg, -1, NULL));
		g_assert_null(strchr(msg, '\n'));
	}
}

/* Parses @xml; returns whether it succeeded, and checks the result or the error. */
static bool parse(const char *xml, size_t len, VmcgDomainXml *x, GError **error)
{
	bool ok = vmcg_domain_xml_parse(xml, len, x, error);

	if (ok) {
		g_assert_no_error(*error);
		check_invariants(x);
	} else {
		static const VmcgDomainXml zero;

		g_assert_true(memcmp(x, &zero, sizeof(zero)) == 0);
		g_assert_nonnull(*error);
		g_assert_true(g_error_matches(*error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA) ||
			      (*error)->domain == G_MARKUP_ERROR);
		g_assert_true(g_str_has_prefix((*error)->message, "domain XML: "));
		g_assert_null(strchr((*error)->message, '\n'));
	}
	return ok;
}

/* The rows whose XML is too long to write out. */
static char *build(const Row *row)
{
	if (strcmp(row->name, "name too long") == 0) {
		g_autofree char *name = g_strnfill(VMCG_DOMAIN_XML_TEXT_MAX + 1, 'n');

		return g_strdup_printf("<domain><name>%s</name><uuid>" UUID
				       "</uuid><memory>1</memory></domain>",
				       name);
	}
	if (strcmp(row->name, "problem value too long") == 0) {
		g_autofree char *path = g_strnfill(VMCG_DOMAIN_XML_TEXT_MAX + 1, 'a');

		path[0] = '/';
		return g_strdup_printf(META("<vmcg:group>%s</vmcg:group>"), path);
	}
	if (strcmp(row->name, "problem too many children") == 0) {
		g_autoptr(GString) s = g_string_new(NULL);

		/* 33 unknown children: their problems are cut, the limit's comes first. */
		for (int i = 0; i <= VMCG_DOMAIN_XML_META_CHILDREN_MAX; i++)
			g_string_append(s, "<vmcg:x/>");
		return g_strdup_printf(META("%s"), s->str);
	}
	g_assert_not_reached();
}

static void test_rows(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
		const Row *row = &rows[i];
		g_auto(VmcgDomainXml) x = { 0 };
		g_autoptr(GError) error = NULL;
		g_autofree char *built = row->xml ? NULL : build(row);
		const char *xml = row->xml ? row->xml : built;
		bool ok;

		g_test_message("row %zu: %s", i, row->name);
		ok = parse(xml, strlen(xml), &x, &error);
		if (!row->want && !row->problem) {
			if (ok)
				g_error("row \"%s\" parsed", row->name);
			if (!strstr(error->message, row->error))
				g_error("row \"%s\": error \"%s\" does not hold \"%s\"", row->name,
					error->message, row->error);
			continue;
		}
		if (!ok)
			g_error("row \"%s\": %s", row->name, error->message);
		for (guint j = 0; j < x.problems->len; j++)
			g_test_message("  problem: %s", (char *)g_ptr_array_index(x.problems, j));
		if (row->want) {
			g_autofree char *got = dump(&x);

			assert_tokens(got, row->want);
		}
		if (row->problem) {
			g_assert_cmpuint(x.problems->len, >, 0);
			g_assert_cmpstr(g_ptr_array_index(x.problems, 0), ==, row->problem);
		}
	}
}

static char *read_data(const char *name, size_t *ret_len)
{
	g_autofree char *path = g_test_build_filename(G_TEST_DIST, "data", name, NULL);
	g_autoptr(GError) error = NULL;
	char *buf;
	gsize len;

	if (!g_file_get_contents(path, &buf, &len, &error))
		g_error("%s", error->message);
	*ret_len = len;
	return buf;
}

/* What libvirt 9.0 gives for a running TCG guest (type='qemu'), every field checked. */
static void test_realistic(void)
{
	size_t len;
	g_autofree char *xml = read_data("libvirt-domain-running.xml", &len);
	g_auto(VmcgDomainXml) x = { 0 };
	g_autoptr(GError) error = NULL;

	g_assert_true(parse(xml, len, &x, &error));
	g_assert_cmpstr(x.name, ==, "web-1");
	g_assert_cmpstr(x.uuid, ==, "8f7e1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b");
	g_assert_cmpint(x.id, ==, 3);
	g_assert_cmpuint(x.memory, ==, UINT64_C(1) << 30);
	g_assert_cmpuint(x.current_memory, ==, UINT64_C(768) << 20);
	g_assert_cmpuint(x.min_guarantee, ==, UINT64_C(256) << 20);
	g_assert_true(x.has_balloon);
	g_assert_false(x.hugepages);
	g_assert_false(x.locked);
	g_assert_false(x.vfio);
	g_assert_cmpstr(x.channel, ==,
			"/var/lib/libvirt/qemu/channel/target/domain-3-web-1/org.vmcg.pressure.0");
	g_assert_cmpuint(x.problems->len, ==, 0);
	g_assert_true(x.has_meta);
	g_assert_cmpstr(x.meta.group, ==, "/tenants/acme/web");
	g_assert_true(x.meta.has_floor);
	g_assert_cmpuint(x.meta.floor, ==, UINT64_C(256) << 20);
	g_assert_true(x.meta.has_oom_priority);
	g_assert_cmpint(x.meta.oom_priority, ==, -100);
	g_assert_false(x.meta.has_min);
	g_assert_false(x.meta.has_low);
	g_assert_true(x.meta.has_high);
	g_assert_cmpuint(x.meta.high, ==, UINT64_C(8) << 30);
	g_assert_true(x.meta.has_max);
	g_assert_cmpuint(x.meta.max, ==, UINT64_MAX);

	/* Clearing twice is safe, and leaves it zero. */
	vmcg_domain_xml_clear(&x);
	vmcg_domain_xml_clear(&x);
	g_assert_null(x.name);
	g_assert_null(x.problems);
	vmcg_domain_xml_clear(NULL);
}

/*
 * Every proper prefix of a valid document fails (an element is left open),
 * cleanly: no crash, no leak (valgrind), *ret zero, one clear message.
 */
static void check_prefixes(const char *xml, size_t len, size_t step)
{
	for (size_t n = 0; n < len; n += step) {
		g_auto(VmcgDomainXml) x = { 0 };
		g_autoptr(GError) error = NULL;

		if (parse(xml, n, &x, &error))
			g_error("a prefix of %zu bytes parsed", n);
	}
}

static void test_prefixes(void)
{
	static const char small[] =
		"<domain id='1'><name>t</name><uuid>" UUID "</uuid><memory unit='MiB'>512"
		"</memory><devices><memballoon model='virtio'/><channel type='unix'><source "
		"path='/run/p'/><target type='virtio' name='org.vmcg.pressure.0'/></channel>"
		"</devices><metadata><vmcg:vm xmlns:vmcg='urn:vmcg:domain:1'><vmcg:floor>1M"
		"</vmcg:floor></vmcg:vm></metadata></domain>";
	size_t len;
	g_autofree char *xml = read_data("libvirt-domain-running.xml", &len);
	g_auto(VmcgDomainXml) x = { 0 };
	g_autoptr(GError) error = NULL;

	g_assert_true(parse(small, strlen(small), &x, &error));
	g_assert_true(x.has_meta);
	check_prefixes(small, strlen(small), 1);
	/* The realistic one ends in "</domain>\n": all but the newline. */
	check_prefixes(xml, len - 1, test_scale_div() > 1 ? 7 : 1);
}

/*
 * Each byte of a small valid document replaced in turn by bytes that break
 * XML, names, numbers and UTF-8: the parse fails or succeeds, cleanly.
 */
static void test_damage(void)
{
	static const char doc[] =
		"<domain id='1'><name>t</name><uuid>" UUID "</uuid><memory unit='MiB'>512"
		"</memory><currentMemory>1024</currentMemory><devices><hostdev mode='subsystem' "
		"type='pci'/><channel type='unix'><source path='/run/p'/><target type='virtio' "
		"name='org.vmcg.pressure.0'/></channel></devices><metadata><v:vm "
		"xmlns:v='urn:vmcg:domain:1'><v:floor>1M</v:floor><v:memory.max>2G</v:memory.max>"
		"<v:group>/a</v:group></v:vm></metadata></domain>";
	static const char bytes[] = { '<', '>', '/', '\'', ':', '&', 'x', '9', ' ', '\0', '\xff' };
	char buf[sizeof(doc)];
	unsigned ok = 0, failed = 0;

	for (size_t i = 0; i < sizeof(doc) - 1; i++) {
		for (size_t b = 0; b < sizeof(bytes); b++) {
			g_auto(VmcgDomainXml) x = { 0 };
			g_autoptr(GError) error = NULL;

			memcpy(buf, doc, sizeof(doc));
			buf[i] = bytes[b];
			if (parse(buf, sizeof(doc) - 1, &x, &error))
				ok++;
			else
				failed++;
		}
	}
	g_test_message("%u parsed, %u failed", ok, failed);
	g_assert_cmpuint(ok, >, 0);
	g_assert_cmpuint(failed, >, 0);
}

/* <domain> and its descendants: 64 levels parse, 65 fail, half a million (3.5 MB) fail early. */
static char *nested(unsigned levels)
{
	GString *s = g_string_new("<domain><name>t</name><uuid>" UUID "</uuid><memory>1</memory>");

	for (unsigned i = 1; i < levels; i++)
		g_string_append(s, "<a>");
	for (unsigned i = 1; i < levels; i++)
		g_string_append(s, "</a>");
	g_string_append(s, "</domain>");
	return g_string_free(s, FALSE);
}

static void test_depth(void)
{
	g_autofree char *ok = nested(VMCG_DOMAIN_XML_DEPTH_MAX);
	g_autofree char *deep = nested(VMCG_DOMAIN_XML_DEPTH_MAX + 1);
	g_autofree char *deeper = nested(500000);
	g_auto(VmcgDomainXml) x = { 0 };
	g_autoptr(GError) error = NULL;

	g_assert_true(parse(ok, strlen(ok), &x, &error));
	vmcg_domain_xml_clear(&x);

	g_assert_false(parse(deep, strlen(deep), &x, &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_assert_nonnull(strstr(error->message, "elements are nested deeper than 64 levels"));
	g_clear_error(&error);

	g_assert_false(parse(deeper, strlen(deeper), &x, &error));
	g_assert_nonnull(strstr(error->message, "deeper than 64"));
	g_clear_error(&error);

	/* Deep inside vmcg's element: the limit is the document's, the parse fails. */
	{
		g_autoptr(GString) s = g_string_new(NULL);
		g_autofree char *xml = NULL;

		for (int i = 0; i < VMCG_DOMAIN_XML_DEPTH_MAX; i++)
			g_string_append(s, "<i>");
		for (int i = 0; i < VMCG_DOMAIN_XML_DEPTH_MAX; i++)
			g_string_append(s, "</i>");
		xml = g_strdup_printf(META("<vmcg:group>%s</vmcg:group>"), s->str);
		g_assert_false(parse(xml, strlen(xml), &x, &error));
		g_assert_nonnull(strstr(error->message, "deeper than 64"));
	}
}

/* At most VMCG_DOMAIN_XML_MAX_BYTES: exactly that parses, one more byte does not. */
static void test_size(void)
{
	static const char head[] = "<domain><name>t</name><uuid>" UUID "</uuid><memory>1</memory>";
	static const char tail[] = "</domain>";
	size_t len = VMCG_DOMAIN_XML_MAX_BYTES;
	g_autofree char *xml = g_malloc(len + 1);
	g_auto(VmcgDomainXml) x = { 0 };
	g_autoptr(GError) error = NULL;

	/* Padded with a comment, as other programs' metadata would be. */
	memset(xml, '-', len + 1);
	memcpy(xml, head, strlen(head));
	memcpy(xml + strlen(head), "<!--", 4);
	memcpy(xml + len - strlen(tail) - 3, "-->", 3);
	memcpy(xml + len - strlen(tail), tail, strlen(tail));
	g_assert_true(parse(xml, len, &x, &error));
	vmcg_domain_xml_clear(&x);

	xml[len] = '\n';
	g_assert_false(parse(xml, len + 1, &x, &error));
	g_assert_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
	g_assert_cmpstr(error->message, ==,
			"domain XML: 4194305 bytes, more than the 4194304 allowed");
}

/* Odd arguments and bytes. */
static void test_edges(void)
{
	static const char nul[] = "<domain><name>t\0</name></domain>";
	g_auto(VmcgDomainXml) x = { 0 };
	g_autoptr(GError) error = NULL;

	g_assert_false(parse(NULL, 0, &x, &error));
	g_clear_error(&error);
	g_assert_false(parse(NULL, 5, &x, &error));
	g_clear_error(&error);
	g_assert_false(parse(nul, sizeof(nul) - 1, &x, &error));
	g_assert_cmpstr(error->message, ==, "domain XML: a NUL byte at offset 15");
	g_clear_error(&error);

	/* The length counts, not a NUL: a valid document followed by junk. */
	{
		static const char doc[] = DOM("") "<junk";

		g_assert_true(parse(doc, strlen(DOM("")), &x, &error));
	}
}

/*
 * A tenant's metadata full of mistakes: the list stops at
 * VMCG_DOMAIN_XML_PROBLEMS_MAX plus one line that says so.
 */
static void test_problem_cap(void)
{
	g_autoptr(GString) s = g_string_new(NULL);
	g_autofree char *xml = NULL;
	g_auto(VmcgDomainXml) x = { 0 };
	g_autoptr(GError) error = NULL;

	for (int i = 0; i < 30; i++)
		g_string_append_printf(s, "<vmcg:bad%d/>", i);
	xml = g_strdup_printf(META("%s"), s->str);
	g_assert_true(parse(xml, strlen(xml), &x, &error));
	g_assert_false(x.has_meta);
	g_assert_cmpuint(x.problems->len, ==, VMCG_DOMAIN_XML_PROBLEMS_MAX + 1);
	g_assert_cmpstr(g_ptr_array_index(x.problems, 0), ==,
			"vmcg:vm: unknown element <vmcg:bad0>");
	g_assert_cmpstr(g_ptr_array_index(x.problems, VMCG_DOMAIN_XML_PROBLEMS_MAX), ==,
			"vmcg:vm: more problems, only the first 16 are listed");

	/* Exactly 16 problems, then the children's limit: it goes first, the 16th makes room. */
	vmcg_domain_xml_clear(&x);
	g_string_truncate(s, 0);
	for (int i = 0; i < VMCG_DOMAIN_XML_PROBLEMS_MAX; i++)
		g_string_append_printf(s, "<vmcg:bad%d/>", i);
	for (int i = VMCG_DOMAIN_XML_PROBLEMS_MAX; i <= VMCG_DOMAIN_XML_META_CHILDREN_MAX; i++)
		g_string_append(s, "<vmcg:floor>1M</vmcg:floor>");
	g_free(xml);
	xml = g_strdup_printf(META("%s"), s->str);
	g_assert_true(parse(xml, strlen(xml), &x, &error));
	g_assert_cmpuint(x.problems->len, ==, VMCG_DOMAIN_XML_PROBLEMS_MAX + 1);
	g_assert_cmpstr(g_ptr_array_index(x.problems, 0), ==,
			"vmcg:vm: more than 32 child elements, the rest is not read");
	g_assert_cmpstr(g_ptr_array_index(x.problems, 1), ==,
			"vmcg:vm: unknown element <vmcg:bad0>");
}

int main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/libvirt-xml/rows", test_rows);
	g_test_add_func("/libvirt-xml/realistic", test_realistic);
	g_test_add_func("/libvirt-xml/prefixes", test_prefixes);
	g_test_add_func("/libvirt-xml/damage", test_damage);
	g_test_add_func("/libvirt-xml/depth", test_depth);
	g_test_add_func("/libvirt-xml/size", test_size);
	g_test_add_func("/libvirt-xml/edges", test_edges);
	g_test_add_func("/libvirt-xml/problem-cap", test_problem_cap);
	return g_test_run();
}
