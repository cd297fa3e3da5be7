/*
 * test_mx: MX policy (src/sender/mx.c). A table of MX answers -> result
 * and host list (with a NULL random source, so equal preferences keep
 * record order), then the randomness: over many seeds every order of
 * equal preferences appears, about equally often, and truncation at
 * MX_LIST_MAX picks every host of the boundary level sometimes.
 */
#include "mx.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>

#define HOSTS_MAX 6

struct mx_case {
	const char *name;
	const char *domain;
	struct mx_host records[HOSTS_MAX];
	size_t n;
	enum mx_result result;
	const char *hosts[HOSTS_MAX + 1]; /* NULL-terminated, best first */
	unsigned prefs[HOSTS_MAX];
};

static const struct mx_case mx_cases[] = {
    {"one",
     "example.org",
     {{"mx.example.org", 10}},
     1,
     MX_OK,
     {"mx.example.org"},
     {10}},
    {"by preference",
     "d",
     {{"b", 20}, {"a", 10}, {"c", 30}, {"z", 0}},
     4,
     MX_OK,
     {"z", "a", "b", "c"},
     {0, 10, 20, 30}},
    {"equal preference keeps order without rnd",
     "d",
     {{"b", 10}, {"a", 10}, {"c", 5}},
     3,
     MX_OK,
     {"c", "b", "a"},
     {5, 10, 10}},
    {"lower case, no trailing dot",
     "d",
     {{"MX1.Example.COM.", 10}},
     1,
     MX_OK,
     {"mx1.example.com"},
     {10}},
    {"duplicates removed, best kept",
     "d",
     {{"mx.a", 10}, {"MX.A.", 20}, {"mx.b", 15}, {"mx.a", 5}},
     4,
     MX_OK,
     {"mx.a", "mx.b"},
     {5, 15}},
    {"duplicate with equal preference",
     "d",
     {{"mx.a", 10}, {"Mx.A", 10}, {"mx.a.", 10}},
     3,
     MX_OK,
     {"mx.a"},
     {10}},
    {"trailing dot is not a different host",
     "d",
     {{"a.b.", 1}, {"a.b", 2}, {"a.b..", 3}},
     3,
     MX_OK,
     {"a.b", "a.b."},
     {1, 3}},
    {"implicit MX", "Example.ORG.", {{"", 0}}, 0, MX_OK, {"example.org"}, {0}},
    {"implicit MX, no domain", "", {{"", 0}}, 0, MX_NONE, {NULL}, {0}},
    {"implicit MX, root domain", ".", {{"", 0}}, 0, MX_NONE, {NULL}, {0}},
    {"null MX", "d", {{".", 0}}, 1, MX_NULL, {NULL}, {0}},
    {"null MX, empty name", "d", {{"", 0}}, 1, MX_NULL, {NULL}, {0}},
    {"null MX twice", "d", {{".", 0}, {"", 0}}, 2, MX_NULL, {NULL}, {0}},
    {"root with another preference is no host either",
     "d",
     {{".", 10}},
     1,
     MX_NULL,
     {NULL},
     {0}},
    {"null MX with real hosts: the root is unusable",
     "d",
     {{".", 0}, {"mx.d", 10}},
     2,
     MX_OK,
     {"mx.d"},
     {10}},
    {"real host first, then null MX",
     "d",
     {{"mx.d", 10}, {"", 0}, {"mx2.d", 20}},
     3,
     MX_OK,
     {"mx.d", "mx2.d"},
     {10, 20}},
    {"preference 65535",
     "d",
     {{"a", 65535}, {"b", 0}},
     2,
     MX_OK,
     {"b", "a"},
     {0, 65535}},
};

static void
mx_check_case(const struct mx_case *c)
{
	struct mx_host out[MX_LIST_MAX];
	size_t nout = 99, want = 0;
	enum mx_result r =
	    mx_order(c->domain, c->records, c->n, NULL, NULL, out, &nout);

	CHECK_INT(r, c->result);
	while (c->hosts[want])
		want++;
	CHECK_INT(nout, want);
	for (size_t i = 0; i < want && i < nout; i++) {
		CHECK_STR(out[i].name, c->hosts[i]);
		CHECK_INT(out[i].pref, c->prefs[i]);
	}
}

static void
test_table(void)
{
	for (size_t i = 0; i < sizeof mx_cases / sizeof mx_cases[0]; i++) {
		int before = test_failures;
		mx_check_case(&mx_cases[i]);
		if (test_failures != before)
			fprintf(stderr, "  in case \"%s\"\n", mx_cases[i].name);
	}
}

/* Names that do not fit or are not terminated are unusable. */
static void
test_unusable(void)
{
	struct mx_host rec[2], out[MX_LIST_MAX];
	size_t nout;
	char domain[MX_HOST_MAX + 2];

	memset(rec[0].name, 'a', sizeof rec[0].name); /* no NUL */
	rec[0].pref = 0;
	CHECK_INT(mx_order("d", rec, 1, NULL, NULL, out, &nout), MX_NONE);
	CHECK_INT(nout, 0);
	snprintf(rec[1].name, sizeof rec[1].name, "mx.d");
	rec[1].pref = 10;
	CHECK_INT(mx_order("d", rec, 2, NULL, NULL, out, &nout), MX_OK);
	CHECK_INT(nout, 1);
	CHECK_STR(out[0].name, "mx.d");

	/* 255 octets is the longest name, with or without its dot */
	memset(rec[0].name, 'A', MX_HOST_MAX);
	rec[0].name[MX_HOST_MAX] = '\0';
	CHECK_INT(mx_order("d", rec, 1, NULL, NULL, out, &nout), MX_OK);
	CHECK_INT(strlen(out[0].name), MX_HOST_MAX);
	CHECK(out[0].name[0] == 'a');

	/* implicit MX of a domain too long to be one */
	memset(domain, 'b', MX_HOST_MAX + 1);
	domain[MX_HOST_MAX + 1] = '\0';
	CHECK_INT(mx_order(domain, rec, 0, NULL, NULL, out, &nout), MX_NONE);
	domain[MX_HOST_MAX] = '.';
	CHECK_INT(mx_order(domain, rec, 0, NULL, NULL, out, &nout), MX_NONE);
	domain[MX_HOST_MAX] = '\0';
	CHECK_INT(mx_order(domain, rec, 0, NULL, NULL, out, &nout), MX_OK);
	CHECK_INT(strlen(out[0].name), MX_HOST_MAX);
}

/* A fixed, seedable random source (xorshift32). */
static uint32_t
mx_test_rand(void *arg)
{
	uint32_t *s = arg;
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Index of out's order among the permutations of names (k! of them). */
static size_t
mx_perm_index(const struct mx_host *out, size_t k, const char *const *names)
{
	size_t idx = 0, used = 0;

	for (size_t i = 0; i < k; i++) {
		size_t pos = 0, rank = 0;
		while (pos < k && strcmp(names[pos], out[i].name) != 0)
			pos++;
		CHECK(pos < k);
		for (size_t j = 0; j < pos; j++)
			if (!(used & (1u << j)))
				rank++;
		used |= 1u << pos;
		idx = idx * (k - i) + rank;
	}
	return idx;
}

/*
 * k hosts of equal preference between a better and a worse one: the ends
 * stay put, the middle takes every order, each about equally often.
 */
static void
test_shuffle(size_t k, unsigned runs)
{
	static const char *const names[] = {"a", "b", "c", "d"};
	struct mx_host rec[6], out[MX_LIST_MAX];
	size_t counts[24] = {0}, perms = 1, nout;

	snprintf(rec[0].name, sizeof rec[0].name, "worst");
	rec[0].pref = 50;
	for (size_t i = 0; i < k; i++) {
		snprintf(rec[i + 1].name, sizeof rec[i + 1].name, "%s",
			 names[i]);
		rec[i + 1].pref = 20;
		perms *= i + 1;
	}
	snprintf(rec[k + 1].name, sizeof rec[k + 1].name, "best");
	rec[k + 1].pref = 1;
	for (uint32_t seed = 1; seed <= runs; seed++) {
		uint32_t st = seed * 2654435761u;
		if (st == 0)
			st = 1;
		CHECK_INT(
		    mx_order("d", rec, k + 2, mx_test_rand, &st, out, &nout),
		    MX_OK);
		CHECK_INT(nout, k + 2);
		CHECK_STR(out[0].name, "best");
		CHECK_STR(out[k + 1].name, "worst");
		counts[mx_perm_index(out + 1, k, names)]++;
	}
	for (size_t p = 0; p < perms; p++) {
		double expect = (double)runs / (double)perms;
		CHECK(counts[p] > 0);
		CHECK(counts[p] > expect * 0.8 && counts[p] < expect * 1.2);
	}
}

/* More than MX_LIST_MAX records: the best ones, after sorting. */
static void
test_truncation(void)
{
	struct mx_host rec[40], out[MX_LIST_MAX];
	size_t nout, picked[40] = {0};
	uint32_t st;

	for (size_t i = 0; i < 20; i++) {
		snprintf(rec[i].name, sizeof rec[i].name, "mx%zu", i);
		rec[i].pref = (unsigned)(100 - i); /* reverse order */
	}
	st = 7;
	CHECK_INT(mx_order("d", rec, 20, mx_test_rand, &st, out, &nout), MX_OK);
	CHECK_INT(nout, MX_LIST_MAX);
	for (size_t i = 0; i < MX_LIST_MAX && i < nout; i++)
		CHECK_INT(out[i].pref, 81 + i);

	/* 10 at 10 and 10 at 20: all of the first, 6 of the second */
	for (size_t i = 0; i < 20; i++)
		rec[i].pref = i % 2 ? 10 : 20;
	for (uint32_t seed = 1; seed <= 2000; seed++) {
		st = seed * 2654435761u;
		CHECK_INT(mx_order("d", rec, 20, mx_test_rand, &st, out, &nout),
			  MX_OK);
		CHECK_INT(nout, MX_LIST_MAX);
		for (size_t i = 0; i < nout; i++) {
			size_t h = 0;
			sscanf(out[i].name, "mx%zu", &h);
			CHECK_INT(out[i].pref, i < 10 ? 10 : 20);
			CHECK_INT(rec[h].pref, out[i].pref);
			for (size_t j = 0; j < i; j++)
				CHECK(strcmp(out[j].name, out[i].name) != 0);
			picked[h]++;
		}
	}
	/* each of the 10 at 20 gets one of 6 places: about 1200 times */
	for (size_t h = 0; h < 20; h++) {
		if (rec[h].pref == 10)
			CHECK_INT(picked[h], 2000);
		else
			CHECK(picked[h] > 1000 && picked[h] < 1400);
	}
}

/* Only the first 256 records of an answer are looked at. */
static void
test_many_records(void)
{
	static struct mx_host rec[300];
	struct mx_host out[MX_LIST_MAX];
	size_t nout;

	for (size_t i = 0; i < 300; i++) {
		snprintf(rec[i].name, sizeof rec[i].name, "mx%zu.example", i);
		rec[i].pref = (unsigned)(1000 - i);
	}
	CHECK_INT(mx_order("d", rec, 300, NULL, NULL, out, &nout), MX_OK);
	CHECK_INT(nout, MX_LIST_MAX);
	CHECK_STR(out[0].name, "mx255.example");
	CHECK_INT(out[0].pref, 745);
}

int
main(void)
{
	test_table();
	test_unusable();
	test_shuffle(2, 2000);
	test_shuffle(3, 6000);
	test_shuffle(4, 24000);
	test_truncation();
	test_many_records();
	return test_summary();
}
