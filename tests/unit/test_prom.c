/*
 * test_prom: the Prometheus text builder: exact lines for counters,
 * gauges and labelled samples, HELP and label value escaping, UTF-8
 * repair, float spelling, name checks, and the buffer bound (fits at
 * exactly its size, fails one byte short, never writes past cap).
 */
#include "prom.h"
#include "test.h"

#include <math.h>
#include <stdint.h>

#define NELEM(a) (sizeof(a) / sizeof *(a))
#define BUF_MAX 4096

static void
test_counter_and_gauge(void)
{
	char buf[BUF_MAX];
	struct prom p;
	const char *err = "unset";

	prom_init(&p, buf, sizeof buf);
	prom_counter(&p, "smtpd_connections_total", "Sessions opened.", 3);
	prom_gauge(&p, "up_seconds", "Up-time.", 12.5);
	size_t n = prom_finish(&p, &err);
	const char *want = "# HELP smtpd_connections_total Sessions opened.\n"
			   "# TYPE smtpd_connections_total counter\n"
			   "smtpd_connections_total 3\n"
			   "# HELP up_seconds Up-time.\n"
			   "# TYPE up_seconds gauge\n"
			   "up_seconds 12.5\n";
	CHECK_MEM(buf, n, want, strlen(want));
	CHECK(err == NULL);
	CHECK_INT(buf[n], '\0');
}

static void
test_labels_and_escaping(void)
{
	char buf[BUF_MAX];
	struct prom p;
	const struct prom_label labels[] = {
	    {"mx", "a\"b\\c\nd"},
	    {"outcome", "sent"},
	};

	prom_init(&p, buf, sizeof buf);
	/* HELP escapes backslash and line feed, but not the quote. */
	prom_family(&p, "x_total", PROM_COUNTER, "say \"hi\" \\ now\nthen");
	prom_sample_u64(&p, labels, NELEM(labels), UINT64_MAX);
	prom_sample_u64(&p, labels + 1, 1, 0);
	size_t n = prom_finish(&p, NULL);
	const char *want = "# HELP x_total say \"hi\" \\\\ now\\nthen\n"
			   "# TYPE x_total counter\n"
			   "x_total{mx=\"a\\\"b\\\\c\\nd\",outcome=\"sent\"} "
			   "18446744073709551615\n"
			   "x_total{outcome=\"sent\"} 0\n";
	CHECK_MEM(buf, n, want, strlen(want));
}

/* Label values and HELP must be UTF-8; bad bytes become U+FFFD. */
static void
test_utf8(void)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
	    {"caf\xc3\xa9", "caf\xc3\xa9"},	      /* valid 2-byte */
	    {"\xe2\x82\xac", "\xe2\x82\xac"},	      /* valid 3-byte */
	    {"\xf0\x9f\x93\xa7", "\xf0\x9f\x93\xa7"}, /* valid 4-byte */
	    {"a\xff"
	     "b",
	     "a\xef\xbf\xbd"
	     "b"},				      /* never valid */
	    {"\xc0\x80", "\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong NUL */
	    {"\xed\xa0\x80",
	     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* UTF-16 surrogate */
	    {"\xf4\x90\x80\x80",
	     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF
								   */
	    {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"}, /* cut short */
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		char buf[BUF_MAX], want[256];
		struct prom p;
		const struct prom_label l = {"v", cases[i].in};

		prom_init(&p, buf, sizeof buf);
		prom_family(&p, "m", PROM_GAUGE, "");
		prom_sample_u64(&p, &l, 1, 1);
		size_t n = prom_finish(&p, NULL);
		snprintf(want, sizeof want,
			 "# HELP m \n# TYPE m gauge\nm{v=\"%s\"} 1\n",
			 cases[i].want);
		CHECK_MEM(buf, n, want, strlen(want));
	}
}

static void
test_floats(void)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
	    {0.0, "0"},
	    {0.1, "0.1"},
	    {12.345, "12.345"},
	    {-2.5, "-2.5"},
	    {1e300, "1e+300"},
	    {1.0 / 3.0, "0.33333333333333331"}, /* %.15g would not read back */
	    {1234567.0, "1234567"},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		char buf[BUF_MAX], want[128];
		struct prom p;
		prom_init(&p, buf, sizeof buf);
		prom_family(&p, "g", PROM_GAUGE, "h");
		prom_sample_f64(&p, NULL, 0, cases[i].v);
		size_t n = prom_finish(&p, NULL);
		snprintf(want, sizeof want,
			 "# HELP g h\n# TYPE g gauge\ng %s\n", cases[i].want);
		CHECK_MEM(buf, n, want, strlen(want));
	}
	char buf[BUF_MAX];
	struct prom p;
	prom_init(&p, buf, sizeof buf);
	prom_family(&p, "g", PROM_GAUGE, "h");
	prom_sample_f64(&p, NULL, 0, NAN);
	prom_sample_f64(&p, NULL, 0, INFINITY);
	prom_sample_f64(&p, NULL, 0, -INFINITY);
	size_t n = prom_finish(&p, NULL);
	const char *want =
	    "# HELP g h\n# TYPE g gauge\ng NaN\ng +Inf\ng -Inf\n";
	CHECK_MEM(buf, n, want, strlen(want));
}

static void
test_names(void)
{
	static const struct {
		const char *name;
		bool metric, label;
	} cases[] = {
	    {"a", true, true},
	    {"_x9", true, true},
	    {"ns:sub_total", true, false}, /* colons: metrics only */
	    {"__meta", true, false},	   /* reserved for labels */
	    {"9lives", false, false},
	    {"a-b", false, false},
	    {"a b", false, false},
	    {"", false, false},
	    {"caf\xc3\xa9", false, false},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		CHECK_INT(prom_metric_name_ok(cases[i].name), cases[i].metric);
		CHECK_INT(prom_label_name_ok(cases[i].name), cases[i].label);
	}
	char longname[PROM_NAME_MAX + 2];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	CHECK(!prom_metric_name_ok(longname));
	longname[PROM_NAME_MAX] = '\0';
	CHECK(prom_metric_name_ok(longname));
}

/* A failure sticks: later calls write nothing, finish says why. */
static void
test_errors(void)
{
	char buf[BUF_MAX];
	struct prom p;
	const char *err = NULL;
	const struct prom_label bad = {"__x", "v"};

	prom_init(&p, buf, sizeof buf);
	prom_sample_u64(&p, NULL, 0, 1);
	CHECK_INT(prom_finish(&p, &err), 0);
	CHECK_STR(err, "sample before any family");

	prom_init(&p, buf, sizeof buf);
	prom_counter(&p, "bad-name", "h", 1);
	CHECK_INT(prom_finish(&p, &err), 0);
	CHECK_STR(err, "bad metric name");
	CHECK_INT(p.len, 0);

	prom_init(&p, buf, sizeof buf);
	prom_family(&p, "m", PROM_COUNTER, "h");
	prom_sample_u64(&p, &bad, 1, 1);
	prom_counter(&p, "later", "h", 2);
	CHECK_INT(prom_finish(&p, &err), 0);
	CHECK_STR(err, "bad label name");
	CHECK(strstr(buf, "later") == NULL);
}

/* The text fits in exactly len + 1 bytes (the NUL), not one less. */
static void
test_bound(void)
{
	const char *want = "# HELP c h\n# TYPE c counter\nc 7\n";
	size_t len = strlen(want);
	char buf[64];
	struct prom p;
	const char *err;

	for (size_t cap = 0; cap <= len + 1; cap++) {
		memset(buf, 'X', sizeof buf);
		prom_init(&p, buf, cap);
		prom_counter(&p, "c", "h", 7);
		size_t n = prom_finish(&p, &err);
		for (size_t i = cap; i < sizeof buf; i++)
			if (buf[i] != 'X') {
				CHECK(!"wrote past cap");
				break;
			}
		if (cap == len + 1) {
			CHECK_MEM(buf, n, want, len);
			CHECK(err == NULL);
		} else {
			CHECK_INT(n, 0);
			CHECK_STR(err,
				  "metrics text does not fit in its buffer");
		}
	}
}

int
main(void)
{
	test_counter_and_gauge();
	test_labels_and_escaping();
	test_utf8();
	test_floats();
	test_names();
	test_errors();
	test_bound();
	return test_summary();
}
