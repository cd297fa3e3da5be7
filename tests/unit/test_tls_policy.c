/*
 * tls_policy: which tls.policy entry applies to a domain (exact beats a
 * dot entry, longer dot entries beat shorter ones, case and a trailing
 * dot do not matter), the level it gives, and which names the
 * configuration accepts. Tables of input -> expected.
 */
#include "test.h"

#include "tls_policy.h"

/* A policy built from literal rows (name, level), as config_load()
 * would store it. */
static void
test_policy(struct config_table *t, const char *const *cells, size_t rows)
{
	memset(t, 0, sizeof *t);
	CHECK_INT(config_table_set(t, 2, cells, rows), 0);
}

static void
test_table_free(struct config_table *t)
{
	for (size_t i = 0; i < t->rows * t->cols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static void
test_lookup(void)
{
	static const char *const rows[] = {
	    "example.com",
	    "verify", /* 0 */
	    ".example.com",
	    "encrypt", /* 1 */
	    ".sub.example.com",
	    "none", /* 2 */
	    "sub.example.com",
	    "may", /* 3 */
	    ".org",
	    "encrypt", /* 4 */
	    "Mixed.Case.NET",
	    "verify", /* 5 */
	    ".a.b.c.example.com",
	    "may", /* 6 */
	};
	static const struct {
		const char *domain;
		long row; /* -1: none applies */
		enum tls_level level;
	} cases[] = {
	    /* an exact entry */
	    {"example.com", 0, TLS_LEVEL_VERIFY},
	    {"EXAMPLE.COM", 0, TLS_LEVEL_VERIFY},
	    {"example.com.", 0, TLS_LEVEL_VERIFY},
	    {"mixed.case.net", 5, TLS_LEVEL_VERIFY},
	    /* the exact entry beats the dot entries it is under */
	    {"sub.example.com", 3, TLS_LEVEL_MAY},
	    /* a dot entry names the domains under it */
	    {"mx.example.com", 1, TLS_LEVEL_ENCRYPT},
	    {"a.b.example.com", 1, TLS_LEVEL_ENCRYPT},
	    {"x.sub.example.com", 2, TLS_LEVEL_NONE}, /* longer wins */
	    {"y.x.sub.example.com", 2, TLS_LEVEL_NONE},
	    {"X.SUB.Example.Com", 2, TLS_LEVEL_NONE},
	    {"d.a.b.c.example.com", 6, TLS_LEVEL_MAY},
	    {"c.example.com", 1, TLS_LEVEL_ENCRYPT},
	    {"example.org", 4, TLS_LEVEL_ENCRYPT},
	    {"a.example.org.", 4, TLS_LEVEL_ENCRYPT},
	    /* ... and only on a label boundary, never the parent itself */
	    {"notexample.com", -1, TLS_LEVEL_MAY},
	    {"xexample.com", -1, TLS_LEVEL_MAY},
	    {"org", -1, TLS_LEVEL_MAY},
	    {"example.com.evil.net", -1, TLS_LEVEL_MAY},
	    {"example.co", -1, TLS_LEVEL_MAY},
	    {"com", -1, TLS_LEVEL_MAY},
	    {"", -1, TLS_LEVEL_MAY},
	    {".", -1, TLS_LEVEL_MAY},
	    {"[192.0.2.1]", -1, TLS_LEVEL_MAY},
	    {"case.net", -1, TLS_LEVEL_MAY},
	};
	struct config_table t;

	test_policy(&t, rows, sizeof rows / sizeof rows[0] / 2);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *rule = "unset";
		long row = tls_policy_find(&t, cases[i].domain);
		if (row != cases[i].row)
			fprintf(stderr, "domain '%s'\n", cases[i].domain);
		CHECK_INT(row, cases[i].row);
		CHECK_INT(
		    tls_policy_level(&t, cases[i].domain, TLS_LEVEL_MAY, &rule),
		    cases[i].level);
		if (cases[i].row < 0)
			CHECK(rule == NULL);
		else
			CHECK_STR(rule, rows[cases[i].row * 2]);
	}
	/* the default is whatever tls.mode says */
	CHECK_INT(tls_policy_level(&t, "else.net", TLS_LEVEL_NONE, NULL),
		  TLS_LEVEL_NONE);
	CHECK_INT(tls_policy_level(&t, "else.net", TLS_LEVEL_VERIFY, NULL),
		  TLS_LEVEL_VERIFY);
	CHECK_INT(tls_policy_max(&t, TLS_LEVEL_NONE), TLS_LEVEL_VERIFY);
	test_table_free(&t);
}

/* The order of the entries never matters. */
static void
test_order(void)
{
	static const char *const fwd[] = {".example.com",    "encrypt",
					  ".b.example.com",  "verify",
					  "a.b.example.com", "none"};
	static const char *const rev[] = {"a.b.example.com", "none",
					  ".b.example.com",  "verify",
					  ".example.com",    "encrypt"};
	static const char *const domains[] = {"a.b.example.com",
					      "x.b.example.com",
					      "b.example.com", "example.com"};
	static const enum tls_level want[] = {TLS_LEVEL_NONE, TLS_LEVEL_VERIFY,
					      TLS_LEVEL_ENCRYPT, TLS_LEVEL_MAY};
	struct config_table a, b;

	test_policy(&a, fwd, 3);
	test_policy(&b, rev, 3);
	for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++) {
		CHECK_INT(tls_policy_level(&a, domains[i], TLS_LEVEL_MAY, NULL),
			  want[i]);
		CHECK_INT(tls_policy_level(&b, domains[i], TLS_LEVEL_MAY, NULL),
			  want[i]);
	}
	test_table_free(&a);
	test_table_free(&b);
}

static void
test_empty(void)
{
	struct config_table t = {0};

	CHECK_INT(tls_policy_find(&t, "example.com"), -1);
	CHECK_INT(tls_policy_level(&t, "example.com", TLS_LEVEL_ENCRYPT, NULL),
		  TLS_LEVEL_ENCRYPT);
	CHECK_INT(tls_policy_max(&t, TLS_LEVEL_MAY), TLS_LEVEL_MAY);
	/* a policy may lower the level, never below none */
	static const char *const low[] = {"example.com", "none"};
	test_policy(&t, low, 1);
	CHECK_INT(tls_policy_max(&t, TLS_LEVEL_ENCRYPT), TLS_LEVEL_ENCRYPT);
	CHECK_INT(tls_policy_level(&t, "example.com", TLS_LEVEL_ENCRYPT, NULL),
		  TLS_LEVEL_NONE);
	test_table_free(&t);
}

static void
test_names(void)
{
	char label63[64], label64[65], long253[254], long254[255];
	memset(label63, 'a', 63);
	label63[63] = '\0';
	memset(label64, 'a', 64);
	label64[64] = '\0';
	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
	snprintf(long253, sizeof long253, "%s.%s.%s.%.61s", label63, label63,
		 label63, label63);
	snprintf(long254, sizeof long254, "%s.%s.%s.%.62s", label63, label63,
		 label63, label63);
	static const struct {
		const char *name;
		const char *why; /* NULL: accepted */
	} cases[] = {
	    {"example.com", NULL},
	    {".example.com", NULL},
	    {"Example.COM", NULL},
	    {"localhost", NULL},
	    {"xn--bcher-kva.example", NULL},
	    {"a-b.c0.example", NULL},
	    {"127.0.0.1", NULL}, /* a numeric smarthost's name */
	    {"", "is empty"},
	    {".", "is empty"},
	    {"..example.com", "has an empty label"},
	    {"example..com", "has an empty label"},
	    {"example.com.", "ends with a dot"},
	    {".example.com.", "ends with a dot"},
	    {"-example.com", "has a label starting with '-'"},
	    {"example-.com", "has a label ending with '-'"},
	    {"exa mple.com", "holds a character other than"},
	    {"exa_mple.com", "holds a character other than"},
	    {"*.example.com", "holds a character other than"},
	    {"[192.0.2.1]", "holds a character other than"},
	    {"b\xc3\xbc"
	     "cher.example",
	     "holds a character other than"},
	};
	char msg[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		msg[0] = '\0';
		int rc = tls_policy_check_name(cases[i].name, msg, sizeof msg);
		if (!cases[i].why) {
			CHECK_INT(rc, 0);
			continue;
		}
		CHECK_INT(rc, -1);
		if (!strstr(msg, cases[i].why))
			fprintf(stderr, "name '%s': %s\n", cases[i].name, msg);
		CHECK(strstr(msg, cases[i].why) != NULL);
		CHECK(strstr(msg, "is not a domain name") != NULL);
	}
	CHECK_INT(tls_policy_check_name(label63, msg, sizeof msg), 0);
	CHECK_INT(tls_policy_check_name(label64, msg, sizeof msg), -1);
	CHECK(strstr(msg, "longer than 63") != NULL);
	CHECK_INT(strlen(long253), 253);
	CHECK_INT(tls_policy_check_name(long253, msg, sizeof msg), 0);
	CHECK_INT(strlen(long254), 254);
	CHECK_INT(tls_policy_check_name(long254, msg, sizeof msg), -1);
	CHECK(strstr(msg, "longer than 253") != NULL);
}

/* The level column takes exactly the names tls.mode takes. */
static void
test_fields(void)
{
	CHECK_STR(tls_policy_fields[0].name, "domain");
	CHECK(tls_policy_fields[0].check == tls_policy_check_name);
	CHECK_STR(tls_policy_fields[1].name, "level");
	CHECK(tls_policy_fields[1].names == tls_level_names);
	CHECK(tls_policy_fields[2].name == NULL);
	CHECK_STR(tls_level_names[TLS_LEVEL_NONE], "none");
	CHECK_STR(tls_level_names[TLS_LEVEL_MAY], "may");
	CHECK_STR(tls_level_names[TLS_LEVEL_ENCRYPT], "encrypt");
	CHECK_STR(tls_level_names[TLS_LEVEL_VERIFY], "verify");
	CHECK(tls_level_names[4] == NULL);
}

int
main(void)
{
	test_lookup();
	test_order();
	test_empty();
	test_names();
	test_fields();
	return test_summary();
}
