/*
 * test_config: config_load over a test-local settings struct shaped like
 * smtpd's. Tables of YAML text -> the value of one field, and YAML text ->
 * the exact error (without the temp file name). Each case writes its YAML
 * to a mkstemp file under /tmp and removes it; ASan checks that replaced
 * defaults and failed loads free everything.
 */
#include "config.h"
#include "test.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum test_bare_lf { TEST_BARE_LF_NORMALIZE, TEST_BARE_LF_REJECT };
enum test_level { TEST_DEBUG, TEST_INFO, TEST_WARN, TEST_ERROR };

struct test_settings {
	struct config_list listen;
	char *hostname;
	uint64_t max_message_size;
	uint64_t max_recipients;
	unsigned bare_lf;
	struct config_list relay_networks;
	struct config_list relay_domains;
	uint64_t timeout_command;
	uint64_t timeout_data;
	unsigned log_level;
	bool keep_delivered;
};

static const char *const test_bare_lf_names[] = {"normalize", "reject", NULL};
static const char *const test_level_names[] = {"debug", "info", "warn", "error",
					       NULL};

#define KEY(p, t, f, lo, hi, n)                                                \
	{                                                                      \
		p, t, offsetof(struct test_settings, f), lo, hi, n, NULL, NULL \
	}
static const struct config_key test_keys[] = {
    KEY("listen", CONFIG_LIST, listen, 0, 0, NULL),
    KEY("hostname", CONFIG_STRING, hostname, 0, 0, NULL),
    KEY("max_message_size", CONFIG_SIZE, max_message_size, 1024,
	1024 * 1024 * 1024, NULL),
    KEY("max_recipients", CONFIG_UINT, max_recipients, 1, 100000, NULL),
    KEY("bare_lf", CONFIG_ENUM, bare_lf, 0, 0, test_bare_lf_names),
    KEY("relay.networks", CONFIG_LIST, relay_networks, 0, 0, NULL),
    KEY("relay.domains", CONFIG_LIST, relay_domains, 0, 0, NULL),
    KEY("timeouts.command", CONFIG_DURATION, timeout_command, 1000, 3600 * 1000,
	NULL),
    KEY("timeouts.data", CONFIG_DURATION, timeout_data, 500, 2 * 3600 * 1000,
	NULL),
    KEY("log.level", CONFIG_ENUM, log_level, 0, 0, test_level_names),
    KEY("keep_delivered", CONFIG_BOOL, keep_delivered, 0, 0, NULL),
};
#define TEST_NKEYS (sizeof test_keys / sizeof test_keys[0])

static void
test_defaults(struct test_settings *s)
{
	static const char *const listen[] = {"0.0.0.0:2525"};
	static const char *const networks[] = {"127.0.0.1/32"};

	memset(s, 0, sizeof *s);
	s->hostname = strdup("mx.example.test");
	s->max_message_size = 35 * 1024 * 1024;
	s->max_recipients = 100;
	s->bare_lf = TEST_BARE_LF_NORMALIZE;
	s->timeout_command = 5 * 60 * 1000;
	s->timeout_data = 10 * 60 * 1000;
	s->log_level = TEST_INFO;
	CHECK(s->hostname != NULL);
	CHECK_INT(config_list_set(&s->listen, listen, 1), 0);
	CHECK_INT(config_list_set(&s->relay_networks, networks, 1), 0);
}

/* Writes text (len bytes) to a fresh temp file; returns its path. */
static char *
test_write(const char *text, size_t len)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof path, "/tmp/test_config-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0) {
		perror("mkstemp");
		exit(1);
	}
	if (write(fd, text, len) != (ssize_t)len || close(fd) < 0) {
		perror("write");
		exit(1);
	}
	return path;
}

/*
 * Loads text into s (defaults first). Returns config_load's result; err
 * gets the message with the "FILE:" prefix removed, checked to be there.
 */
static int
test_load(const char *text, struct test_settings *s, char *err, size_t cap)
{
	char full[CONFIG_ERR_MAX];
	char *path = test_write(text, strlen(text));
	size_t plen = strlen(path);
	int rc;

	test_defaults(s);
	full[0] = '\0';
	rc = config_load(path, test_keys, TEST_NKEYS, s, full, sizeof full);
	if (unlink(path) < 0)
		perror("unlink");
	snprintf(err, cap, "%s", full);
	if (rc < 0) {
		CHECK(strncmp(full, path, plen) == 0 && full[plen] == ':');
		if (strncmp(full, path, plen) == 0 && full[plen] == ':')
			snprintf(err, cap, "%s", full + plen + 1);
	}
	return rc;
}

static void
test_list_render(char *dst, size_t cap, const struct config_list *l)
{
	size_t o = (size_t)snprintf(dst, cap, "[");

	for (size_t i = 0; i < l->count && o < cap; i++)
		o += (size_t)snprintf(dst + o, cap - o, "%s%s", i ? "," : "",
				      l->items[i]);
	if (o < cap)
		snprintf(dst + o, cap - o, "]");
}

/* One field of s as text, so one table covers every type. */
static void
test_render(char *dst, size_t cap, const struct test_settings *s,
	    const char *field)
{
	if (strcmp(field, "listen") == 0)
		test_list_render(dst, cap, &s->listen);
	else if (strcmp(field, "relay.networks") == 0)
		test_list_render(dst, cap, &s->relay_networks);
	else if (strcmp(field, "relay.domains") == 0)
		test_list_render(dst, cap, &s->relay_domains);
	else if (strcmp(field, "hostname") == 0)
		snprintf(dst, cap, "%s", s->hostname ? s->hostname : "(null)");
	else if (strcmp(field, "max_message_size") == 0)
		snprintf(dst, cap, "%" PRIu64, s->max_message_size);
	else if (strcmp(field, "max_recipients") == 0)
		snprintf(dst, cap, "%" PRIu64, s->max_recipients);
	else if (strcmp(field, "bare_lf") == 0)
		snprintf(dst, cap, "%s", test_bare_lf_names[s->bare_lf]);
	else if (strcmp(field, "timeouts.command") == 0)
		snprintf(dst, cap, "%" PRIu64, s->timeout_command);
	else if (strcmp(field, "timeouts.data") == 0)
		snprintf(dst, cap, "%" PRIu64, s->timeout_data);
	else if (strcmp(field, "log.level") == 0)
		snprintf(dst, cap, "%s", test_level_names[s->log_level]);
	else if (strcmp(field, "keep_delivered") == 0)
		snprintf(dst, cap, "%s", s->keep_delivered ? "true" : "false");
	else
		snprintf(dst, cap, "(no field %s)", field);
}

struct test_valid {
	const char *yaml;
	const char *field;
	const char *want;
};

static const struct test_valid test_valid_cases[] = {
    /* defaults stay when the file does not name the key */
    {"", "hostname", "mx.example.test"},
    {"", "listen", "[0.0.0.0:2525]"},
    {"", "relay.networks", "[127.0.0.1/32]"},
    {"", "relay.domains", "[]"},
    {"", "max_message_size", "36700160"},
    {"# only a comment\n\n   # and another\n", "timeouts.data", "600000"},
    {"---\n", "log.level", "info"},
    {"---\n...\n", "max_recipients", "100"},
    {"~\n", "bare_lf", "normalize"},
    {"hostname: mx1.example.org\n", "max_recipients", "100"},
    /* STRING */
    {"hostname: mx1.example.org\n", "hostname", "mx1.example.org"},
    {"hostname: 'quoted: yes'\n", "hostname", "quoted: yes"},
    {"hostname: \"~\"\n", "hostname", "~"},
    {"hostname: ''\n", "hostname", ""},
    {"hostname: 12345\n", "hostname", "12345"},
    {"hostname: caf\xc3\xa9.example\n", "hostname", "caf\xc3\xa9.example"},
    /* UINT */
    {"max_recipients: 1\n", "max_recipients", "1"},
    {"max_recipients: 100000\n", "max_recipients", "100000"},
    {"max_recipients: 0042\n", "max_recipients", "42"},
    {"max_recipients: '500'\n", "max_recipients", "500"},
    /* SIZE */
    {"max_message_size: 1024\n", "max_message_size", "1024"},
    {"max_message_size: 2048b\n", "max_message_size", "2048"},
    {"max_message_size: 2048B\n", "max_message_size", "2048"},
    {"max_message_size: 10k\n", "max_message_size", "10240"},
    {"max_message_size: 10K\n", "max_message_size", "10240"},
    {"max_message_size: 10KiB\n", "max_message_size", "10240"},
    {"max_message_size: 35M\n", "max_message_size", "36700160"},
    {"max_message_size: 35m\n", "max_message_size", "36700160"},
    {"max_message_size: 35 MiB\n", "max_message_size", "36700160"},
    {"max_message_size: 1G\n", "max_message_size", "1073741824"},
    {"max_message_size: 1g\n", "max_message_size", "1073741824"},
    {"max_message_size: 1GiB\n", "max_message_size", "1073741824"},
    /* DURATION: a bare number is seconds */
    {"timeouts:\n  command: 30\n", "timeouts.command", "30000"},
    {"timeouts:\n  command: 30s\n", "timeouts.command", "30000"},
    {"timeouts:\n  command: 1000ms\n", "timeouts.command", "1000"},
    {"timeouts:\n  command: 5m\n", "timeouts.command", "300000"},
    {"timeouts:\n  command: 1h\n", "timeouts.command", "3600000"},
    {"timeouts:\n  data: 500ms\n", "timeouts.data", "500"},
    {"timeouts:\n  data: 2h\n", "timeouts.data", "7200000"},
    {"timeouts: {data: 90 s}\n", "timeouts.data", "90000"},
    {"timeouts:\n  command: 2m\n  data: 3m\n", "timeouts.data", "180000"},
    {"timeouts:\n  command: 2m\n  data: 3m\n", "timeouts.command", "120000"},
    /* a dotted key names the same path as nesting */
    {"timeouts.command: 45s\n", "timeouts.command", "45000"},
    /* a section left empty (all its keys commented out) */
    {"timeouts:\n  # command: 1m\n", "timeouts.command", "300000"},
    /* BOOL */
    {"keep_delivered: true\n", "keep_delivered", "true"},
    {"keep_delivered: TRUE\n", "keep_delivered", "true"},
    {"keep_delivered: yes\n", "keep_delivered", "true"},
    {"keep_delivered: On\n", "keep_delivered", "true"},
    {"keep_delivered: false\n", "keep_delivered", "false"},
    {"keep_delivered: No\n", "keep_delivered", "false"},
    {"keep_delivered: off\n", "keep_delivered", "false"},
    /* ENUM, case-insensitive */
    {"bare_lf: reject\n", "bare_lf", "reject"},
    {"bare_lf: Normalize\n", "bare_lf", "normalize"},
    {"log:\n  level: debug\n", "log.level", "debug"},
    {"log:\n  level: ERROR\n", "log.level", "error"},
    {"log: {level: warn}\n", "log.level", "warn"},
    /* LIST: block, flow, one scalar, empty; replaces the default */
    {"listen:\n  - 0.0.0.0:25\n  - '[::]:25'\n", "listen",
     "[0.0.0.0:25,[::]:25]"},
    {"listen: [127.0.0.1:2525, 127.0.0.2:2525]\n", "listen",
     "[127.0.0.1:2525,127.0.0.2:2525]"},
    {"listen: 127.0.0.1:2525\n", "listen", "[127.0.0.1:2525]"},
    {"listen: []\n", "listen", "[]"},
    {"relay:\n  networks: []\n", "relay.networks", "[]"},
    {"relay:\n  networks:\n    - 10.0.0.0/8\n    - 192.168.0.0/16\n",
     "relay.networks", "[10.0.0.0/8,192.168.0.0/16]"},
    {"relay:\n  domains: [example.org]\n  networks: [10.0.0.0/8]\n",
     "relay.domains", "[example.org]"},
    {"relay:\n  domains: [example.org]\n  networks: [10.0.0.0/8]\n",
     "relay.networks", "[10.0.0.0/8]"},
    {"relay.domains: example.net\n", "relay.domains", "[example.net]"},
    /* the same section name may hold a dotted and a nested key */
    {"relay.domains: [a.example]\nrelay:\n  networks: [10.0.0.0/8]\n",
     "relay.domains", "[a.example]"},
    /* CRLF line ends */
    {"hostname: a.example\r\nmax_recipients: 7\r\n", "max_recipients", "7"},
    /* a whole config file */
    {"# smtpd\nlisten: [0.0.0.0:25]\nhostname: mx.example.org\n"
     "max_message_size: 50M\nmax_recipients: 1000\nbare_lf: reject\n"
     "relay:\n  networks: [10.0.0.0/8]\n  domains: [example.org]\n"
     "timeouts:\n  command: 5m\n  data: 10m\nlog:\n  level: warn\n"
     "keep_delivered: yes\n",
     "max_message_size", "52428800"},
};

/* Errors, without the leading "FILE:". */
struct test_error {
	const char *yaml;
	const char *want;
};

static const struct test_error test_error_cases[] = {
    /* top level */
    {"just a scalar\n",
     "1:1: the top level must be a mapping of settings, got 'just a "
     "scalar'"},
    {"- listen\n",
     "1:1: the top level must be a mapping of settings, got a list"},
    {"hostname: a\n---\nhostname: b\n",
     "2:1: only one YAML document is allowed"},
    /* unknown keys point at the key */
    {"hostnme: mx\n", "1:1: unknown key 'hostnme'"},
    {"timeouts:\n  comand: 30s\n", "2:3: unknown key 'timeouts.comand'"},
    {"relay:\n  networks: []\n  domain: [a]\n",
     "3:3: unknown key 'relay.domain'"},
    {"log:\n  level:\n    name: info\n",
     "3:5: log.level: expected a name, got a mapping"},
    {"hostname:\n  name: x\n", "2:3: hostname: expected a string, got a "
			       "mapping"},
    {"timeouts.command.x: 1\n", "1:1: unknown key 'timeouts.command.x'"},
    {"level: info\n", "1:1: unknown key 'level'"},
    {"? [a, b]\n: c\n", "1:3: keys must be names, got a list"},
    /* duplicates, also across nesting and dotted spelling */
    {"hostname: a\nhostname: b\n", "2:1: duplicate key 'hostname'"},
    {"timeouts:\n  command: 1m\ntimeouts:\n  data: 1m\n",
     "3:1: duplicate key 'timeouts'"},
    {"timeouts:\n  command: 1m\n  command: 2m\n",
     "3:3: duplicate key 'timeouts.command'"},
    {"timeouts:\n  command: 1m\ntimeouts.command: 2m\n",
     "3:1: duplicate key 'timeouts.command'"},
    /* a scalar or list where a section's mapping is expected */
    {"timeouts: 5\n", "1:11: timeouts: expected a mapping, got '5'"},
    {"relay: [a]\n", "1:8: relay: expected a mapping, got a list"},
    /* STRING */
    {"hostname: ~\n", "1:11: hostname: expected a string, got null"},
    {"hostname: null\n", "1:11: hostname: expected a string, got null"},
    {"hostname:\n", "1:10: hostname: expected a string, got null"},
    {"hostname: [a]\n", "1:11: hostname: expected a string, got a list"},
    /* NUL bytes would end the value early in C string code */
    {"hostname: \"a\\0b\"\n", "1:11: NUL bytes are not allowed"},
    {"keep_delivered: \"yes\\0no\"\n", "1:17: NUL bytes are not allowed"},
    {"\"hostname\\0x\": a\n", "1:1: NUL bytes are not allowed"},
    /* UINT */
    {"max_recipients: 0\n",
     "1:17: max_recipients: must be between 1 and 100000, got 0"},
    {"max_recipients: 100001\n",
     "1:17: max_recipients: must be between 1 and 100000, got 100001"},
    {"max_recipients: 18446744073709551616\n",
     "1:17: max_recipients: must be between 1 and 100000, got "
     "18446744073709551616"},
    {"max_recipients: -1\n",
     "1:17: max_recipients: expected a whole number, got '-1'"},
    {"max_recipients: +5\n",
     "1:17: max_recipients: expected a whole number, got '+5'"},
    {"max_recipients: 0x10\n",
     "1:17: max_recipients: expected a whole number, got '0x10'"},
    {"max_recipients: 1.5\n",
     "1:17: max_recipients: expected a whole number, got '1.5'"},
    {"max_recipients: 10k\n",
     "1:17: max_recipients: expected a whole number, got '10k'"},
    {"max_recipients:\n",
     "1:16: max_recipients: expected a whole number, got null"},
    /* SIZE */
    {"max_message_size: 1023\n",
     "1:19: max_message_size: must be between 1K and 1G, got 1023"},
    {"max_message_size: 1025M\n",
     "1:19: max_message_size: must be between 1K and 1G, got 1025M"},
    {"max_message_size: 99999999999999999G\n",
     "1:19: max_message_size: must be between 1K and 1G, got "
     "99999999999999999G"},
    {"max_message_size: 10 T\n",
     "1:19: max_message_size: expected a size like 512, 64k, 10M, 1G, "
     "got '10 T'"},
    {"max_message_size: 10KB\n",
     "1:19: max_message_size: expected a size like 512, 64k, 10M, 1G, "
     "got '10KB'"},
    {"max_message_size: M\n",
     "1:19: max_message_size: expected a size like 512, 64k, 10M, 1G, "
     "got 'M'"},
    {"max_message_size: '10 '\n",
     "1:19: max_message_size: expected a size like 512, 64k, 10M, 1G, "
     "got '10 '"},
    /* DURATION */
    {"timeouts:\n  command: abc\n",
     "2:12: timeouts.command: expected a duration like 30s, 5m, 1h, got "
     "'abc'"},
    {"timeouts:\n  command: 5M\n",
     "2:12: timeouts.command: expected a duration like 30s, 5m, 1h, got "
     "'5M'"},
    {"timeouts:\n  command: -5s\n",
     "2:12: timeouts.command: expected a duration like 30s, 5m, 1h, got "
     "'-5s'"},
    {"timeouts:\n  command: 999ms\n",
     "2:12: timeouts.command: must be between 1s and 1h, got 999ms"},
    {"timeouts:\n  command: 61m\n",
     "2:12: timeouts.command: must be between 1s and 1h, got 61m"},
    {"timeouts:\n  data: 499ms\n",
     "2:9: timeouts.data: must be between 500ms and 2h, got 499ms"},
    {"timeouts:\n  data: 99999999999999999d\n",
     "2:9: timeouts.data: must be between 500ms and 2h, got "
     "99999999999999999d"},
    {"timeouts:\n  data: [1m]\n",
     "2:9: timeouts.data: expected a duration, got a list"},
    /* BOOL */
    {"keep_delivered: maybe\n",
     "1:17: keep_delivered: expected true or false (or yes/no, on/off), "
     "got 'maybe'"},
    {"keep_delivered: 1\n",
     "1:17: keep_delivered: expected true or false (or yes/no, on/off), "
     "got '1'"},
    {"keep_delivered: ~\n",
     "1:17: keep_delivered: expected true or false (or yes/no, on/off), "
     "got null"},
    /* ENUM lists the allowed names */
    {"bare_lf: strip\n",
     "1:10: bare_lf: expected one of normalize|reject, got 'strip'"},
    {"bare_lf: norm\n",
     "1:10: bare_lf: expected one of normalize|reject, got 'norm'"},
    {"log:\n  level: verbose\n",
     "2:10: log.level: expected one of debug|info|warn|error, got "
     "'verbose'"},
    /* LIST */
    {"listen:\n", "1:8: listen: expected a list, got null (write [] for "
		  "an empty list)"},
    {"listen:\n  a: b\n", "2:3: listen: expected a list, got a mapping "
			  "(write [] for an empty list)"},
    {"listen:\n  - a\n  - [b, c]\n",
     "3:5: listen: list items must be strings, got a list"},
    {"relay:\n  domains:\n    - a\n    - {b: c}\n",
     "4:7: relay.domains: list items must be strings, got a mapping"},
    {"relay:\n  domains: [a, ~]\n",
     "2:16: relay.domains: expected a string, got null"},
    /* anchors, aliases and tags are not supported */
    {"hostname: &h mx\n", "1:11: anchors (&name) are not supported"},
    {"relay:\n  domains: &d [a]\n  networks: *d\n",
     "2:12: anchors (&name) are not supported"},
    {"listen: [a, *b]\n", "1:13: aliases (*name) are not supported"},
    {"hostname: !!str mx\n", "1:11: tags (!tag) are not supported"},
    /* syntax errors carry libyaml's problem and mark */
    {"hostname: 'mx.example\n",
     "2:1: found unexpected end of stream while scanning a quoted "
     "scalar (line 1, column 11)"},
    {"hostname: mx\n  bad: indent\n",
     "2:6: mapping values are not allowed in this context"},
    {"timeouts:\n  command: 1m\n data: 2m\n",
     "3:2: did not find expected key while parsing a block mapping "
     "(line 1, column 1)"},
    {"listen: [a, b\n",
     "2:1: did not find expected ',' or ']' while parsing a flow "
     "sequence (line 1, column 9)"},
    {"hostname: mx\n\tlisten: a\n",
     "2:1: found a tab character that violates indentation while "
     "scanning a plain scalar (line 1, column 11)"},
    {"hostname: m\xffx\n", "1:12: invalid leading UTF-8 octet (byte 0xff)"},
    {"listen: [a]\nhostname: caf\xc3\xa9\x01\n",
     "2:15: control characters are not allowed (byte 0x01)"},
};

static void
test_valid(void)
{
	const size_t n = sizeof test_valid_cases / sizeof test_valid_cases[0];
	char err[CONFIG_ERR_MAX], got[256];
	struct test_settings s;

	for (size_t i = 0; i < n; i++) {
		const struct test_valid *c = &test_valid_cases[i];
		int rc = test_load(c->yaml, &s, err, sizeof err);
		if (rc != 0)
			fprintf(stderr, "case %zu: %s\n", i, err);
		CHECK_INT(rc, 0);
		CHECK_STR(err, "");
		test_render(got, sizeof got, &s, c->field);
		CHECK_STR(got, c->want);
		config_free(test_keys, TEST_NKEYS, &s);
	}
}

static void
test_errors(void)
{
	const size_t n = sizeof test_error_cases / sizeof test_error_cases[0];
	char err[CONFIG_ERR_MAX];
	struct test_settings s;

	for (size_t i = 0; i < n; i++) {
		const struct test_error *c = &test_error_cases[i];
		CHECK_INT(test_load(c->yaml, &s, err, sizeof err), -1);
		CHECK_STR(err, c->want);
		config_free(test_keys, TEST_NKEYS, &s);
	}
}

/* Strings and lists at their limits and one past. */
static void
test_limits(void)
{
	static char yaml[CONFIG_STRING_MAX + 4096];
	char err[CONFIG_ERR_MAX];
	struct test_settings s;
	size_t o;

	o = (size_t)snprintf(yaml, sizeof yaml, "hostname: ");
	memset(yaml + o, 'a', CONFIG_STRING_MAX);
	strcpy(yaml + o + CONFIG_STRING_MAX, "\n");
	CHECK_INT(test_load(yaml, &s, err, sizeof err), 0);
	CHECK_INT(strlen(s.hostname), CONFIG_STRING_MAX);
	config_free(test_keys, TEST_NKEYS, &s);

	strcpy(yaml + o + CONFIG_STRING_MAX, "a\n");
	CHECK_INT(test_load(yaml, &s, err, sizeof err), -1);
	CHECK_STR(err, "1:11: hostname: longer than 1024 bytes");
	config_free(test_keys, TEST_NKEYS, &s);

	o = (size_t)snprintf(yaml, sizeof yaml, "relay:\n  domains:\n");
	for (int i = 0; i < CONFIG_LIST_MAX; i++)
		o += (size_t)snprintf(yaml + o, sizeof yaml - o,
				      "    - d%d.example\n", i);
	CHECK_INT(test_load(yaml, &s, err, sizeof err), 0);
	CHECK_INT(s.relay_domains.count, CONFIG_LIST_MAX);
	CHECK_STR(s.relay_domains.items[CONFIG_LIST_MAX - 1], "d63.example");
	config_free(test_keys, TEST_NKEYS, &s);

	snprintf(yaml + o, sizeof yaml - o, "    - one.too.many\n");
	CHECK_INT(test_load(yaml, &s, err, sizeof err), -1);
	CHECK_STR(err, "67:7: relay.domains: more than 64 items");
	config_free(test_keys, TEST_NKEYS, &s);

	/* keys longer than any path, values longer than a message shows */
	o = (size_t)snprintf(yaml, sizeof yaml, "timeouts:\n  ");
	memset(yaml + o, 'k', 300);
	strcpy(yaml + o + 300, ": 1\n");
	CHECK_INT(test_load(yaml, &s, err, sizeof err), -1);
	CHECK_STR(err, "2:3: unknown key 'timeouts.kkkkkkkkkkkkkkkkkkkkkkkkk"
		       "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'");
	config_free(test_keys, TEST_NKEYS, &s);
	o = (size_t)snprintf(yaml, sizeof yaml, "bare_lf: ");
	memset(yaml + o, 'v', 300);
	strcpy(yaml + o + 300, "\n");
	CHECK_INT(test_load(yaml, &s, err, sizeof err), -1);
	CHECK_STR(err, "1:10: bare_lf: expected one of normalize|reject, got "
		       "'vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
		       "vvvvvvvvvv...'");
	config_free(test_keys, TEST_NKEYS, &s);
}

/* Files that cannot be read, or are too large to be a config file. */
static void
test_files(void)
{
	static char big[1024 * 1024 + 2];
	char err[CONFIG_ERR_MAX], want[CONFIG_ERR_MAX];
	struct test_settings s;
	char *path;

	test_defaults(&s);
	CHECK_INT(config_load("/nonexistent/smtpd.yaml", test_keys, TEST_NKEYS,
			      &s, err, sizeof err),
		  -1);
	CHECK_STR(err, "/nonexistent/smtpd.yaml: No such file or directory");
	CHECK_INT(
	    config_load("/tmp", test_keys, TEST_NKEYS, &s, err, sizeof err),
	    -1);
	CHECK_STR(err, "/tmp: Is a directory");
	CHECK_STR(s.hostname, "mx.example.test");

	memset(big, '#', sizeof big - 1);
	big[1024 * 1024 - 1] = '\n'; /* exactly the limit: all comment */
	path = test_write(big, 1024 * 1024);
	CHECK_INT(config_load(path, test_keys, TEST_NKEYS, &s, err, sizeof err),
		  0);
	unlink(path);
	path = test_write(big, sizeof big - 1);
	CHECK_INT(config_load(path, test_keys, TEST_NKEYS, &s, err, sizeof err),
		  -1);
	snprintf(want, sizeof want, "%s: larger than 1048576 bytes", path);
	CHECK_STR(err, want);
	unlink(path);
	config_free(test_keys, TEST_NKEYS, &s);
}

/* A failed load may leave earlier values set; config_free takes them. */
static void
test_partial(void)
{
	char err[CONFIG_ERR_MAX];
	struct test_settings s;

	CHECK_INT(test_load("hostname: new.example\nlisten: [a, b]\n"
			    "relay:\n  domains: [x, y, ~]\n",
			    &s, err, sizeof err),
		  -1);
	CHECK_STR(err, "4:19: relay.domains: expected a string, got null");
	CHECK_STR(s.hostname, "new.example");
	CHECK_INT(s.listen.count, 2);
	CHECK_INT(s.relay_domains.count, 0); /* the bad list is not stored */
	config_free(test_keys, TEST_NKEYS, &s);
	CHECK(s.hostname == NULL);
	CHECK(s.listen.items == NULL);
	CHECK_INT(s.listen.count, 0);
	CHECK(s.relay_networks.items == NULL);
	CHECK_INT(s.relay_networks.count, 0);
	/* freeing twice is harmless */
	config_free(test_keys, TEST_NKEYS, &s);
}

/* Loading twice replaces (and frees) what the first load stored. */
static void
test_reload(void)
{
	char err[CONFIG_ERR_MAX];
	struct test_settings s;
	char *path;

	CHECK_INT(test_load("hostname: one\nlisten: [a, b, c]\n", &s, err,
			    sizeof err),
		  0);
	path = test_write("hostname: two\nlisten: d\n", 24);
	CHECK_INT(config_load(path, test_keys, TEST_NKEYS, &s, err, sizeof err),
		  0);
	unlink(path);
	CHECK_STR(s.hostname, "two");
	CHECK_INT(s.listen.count, 1);
	CHECK_STR(s.listen.items[0], "d");
	config_free(test_keys, TEST_NKEYS, &s);
}

static void
test_list_set(void)
{
	static const char *const three[] = {"a", "b", "c"};
	struct config_list l = {0};

	CHECK_INT(config_list_set(&l, three, 3), 0);
	CHECK_INT(l.count, 3);
	CHECK_STR(l.items[2], "c");
	CHECK(l.items[0] != three[0]); /* copies, not the literals */
	CHECK_INT(config_list_set(&l, three + 1, 1), 0);
	CHECK_INT(l.count, 1);
	CHECK_STR(l.items[0], "b");
	/* may be given its own items */
	CHECK_INT(config_list_set(&l, (const char *const *)l.items, l.count),
		  0);
	CHECK_STR(l.items[0], "b");
	CHECK_INT(config_list_set(&l, NULL, 0), 0);
	CHECK(l.items == NULL);
	CHECK_INT(l.count, 0);
}

/* A value check: only strings starting with "ok". */
static int
test_check_ok(const char *v, char *msg, size_t cap)
{
	if (strncmp(v, "ok", 2) == 0)
		return 0;
	snprintf(msg, cap, "'%s' does not start with ok", v);
	return -1;
}

struct checked_settings {
	char *name;
	struct config_list items;
};

static void
test_key_check(void)
{
	static const struct config_key keys[] = {
	    {"name", CONFIG_STRING, offsetof(struct checked_settings, name), 0,
	     0, NULL, test_check_ok, NULL},
	    {"items", CONFIG_LIST, offsetof(struct checked_settings, items), 0,
	     0, NULL, test_check_ok, NULL},
	};
	static const struct {
		const char *yaml;
		int rc;
		const char *err; /* after "FILE:" */
	} cases[] = {
	    {"name: okay\nitems: [ok1, ok2]\n", 0, ""},
	    {"name: bad\n", -1, "1:7: name: 'bad' does not start with ok"},
	    {"items:\n  - ok\n  - nope\n", -1,
	     "3:5: items: 'nope' does not start with ok"},
	    {"items: nope\n", -1, "1:8: items: 'nope' does not start with ok"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct checked_settings cs = {0};
		char err[CONFIG_ERR_MAX] = "";
		char *path = test_write(cases[i].yaml, strlen(cases[i].yaml));
		int rc = config_load(path, keys, 2, &cs, err, sizeof err);
		CHECK_INT(rc, cases[i].rc);
		const char *colon = strchr(err, ':');
		CHECK_STR(colon ? colon + 1 : err, cases[i].err);
		unlink(path);
		config_free(keys, 2, &cs);
	}
}

struct table_settings {
	struct config_table listen;
	struct config_table policy;
};

static const char *const test_roles[] = {"mx", "submission", NULL};
static const char *const test_modes[] = {"none", "may", "encrypt", "verify",
					 NULL};
static const struct config_field test_listen_fields[] = {
    {"address", NULL, test_check_ok},
    {"role", test_roles, NULL},
    {"tls", NULL, NULL},
    {NULL, NULL, NULL},
};
/* A field with names and a check: both apply. */
static int
test_check_not_none(const char *v, char *msg, size_t cap)
{
	if (strcmp(v, "none") != 0)
		return 0;
	snprintf(msg, cap, "none is not allowed here");
	return -1;
}

static const struct config_field test_policy_fields[] = {
    {"domain", NULL, test_check_ok},
    {"mode", test_modes, test_check_not_none},
    {NULL, NULL, NULL},
};
static const struct config_key test_table_keys[] = {
    {"listen", CONFIG_TABLE, offsetof(struct table_settings, listen), 0, 0,
     NULL, NULL, test_listen_fields},
    {"tls.policy", CONFIG_MAP, offsetof(struct table_settings, policy), 0, 0,
     NULL, NULL, test_policy_fields},
};

/* Rows as "a,b,-|..." ('-' for a cell left out). */
static void
test_table_render(char *dst, size_t cap, const struct config_table *t)
{
	size_t o = 0;

	dst[0] = '\0';
	for (size_t r = 0; r < t->rows && o < cap; r++)
		for (size_t c = 0; c < t->cols && o < cap; c++) {
			const char *v = config_cell(t, r, c);
			o += (size_t)snprintf(
			    dst + o, cap - o, "%s%s%s", v ? v : "-",
			    c + 1 < t->cols ? "," : "",
			    c + 1 == t->cols && r + 1 < t->rows ? "|" : "");
		}
}

static void
test_tables(void)
{
	static const struct {
		const char *yaml;
		const char *listen; /* rendered, or the error after "FILE:" */
		const char *policy;
	} cases[] = {
	    {"listen: ok1\n", "ok1,-,-", "ex.org,may"},
	    {"listen: [ok1, {address: ok2, role: Submission, tls: x}]\n",
	     "ok1,-,-|ok2,submission,x", "ex.org,may"},
	    {"listen:\n  - address: ok3\n    tls: implicit\n", "ok3,-,implicit",
	     "ex.org,may"},
	    {"listen: []\ntls:\n  policy:\n", "", ""},
	    {"tls.policy: {ok.a: verify, ok.b: ENCRYPT}\n", "ok0,-,-",
	     "ok.a,verify|ok.b,encrypt"},
	    /* errors */
	    {"listen: bad\n", "1:9: listen: 'bad' does not start with ok",
	     NULL},
	    {"listen:\n",
	     "1:8: listen: expected a list, got null (write [] "
	     "for an empty list)",
	     NULL},
	    {"listen: [{role: mx}]\n", "1:10: listen: an entry needs 'address'",
	     NULL},
	    {"listen: [{address: ok, port: 1}]\n",
	     "1:24: listen: unknown field 'port' (fields: address, role, tls)",
	     NULL},
	    {"listen: [{address: ok, address: ok2}]\n",
	     "1:24: listen: duplicate field 'address'", NULL},
	    {"listen: [{address: ok, role: relay}]\n",
	     "1:30: listen: role: expected one of mx|submission, got 'relay'",
	     NULL},
	    {"listen: [{address: [ok]}]\n",
	     "1:20: listen: address: expected a string, got a list", NULL},
	    {"listen: [[ok]]\n",
	     "1:10: listen: items must be strings or mappings, got a list",
	     NULL},
	    {"tls.policy: [ok]\n",
	     "1:13: tls.policy: expected a mapping, got a list", NULL},
	    {"tls.policy: {ok.a: may, OK.A: verify}\n",
	     "1:25: tls.policy: duplicate name 'ok.a'", NULL},
	    {"tls.policy: {ok.a: sometimes}\n",
	     "1:20: tls.policy: mode: expected one of "
	     "none|may|encrypt|verify, got 'sometimes'",
	     NULL},
	    {"tls.policy: {ok.a: NONE}\n",
	     "1:20: tls.policy: none is not allowed here", NULL},
	    {"tls.policy: {x.org: may}\n",
	     "1:14: tls.policy: 'x.org' does not start with ok", NULL},
	};
	static const char *const listen0[] = {"ok0", NULL, NULL};
	static const char *const policy0[] = {"ex.org", "may"};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct table_settings ts = {0};
		char err[CONFIG_ERR_MAX] = "", got[256];
		char *path = test_write(cases[i].yaml, strlen(cases[i].yaml));
		CHECK_INT(config_table_set(&ts.listen, 3, listen0, 1), 0);
		CHECK_INT(config_table_set(&ts.policy, 2, policy0, 1), 0);
		int rc =
		    config_load(path, test_table_keys, 2, &ts, err, sizeof err);
		if (cases[i].policy == NULL) {
			const char *colon = strchr(err, ':');
			CHECK_INT(rc, -1);
			CHECK_STR(colon ? colon + 1 : err, cases[i].listen);
		} else {
			CHECK_INT(rc, 0);
			CHECK_STR(err, "");
			test_table_render(got, sizeof got, &ts.listen);
			CHECK_STR(got, rc == 0 && strstr(cases[i].yaml,
							 "listen") == NULL
					   ? "ok0,-,-"
					   : cases[i].listen);
			test_table_render(got, sizeof got, &ts.policy);
			CHECK_STR(got, cases[i].policy);
		}
		unlink(path);
		config_free(test_table_keys, 2, &ts);
		CHECK(ts.listen.cells == NULL && ts.policy.cells == NULL);
	}
}

/* More than CONFIG_TABLE_MAX map entries is an error, not a truncation. */
static void
test_table_limit(void)
{
	size_t cap = (CONFIG_TABLE_MAX + 1) * 16 + 32, o = 0;
	char *yaml = malloc(cap), err[CONFIG_ERR_MAX];
	struct table_settings ts = {0};

	CHECK(yaml != NULL);
	o += (size_t)snprintf(yaml, cap, "tls:\n  policy:\n");
	for (int i = 0; i <= CONFIG_TABLE_MAX; i++)
		o += (size_t)snprintf(yaml + o, cap - o, "    ok%d: may\n", i);
	char *path = test_write(yaml, o);
	CHECK_INT(config_load(path, test_table_keys, 2, &ts, err, sizeof err),
		  -1);
	CHECK(strstr(err, "tls.policy: more than 1024 entries") != NULL);
	CHECK_INT(ts.policy.rows, 0);
	unlink(path);
	free(yaml);
	config_free(test_table_keys, 2, &ts);
}

int
main(void)
{
	test_key_check();
	test_tables();
	test_table_limit();
	test_valid();
	test_errors();
	test_limits();
	test_files();
	test_partial();
	test_reload();
	test_list_set();
	return test_summary();
}
