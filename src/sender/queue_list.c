/*
 * queue_list: see queue_list.h. Messages are loaded with the same code
 * the sender uses (message_load, journal_replay), so what it shows is
 * what a sender would do with them.
 */
#include "queue_list.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "message.h"
#include "sender_config.h"

struct queue_totals {
	unsigned messages;
	unsigned waiting; /* recipients without a final outcome */
};

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

static void
queue_json_str(FILE *out, const char *key, const char *val)
{
	char buf[2 * 1024];
	size_t n = log_json_escape(buf, sizeof buf - 1, val, strlen(val));
	fprintf(out, "\"%s\":\"%.*s\"", key, (int)n, buf);
}

static void
queue_print_json(FILE *out, const char *where, const struct message *m)
{
	char arrival[32];
	time_t t = (time_t)(m->queued_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(arrival, sizeof arrival, "%Y-%m-%dT%H:%M:%SZ", &tm);
	fputc('{', out);
	queue_json_str(out, "queue_id", m->queue_id);
	fputc(',', out);
	queue_json_str(out, "folder", where);
	fprintf(out, ",\"size\":%llu,", (unsigned long long)m->size);
	queue_json_str(out, "arrival_time", arrival);
	fputc(',', out);
	queue_json_str(out, "sender", m->env.from.addr);
	fprintf(out, ",\"attempts\":%u,\"recipients\":[", m->attempts);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		fputs(i ? ",{" : "{", out);
		queue_json_str(out, "address", m->env.rcpts[i].addr);
		fputc(',', out);
		queue_json_str(out, "status", queue_state_name(m->state[i]));
		fputc('}', out);
	}
	fputs("]}\n", out);
}

static void
queue_print_text(FILE *out, const char *where, const struct message *m)
{
	char arrival[32];
	time_t t = (time_t)(m->queued_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(arrival, sizeof arrival, "%a %b %d %H:%M:%S", &tm);
	fprintf(out, "%-28s %9llu %s  %s\n", m->queue_id,
		(unsigned long long)m->size, arrival,
		m->env.from.is_null ? "<>" : m->env.from.addr);
	fprintf(out, "    (%s, attempts: %u)\n", where, m->attempts);
	for (size_t i = 0; i < m->env.nrcpt; i++)
		fprintf(out, "        %-40s %s\n", m->env.rcpts[i].addr,
			queue_state_name(m->state[i]));
}

/* Lists one folder; where names it in the output. */
static int
queue_folder(int dir_fd, const char *where, bool json, FILE *out,
	     struct queue_totals *tot)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
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
		tot->messages++;
		tot->waiting += (unsigned)m->unsettled;
		for (size_t i = 0; i < m->env.nrcpt; i++)
			tot->waiting += m->state[i] == RCPT_DEFERRED;
		if (json)
			queue_print_json(out, where, m);
		else
			queue_print_text(out, where, m);
		message_free(m);
	}
	closedir(d);
	return 0;
}

int
queue_list(const struct sender_config *cfg, bool json, FILE *out)
{
	struct queue_totals tot = {0};
	int rc = 0;
	char path[4096];

	snprintf(path, sizeof path, "%s/new", cfg->maildir);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || queue_folder(fd, "new", json, out, &tot) != 0) {
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
		if (queue_folder(inst, e->d_name, json, out, &tot) != 0)
			rc = 1;
		close(inst);
	}
	if (d)
		closedir(d);
	if (spool >= 0)
		close(spool);
	if (!json)
		fprintf(out, "-- %u message%s, %u recipient%s waiting\n",
			tot.messages, tot.messages == 1 ? "" : "s", tot.waiting,
			tot.waiting == 1 ? "" : "s");
	return rc;
}
