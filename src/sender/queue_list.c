/*
 * queue_list: see queue_list.h. Messages are loaded with the same code
 * the sender uses (message_load, journal_replay), so what it shows is
 * what a sender would do with them. JSON is printed as each message is
 * read; the text listing keeps the messages (at most
 * QUEUE_LIST_TEXT_MAX) to sort their waiting recipients by host.
 */
#include "queue_list.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "message.h"
#include "sender.h"
#include "sender_config.h"

/* One line of the text listing: a waiting recipient, or a message with
 * none (rcpt == SIZE_MAX). */
struct queue_entry {
	struct message *m;
	const char *folder;
	size_t rcpt;
	const char *host; /* its last MX host or its domain; NULL: none */
	bool tried;	  /* host is where it was last tried */
};

struct queue_state {
	bool json;
	FILE *out;
	int64_t now; /* wall clock, ms */
	unsigned messages;
	unsigned waiting; /* recipients without a final outcome */
	bool cut;	  /* more than QUEUE_LIST_TEXT_MAX messages */
	struct message **kept;
	size_t nkept, capkept;
	struct queue_entry *ents;
	size_t nents, capents;
	char **folders;
	size_t nfolders, capfolders;
};

/* Grows *arr (of elem-sized items) to hold one more; -1 on ENOMEM. */
static int
queue_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 64;
	void *p = realloc(*arr, c * elem);
	if (!p)
		return -1;
	*arr = p;
	*cap = c;
	return 0;
}

static const char *
queue_state_name(enum rcpt_state st)
{
	switch (st) {
	case RCPT_SENT:
		return "sent";
	case RCPT_FAILED:
		return "bounced";
	case RCPT_DEFERRED:
		return "deferred";
	default:
		return "waiting";
	}
}

static bool
queue_rcpt_waiting(const struct message *m, size_t i)
{
	return m->state[i] == RCPT_PENDING || m->state[i] == RCPT_DEFERRED;
}

static bool
queue_any_deferred(const struct message *m)
{
	for (size_t i = 0; i < m->env.nrcpt; i++)
		if (m->state[i] == RCPT_DEFERRED)
			return true;
	return false;
}

/* Recipient i's last reply split into dsn and reply text; false when
 * none is known. */
static bool
queue_why(const struct message *m, size_t i, char *dsn, size_t cap,
	  const char **reply)
{
	const char *why = m->why ? m->why[i] : NULL;
	if (!why)
		return false;
	size_t n = strcspn(why, " ");
	snprintf(dsn, cap, "%.*s", (int)n, why);
	*reply = why[n] ? why + n + 1 : "";
	return true;
}

static const char *
queue_mx(const struct message *m, size_t i)
{
	return m->mx && m->mx[i] ? m->mx[i] : NULL;
}

static void
queue_time(char *buf, size_t cap, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- JSON ------------------------------------------------------------ */

static void
queue_json_str(FILE *out, const char *key, const char *val)
{
	char buf[6 * JOURNAL_LINE_MAX]; /* every byte may become \u00XX */
	if (!val) {
		fprintf(out, "\"%s\":null", key);
		return;
	}
	size_t n = log_json_escape(buf, sizeof buf, val, strlen(val));
	fprintf(out, "\"%s\":\"%.*s\"", key, (int)n, buf);
}

static void
queue_json_rcpt(FILE *out, const struct message *m, size_t i)
{
	char dsn[32];
	const char *reply = NULL;
	bool known = queue_why(m, i, dsn, sizeof dsn, &reply);

	queue_json_str(out, "address", m->env.rcpts[i].addr);
	fputc(',', out);
	queue_json_str(out, "status", queue_state_name(m->state[i]));
	fputc(',', out);
	queue_json_str(out, "mx", queue_mx(m, i));
	fputc(',', out);
	queue_json_str(out, "dsn", known ? dsn : NULL);
	fputc(',', out);
	queue_json_str(out, "reply", known ? reply : NULL);
}

static void
queue_print_json(FILE *out, const char *where, const struct message *m)
{
	char arrival[32], next[32];
	queue_time(arrival, sizeof arrival, m->queued_ms);
	bool has_next = m->next_try_ms > 0 && queue_any_deferred(m);
	if (has_next)
		queue_time(next, sizeof next, m->next_try_ms);
	fputc('{', out);
	queue_json_str(out, "queue_id", m->queue_id);
	fputc(',', out);
	queue_json_str(out, "folder", where);
	fprintf(out, ",\"size\":%llu,", (unsigned long long)m->size);
	queue_json_str(out, "arrival_time", arrival);
	fputc(',', out);
	queue_json_str(out, "sender", m->env.from.addr);
	fprintf(out, ",\"attempts\":%u,", m->attempts);
	queue_json_str(out, "next_try", has_next ? next : NULL);
	fputs(",\"recipients\":[", out);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		fputs(i ? ",{" : "{", out);
		queue_json_rcpt(out, m, i);
		fputc('}', out);
	}
	fputs("]}\n", out);
}

/* ---- text -------------------------------------------------------------- */

static int
queue_add_entry(struct queue_state *qs, struct message *m, const char *folder,
		size_t rcpt)
{
	if (queue_grow((void **)&qs->ents, &qs->capents, qs->nents,
		       sizeof *qs->ents) != 0)
		return -1;
	struct queue_entry *e = &qs->ents[qs->nents++];
	e->m = m;
	e->folder = folder;
	e->rcpt = rcpt;
	e->host = NULL;
	e->tried = false;
	if (rcpt == SIZE_MAX)
		return 0;
	e->host = queue_mx(m, rcpt);
	/* deferred: tried, even when an older journal line kept no host */
	e->tried = e->host || m->state[rcpt] == RCPT_DEFERRED ||
		   (m->why && m->why[rcpt]);
	if (!e->host)
		e->host = smtp_path_domain(&m->env.rcpts[rcpt]);
	return 0;
}

/* Keeps m for the text listing: one entry per waiting recipient, or one
 * for the message when none waits. Returns false when m was not kept
 * (the caller frees it). */
static bool
queue_keep(struct queue_state *qs, struct message *m, const char *folder)
{
	size_t before = qs->nents;
	bool any = false;

	if (qs->nkept >= QUEUE_LIST_TEXT_MAX ||
	    queue_grow((void **)&qs->kept, &qs->capkept, qs->nkept,
		       sizeof *qs->kept) != 0)
		goto cut;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		if (!queue_rcpt_waiting(m, i))
			continue;
		any = true;
		if (queue_add_entry(qs, m, folder, i) != 0)
			goto cut;
	}
	if (!any && queue_add_entry(qs, m, folder, SIZE_MAX) != 0)
		goto cut;
	qs->kept[qs->nkept++] = m;
	return true;
cut:
	qs->nents = before;
	qs->cut = true;
	return false;
}

/* Hosts by name (the tried before the untried of the same name), the
 * messages without waiting recipients last; then by arrival. */
static int
queue_entry_cmp(const void *a, const void *b)
{
	const struct queue_entry *x = a, *y = b;
	if (!x->host != !y->host)
		return x->host ? -1 : 1;
	if (x->host) {
		int c = strcmp(x->host, y->host);
		if (c != 0)
			return c;
		if (x->tried != y->tried)
			return x->tried ? -1 : 1;
	}
	if (x->m->queued_ms != y->m->queued_ms)
		return x->m->queued_ms < y->m->queued_ms ? -1 : 1;
	int c = strcmp(x->m->queue_id, y->m->queue_id);
	if (c != 0)
		return c;
	if (x->m != y->m) /* same id in two folders */
		return strcmp(x->folder, y->folder);
	return x->rcpt < y->rcpt ? -1 : x->rcpt > y->rcpt;
}

static bool
queue_same_group(const struct queue_entry *a, const struct queue_entry *b)
{
	if (!a->host || !b->host)
		return !a->host && !b->host;
	return a->tried == b->tried && strcmp(a->host, b->host) == 0;
}

static void
queue_text_header(FILE *out, const struct queue_entry *e)
{
	const char *host = e->host && e->host[0] ? e->host : "(no domain)";
	if (!e->host)
		fputs("(no recipient waiting)\n", out);
	else
		fprintf(out, "%s%s\n", host,
			e->tried ? "" : " (not tried yet)");
}

static void
queue_text_message(FILE *out, const struct queue_entry *e, int64_t now)
{
	const struct message *m = e->m;
	char arrival[32], next[32] = "now";
	queue_time(arrival, sizeof arrival, m->queued_ms);
	if (m->next_try_ms > now && queue_any_deferred(m))
		queue_time(next, sizeof next, m->next_try_ms);
	fprintf(out, "  %s  %llu bytes  %s  <%s>\n", m->queue_id,
		(unsigned long long)m->size, arrival, m->env.from.addr);
	fprintf(out, "    folder %s, attempts %u, next try %s\n", e->folder,
		m->attempts, next);
}

static void
queue_text_rcpt(FILE *out, const struct message *m, size_t i)
{
	char dsn[32];
	const char *reply;
	fprintf(out, "    %s: %s", m->env.rcpts[i].addr,
		queue_state_name(m->state[i]));
	if (queue_why(m, i, dsn, sizeof dsn, &reply))
		fprintf(out, ", %s", reply[0] ? reply : dsn);
	fputc('\n', out);
}

static void
queue_print_text(struct queue_state *qs)
{
	const struct queue_entry *prev = NULL;

	if (qs->nents > 0) /* qsort wants an array, even of none */
		qsort(qs->ents, qs->nents, sizeof *qs->ents, queue_entry_cmp);
	for (size_t k = 0; k < qs->nents; k++) {
		const struct queue_entry *e = &qs->ents[k];
		bool group = !prev || !queue_same_group(prev, e);
		if (group)
			queue_text_header(qs->out, e);
		if (group || prev->m != e->m)
			queue_text_message(qs->out, e, qs->now);
		if (e->rcpt != SIZE_MAX)
			queue_text_rcpt(qs->out, e->m, e->rcpt);
		prev = e;
	}
	if (qs->cut)
		fprintf(qs->out,
			"-- listing cut at %u messages; --json lists all\n",
			(unsigned)qs->nkept);
	fprintf(qs->out, "-- %u message%s, %u recipient%s waiting\n",
		qs->messages, qs->messages == 1 ? "" : "s", qs->waiting,
		qs->waiting == 1 ? "" : "s");
}

/* ---- folders ------------------------------------------------------------ */

/* A copy of the folder name that lives as long as qs (NULL on ENOMEM). */
static const char *
queue_folder_name(struct queue_state *qs, const char *where)
{
	char *s = strdup(where);
	if (!s || queue_grow((void **)&qs->folders, &qs->capfolders,
			     qs->nfolders, sizeof *qs->folders) != 0) {
		free(s);
		return NULL;
	}
	qs->folders[qs->nfolders++] = s;
	return s;
}

static void
queue_one(struct queue_state *qs, struct message *m, const char *where)
{
	qs->messages++;
	for (size_t i = 0; i < m->env.nrcpt; i++)
		qs->waiting += queue_rcpt_waiting(m, i);
	if (qs->json) {
		queue_print_json(qs->out, where, m);
		message_free(m);
	} else if (!where || !queue_keep(qs, m, where)) {
		qs->cut = true;
		message_free(m);
	}
}

/* Lists one folder; where names it in the output. */
static int
queue_folder(struct queue_state *qs, int dir_fd, const char *where)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!qs->json)
		where = queue_folder_name(qs, where);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		struct message *m = NULL;
		char why[128];
		/* gone meanwhile (delivered) or malformed: not waiting */
		if (message_load(dir_fd, e->d_name, &m, why, sizeof why) !=
		    MESSAGE_OK)
			continue;
		(void)journal_replay(dir_fd, m, true);
		queue_one(qs, m, where);
	}
	closedir(d);
	return 0;
}

static void
queue_state_free(struct queue_state *qs)
{
	for (size_t k = 0; k < qs->nkept; k++)
		message_free(qs->kept[k]);
	for (size_t k = 0; k < qs->nfolders; k++)
		free(qs->folders[k]);
	free(qs->kept);
	free(qs->ents);
	free(qs->folders);
}

int
queue_list(const struct sender_config *cfg, bool json, FILE *out)
{
	struct queue_state qs = {.json = json, .out = out};
	int rc = 0;
	char path[4096];

	qs.now = loop_wall_ms();
	snprintf(path, sizeof path, "%s/new", cfg->maildir);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || queue_folder(&qs, fd, "new") != 0) {
		fprintf(stderr, "queue: %s: %s\n", path, strerror(errno));
		rc = 1;
	}
	if (fd >= 0)
		close(fd);

	int spool = open(cfg->spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = spool < 0 ? NULL : fdopendir(dup(spool));
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || strcmp(e->d_name, "malformed") == 0)
			continue;
		int inst = openat(spool, e->d_name,
				  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (inst < 0)
			continue; /* not a folder */
		if (queue_folder(&qs, inst, e->d_name) != 0)
			rc = 1;
		close(inst);
	}
	if (d)
		closedir(d);
	if (spool >= 0)
		close(spool);
	if (!json)
		queue_print_text(&qs);
	queue_state_free(&qs);
	return rc;
}
