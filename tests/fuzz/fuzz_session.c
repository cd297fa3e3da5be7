/*
 * fuzz_session: the command parser and the whole session state machine.
 * Input is split into chunks at 0xff bytes and fed with a commit after
 * each chunk; every reply line must be well formed, and the session must
 * never stall with unread input while it has room and nothing pending.
 */
#include <dirent.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maildir.h"
#include "session.h"
#include "smtpd_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c)                                                          \
	do {                                                                   \
		if (!(c)) {                                                    \
			fprintf(stderr, "fuzz_session: %s\n", #c);             \
			abort();                                               \
		}                                                              \
	} while (0)

struct fuzz_env {
	char dir[64];
	struct smtpd_config cfg;
	struct loop *loop;
	struct maildir *md;
	struct cidr net;
	struct session_ctx ctx;
};

static struct fuzz_env *
fuzz_env(void)
{
	static struct fuzz_env *env;
	char err[256];
	if (env)
		return env;
	env = calloc(1, sizeof *env);
	strcpy(env->dir, "/tmp/fuzz_session.XXXXXX");
	FUZZ_CHECK(env && mkdtemp(env->dir));
	FUZZ_CHECK(smtpd_config_defaults(&env->cfg) == 0);
	env->cfg.max_message_size = 4096;
	env->cfg.max_recipients = 5;
	static const char *const domains[] = {"ours.test"};
	config_list_set(&env->cfg.relay_domains, domains, 1);
	env->loop = loop_new();
	env->md = maildir_open(env->dir, "fuzz.test", err, sizeof err);
	FUZZ_CHECK(env->loop && env->md);
	cidr_parse("10.0.0.0/8", &env->net);
	env->ctx.cfg = &env->cfg;
	env->ctx.loop = env->loop;
	env->ctx.md = env->md;
	env->ctx.relay_nets = &env->net;
	env->ctx.relay_nets_count = 1;
	return env;
}

/* Every reply line: 3 digits, ' ' or '-', text, CRLF. */
static void
check_replies(const char *out, size_t len)
{
	size_t i = 0;
	while (i < len) {
		const char *crlf = memmem(out + i, len - i, "\r\n", 2);
		FUZZ_CHECK(crlf != NULL);
		size_t n = (size_t)(crlf - (out + i));
		FUZZ_CHECK(n >= 4 && n <= 510);
		FUZZ_CHECK(out[i] >= '2' && out[i] <= '5');
		FUZZ_CHECK(out[i + 3] == ' ' || out[i + 3] == '-');
		i += n + 2;
	}
}

static void
drain_new(const char *dir)
{
	char path[512];
	snprintf(path, sizeof path, "%s/new", dir);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/new/%s", dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_env *env = fuzz_env();
	struct sockaddr_in peer = {.sin_family = AF_INET};
	peer.sin_addr.s_addr = htonl(size % 2 ? 0x0a000001 : 0xc0000207);
	struct session *s =
	    session_new(&env->ctx, 1, (struct sockaddr *)&peer, sizeof peer);
	FUZZ_CHECK(s != NULL);

	size_t pos = 0;
	while (pos < size && session_state(s) != SESSION_CLOSED) {
		const uint8_t *sep = memchr(data + pos, 0xff, size - pos);
		size_t end = sep ? (size_t)(sep - data) : size;
		size_t fed =
		    session_feed(s, (const char *)data + pos, end - pos);
		maildir_flush(env->md);
		size_t len;
		const char *out = session_output(s, &len);
		check_replies(out, len);
		session_output_done(s, len);
		session_resume(s);
		pos += fed;
		if (fed == 0 || pos == end)
			pos = end + 1;
	}
	session_free(s);
	drain_new(env->dir);
	return 0;
}
