/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Messages a real QEMU sent, shared by the QMP tests. */
#ifndef VMCG_TESTS_QMP_REAL_H
#define VMCG_TESTS_QMP_REAL_H

/* What QEMU 7.2 (Debian 1:7.2+dfsg-7+deb12u18) really sent. */
#define REAL_GREETING                                                                      \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, " \
	"\"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define REAL_STATUS                                                                     \
	"{\"return\": {\"status\": \"prelaunch\", \"singlestep\": false, \"running\": " \
	"false}, \"id\": \"vmcg-1\"}\r\n"
#define REAL_NOT_FOUND                                                                      \
	"{\"id\": \"vmcg-3\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The " \
	"command nonexistent has not been found\"}}\r\n"
#define REAL_PARSE_ERROR                                                                     \
	"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting " \
	"value\"}}\r\n"
#define REAL_SHUTDOWN                                                                      \
	"{\"timestamp\": {\"seconds\": 1795638696, \"microseconds\": 744823}, \"event\": " \
	"\"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}\r\n"
#define REAL_STOP                                                                          \
	"{\"timestamp\": {\"seconds\": 1795638696, \"microseconds\": 544461}, \"event\": " \
	"\"STOP\"}\r\n"

#endif
