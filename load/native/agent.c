// The native load agent: load/agent.ts in C, for the same coordinator (load/run.ts) over the same JSON lines
// (load/protocol.ts) on stdin/stdout. It opens connections through the proxy, checks one round trip on each (tcp: the
// probe echoed back; postgres: a startup message answered by AuthenticationOk/BackendKeyData/ReadyForQuery, checked
// at the R, K, Z and I bytes; postgres-pooled: a login as one of the configured roles, SCRAM-SHA-256 or md5, then
// `SELECT 1` read to ReadyForQuery: pglogin.h), then holds them idle and reports counts every 500 ms.
//   load/native/bin/agent [--index I]        (I defaults to $JOB_COMPLETION_INDEX, then 0)
// The TCP control path (--coordinator HOST:PORT, for Kubernetes pods) is only in the Node agent: the coordinator runs
// Node agents for --agent-control tcp and --remote-agents.
//
// One thread, one epoll set, non-blocking sockets, level-triggered. Per connection: 6 bytes in a table indexed by fd
// (state, bytes of the answer seen, its slot in the pending or held list) and 4 bytes in that list; pending
// connections also have their start time in the pending list (at most --concurrency of them). Nothing is allocated
// per connection. Like the Node agent: explicit source addresses and ports (portLo + n % perSource on address
// n / perSource), a port someone listens on is skipped (EADDRINUSE), failed and lost connections are not replaced,
// a lower target closes the newest held connections, held connections are closed with an RST (SO_LINGER 0) on stop,
// and it exits when stdin closes, on `stop`, or when its lifetime is over.
#include "common.h"
#include "pglogin.h"

#include <netdb.h>

enum { S_FREE = 0, S_CONNECTING, S_WAITING, S_HELD };

struct conn {
  uint8_t state;
  uint8_t got; // bytes of the answer received so far
  uint32_t slot; // index in pending[] (S_CONNECTING, S_WAITING) or held[] (S_HELD)
} __attribute__((packed));

struct pend {
  int fd;
  int probe; // which of probes[] it sends: attempt n sends probes[n % n_probes], as the Node agent
  int login; // postgres-pooled: its slot in logins[] once connected, else -1
  double t0;
};

static struct conn *conns;
static int max_fds;
static struct pend *pending;
static int n_pending;
static int *held;
static int n_held;
static int ep;

static int id;
static int have_config;
static int stopping;
static long target, started, confirmed, failed, lost, skipped, closed_by_us;

// Config (AgentConfig in load/protocol.ts).
static int mode_pg;
static int mode_pooled;
static char **users, **passwords;
static int n_users, n_passwords;
static pg_role *roles;
// postgres-pooled: one login state per connection being opened (--concurrency of them), taken from a free stack.
static pgx_t *logins;
static int *free_logins;
static int n_free_logins;
static char cfg_host[256];
static int cfg_port;
static struct sockaddr_storage dest;
static socklen_t dest_len;
static struct sockaddr_storage *sources;
static socklen_t *source_lens;
static int n_sources;
static long per_source = 10000;
static int port_lo = 1024;
static char **databases;
static int n_databases;
static int concurrency = 256;
static double confirm_timeout_ms = 30000;
static double lifetime_ms = 3600e3;
static double lifetime_end;

/** What a connection sends first, used in turn: the tcp probe, or one startup message per database. */
static struct {
  unsigned char *p;
  size_t len;
} *probes;
static int n_probes;

static const char PROBE[] = "polyproxy-load\n";
#define PROBE_LEN (sizeof PROBE - 1)
#define STARTUP_ANSWER_BYTES 28

static out_t out;

static void report(void) {
  out_add(&out,
          "{\"t\":\"report\",\"id\":%d,\"pid\":%d,\"target\":%ld,\"started\":%ld,\"confirmed\":%ld,\"pending\":%d,"
          "\"failed\":%ld,\"lost\":%ld,\"skipped\":%ld,\"errors\":",
          id, (int)getpid(), target, started, confirmed, n_pending, failed, lost, skipped);
  out_errors(&out);
  // heapUsedBytes: Node's V8 heap; here there is none (the tables are in rssBytes).
  out_add(&out, ",\"rssBytes\":%ld,\"heapUsedBytes\":0}", rss_bytes());
  out_line(&out);
}

// ---------------------------------------------------------------------------------------------------- lists

static void pending_remove(int fd) {
  uint32_t i = conns[fd].slot;
  if (pending[i].login >= 0) free_logins[n_free_logins++] = pending[i].login;
  struct pend last = pending[--n_pending];
  if ((int)i != n_pending) {
    pending[i] = last;
    conns[last.fd].slot = i;
  }
}

static void held_remove(int fd) {
  uint32_t i = conns[fd].slot;
  int last = held[--n_held];
  if ((int)i != n_held) {
    held[i] = last;
    conns[last].slot = i;
  }
}

static void forget(int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  conns[fd].state = S_FREE;
  conns[fd].got = 0;
}

/** An attempt that will not be confirmed: counted as failed (with `code`, when given), closed. */
static void fail(int fd, const char *code) {
  if (code != NULL) count_error(code);
  pending_remove(fd);
  failed++;
  forget(fd);
  close(fd);
}

// ---------------------------------------------------------------------------------------------------- opening

static void open_one(void) {
  long n = started++;
  int fd = socket(dest.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    count_error(errno_name(errno));
    failed++;
    return;
  }
  if (fd >= max_fds) {
    close(fd);
    count_error("EMFILE");
    failed++;
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (n_sources > 0) {
    // As libuv's bind (Node's localAddress/localPort): SO_REUSEADDR, so only a listener on the port refuses it.
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int si = (int)((n / per_source) % n_sources);
    struct sockaddr_storage src = sources[si];
    set_port(&src, port_lo + (int)(n % per_source));
    if (bind(fd, (struct sockaddr *)&src, source_lens[si]) != 0) {
      int e = errno;
      close(fd);
      if (e == EADDRINUSE) skipped++; // our explicit source port is taken (someone listens on it): skip it
      else {
        count_error(errno_name(e));
        failed++;
      }
      return;
    }
  }
  int rc = connect(fd, (struct sockaddr *)&dest, dest_len);
  if (rc != 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    if (e == EADDRINUSE) skipped++;
    else {
      count_error(errno_name(e));
      failed++;
    }
    return;
  }
  conns[fd].state = S_CONNECTING;
  conns[fd].got = 0;
  conns[fd].slot = (uint32_t)n_pending;
  pending[n_pending].fd = fd;
  pending[n_pending].probe = (int)(n % n_probes);
  pending[n_pending].login = -1;
  pending[n_pending].t0 = now_ms();
  n_pending++;
  epoll_watch(ep, EPOLL_CTL_ADD, fd, EPOLLOUT);
}

static void open_more(void) {
  if (!have_config || stopping) return;
  // Failed and lost connections are not replaced (skipped ports are): the coordinator sees the shortfall and fails
  // the run rather than this agent hammering a broken proxy.
  while (failed + lost == 0) {
    if (skipped > 1000 + per_source) {
      count_error("NO_FREE_SOURCE_PORT");
      failed++;
      return;
    }
    if (!(started - skipped - closed_by_us < target && n_pending < concurrency)) return;
    open_one();
  }
}

// ---------------------------------------------------------------------------------------------------- events

static void on_connected(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    fail(fd, errno_name(err));
    return;
  }
  int pi = pending[conns[fd].slot].probe;
  // The probe is small (≤ a few hundred bytes): one send into an empty socket buffer takes it whole.
  ssize_t w = send(fd, probes[pi].p, probes[pi].len, MSG_NOSIGNAL);
  if (w != (ssize_t)probes[pi].len) {
    fail(fd, w < 0 ? errno_name(errno) : "SHORT_WRITE");
    return;
  }
  conns[fd].state = S_WAITING;
  if (mode_pooled) {
    // Attempt n logs in as role (n / databases) % roles to database n % databases (probes[] is in that order).
    int li = free_logins[--n_free_logins];
    pgx_t *x = &logins[li];
    memset(x, 0, offsetof(pgx_t, buf));
    x->role = (pi / n_databases) % n_users;
    pending[conns[fd].slot].login = li;
  }
  epoll_watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
}

/** The connection is confirmed: from pending to held. */
static void hold(int fd) {
  pending_remove(fd);
  conns[fd].state = S_HELD;
  conns[fd].slot = (uint32_t)n_held;
  held[n_held++] = fd;
  confirmed++;
  if (confirmed == target) report();
}

/** postgres-pooled: the login and the query, message by message (pglogin.h). */
static void on_login(int fd) {
  const char *error = NULL;
  int rc = pgx_read(&logins[pending[conns[fd].slot].login], roles, fd, &error);
  if (rc > 0) hold(fd);
  else if (rc < 0) fail(fd, error);
}

static void on_answer(int fd) {
  unsigned char buf[256];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return;
    fail(fd, errno_name(errno));
    return;
  }
  if (n == 0) {
    fail(fd, "CLOSED_BEFORE_ANSWER");
    return;
  }
  unsigned at = conns[fd].got;
  unsigned expected = mode_pg ? STARTUP_ANSWER_BYTES : PROBE_LEN;
  int good = at + (unsigned)n <= expected;
  for (ssize_t i = 0; i < n && good; i++) {
    unsigned p = at + (unsigned)i;
    unsigned char c = buf[i];
    if (!mode_pg) good = c == (unsigned char)PROBE[p];
    // R at 0, K at 9, Z at 22 and status I at 27, wherever the segment boundaries fall.
    else if (p == 0) good = c == 'R';
    else if (p == 9) good = c == 'K';
    else if (p == 22) good = c == 'Z';
    else if (p == 27) good = c == 'I';
  }
  if (!good) {
    fail(fd, "BAD_ANSWER");
    return;
  }
  conns[fd].got = (uint8_t)(at + (unsigned)n);
  if (conns[fd].got < expected) return;
  hold(fd);
}

/** A held connection is readable: bytes after the check are ignored; end of stream or an error means it is lost. */
static void on_held(int fd) {
  unsigned char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;
  if (n < 0) count_error(errno_name(errno));
  held_remove(fd);
  forget(fd);
  close(fd);
  if (!stopping) {
    lost++;
    confirmed--;
  }
}

// ---------------------------------------------------------------------------------------------------- control

static void stop(const char *why) {
  if (stopping) return;
  stopping = 1;
  report();
  // RST rather than FIN: no TIME_WAIT left behind on these source ports for the next run.
  for (int i = 0; i < n_pending; i++) close(pending[i].fd);
  n_pending = 0;
  for (int i = 0; i < n_held; i++) close_rst(held[i]);
  n_held = 0;
  out_add(&out, "{\"t\":\"bye\",\"id\":%d}", id);
  out_line(&out);
  fprintf(stderr, "agent %d: stopping (%s)\n", id, why);
  exit(0);
}

// A message's fields, as the JSON reader meets them (see common.h for why it is hand-written): first its type and
// target (on_message_field), then, for the first config line only, the config's fields (on_config_field).
static char msg_t[16];
static long msg_n = -1;
static int cfg_sources_cap, cfg_db_cap, cfg_users_cap, cfg_passwords_cap;
static char **cfg_source_strs;
static int n_cfg_sources;

static void push_str(char ***arr, int *n, int *cap, const char *s) {
  if (*n == *cap) {
    *cap = *cap == 0 ? 8 : *cap * 2;
    *arr = realloc(*arr, (size_t)*cap * sizeof **arr);
  }
  (*arr)[(*n)++] = strdup(s);
}

static void on_message_field(const char *key, int kind, const char *s, double num, int index) {
  if (index >= 0) return;
  if (strcmp(key, "t") == 0 && kind == J_STR) snprintf(msg_t, sizeof msg_t, "%s", s);
  else if (strcmp(key, "n") == 0 && kind == J_NUM) msg_n = (long)num;
}

static void on_config_field(const char *key, int kind, const char *s, double num, int index) {
  if (strcmp(key, "mode") == 0 && kind == J_STR) {
    mode_pg = strcmp(s, "postgres") == 0;
    mode_pooled = strcmp(s, "postgres-pooled") == 0;
  }
  else if (strcmp(key, "host") == 0 && kind == J_STR) snprintf(cfg_host, sizeof cfg_host, "%s", s);
  else if (strcmp(key, "port") == 0 && kind == J_NUM) cfg_port = (int)num;
  else if (strcmp(key, "sources") == 0 && kind == J_STR && index >= 0)
    push_str(&cfg_source_strs, &n_cfg_sources, &cfg_sources_cap, s);
  else if (strcmp(key, "perSource") == 0 && kind == J_NUM) per_source = (long)num;
  else if (strcmp(key, "portLo") == 0 && kind == J_NUM) port_lo = (int)num;
  else if (strcmp(key, "databases") == 0 && kind == J_STR && index >= 0)
    push_str(&databases, &n_databases, &cfg_db_cap, s);
  else if (strcmp(key, "users") == 0 && kind == J_STR && index >= 0) push_str(&users, &n_users, &cfg_users_cap, s);
  else if (strcmp(key, "passwords") == 0 && kind == J_STR && index >= 0)
    push_str(&passwords, &n_passwords, &cfg_passwords_cap, s);
  else if (strcmp(key, "concurrency") == 0 && kind == J_NUM) concurrency = (int)num;
  else if (strcmp(key, "confirmTimeoutMs") == 0 && kind == J_NUM) confirm_timeout_ms = num;
  else if (strcmp(key, "lifetimeMs") == 0 && kind == J_NUM) lifetime_ms = num;
}

/** postgres: a protocol 3.0 StartupMessage for `user` and `database` (protocol.ts startupMessage). */
static void startup_message(const char *user, const char *database, unsigned char **p, size_t *len) {
  char body[1024];
  int blen = snprintf(body, sizeof body, "user%c%s%cdatabase%c%s%capplication_name%cpolyproxy-load%c", 0, user, 0, 0,
                      database, 0, 0, 0);
  if (blen < 0 || blen >= (int)sizeof body - 1) blen = (int)sizeof body - 2;
  body[blen++] = 0;
  *len = 8 + (size_t)blen;
  *p = malloc(*len);
  uint32_t total = htonl((uint32_t)*len), version = htonl(3u << 16);
  memcpy(*p, &total, 4);
  memcpy(*p + 4, &version, 4);
  memcpy(*p + 8, body, (size_t)blen);
}

static int apply_config(void) {
  // The destination: a literal address, else a name resolved once here.
  dest_len = parse_addr(cfg_host, cfg_port, &dest);
  if (dest_len == 0) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(cfg_host, NULL, &hints, &res) != 0 || res == NULL) {
      fprintf(stderr, "agent %d: cannot resolve %s\n", id, cfg_host);
      return -1;
    }
    memcpy(&dest, res->ai_addr, res->ai_addrlen);
    dest_len = res->ai_addrlen;
    set_port(&dest, cfg_port);
    freeaddrinfo(res);
  }
  n_sources = n_cfg_sources;
  sources = calloc((size_t)(n_sources + 1), sizeof *sources);
  source_lens = calloc((size_t)(n_sources + 1), sizeof *source_lens);
  for (int i = 0; i < n_sources; i++) {
    source_lens[i] = parse_addr(cfg_source_strs[i], 0, &sources[i]);
    if (source_lens[i] == 0) {
      fprintf(stderr, "agent %d: bad source address %s\n", id, cfg_source_strs[i]);
      return -1;
    }
  }
  if (per_source <= 0) per_source = 1;
  if (concurrency <= 0) concurrency = 1;
  if (concurrency > max_fds) concurrency = max_fds;
  pending = calloc((size_t)concurrency, sizeof *pending);
  if (mode_pg || mode_pooled) {
    if (n_databases == 0) push_str(&databases, &n_databases, &cfg_db_cap, "load");
    if (!mode_pooled || n_users == 0) push_str(&users, &n_users, &cfg_users_cap, "load");
    while (n_passwords < n_users) push_str(&passwords, &n_passwords, &cfg_passwords_cap, "");
    // Every database with every role, databases varying fastest (protocol.ts loginsOf).
    n_probes = n_databases * (mode_pooled ? n_users : 1);
    probes = calloc((size_t)n_probes, sizeof *probes);
    for (int i = 0; i < n_probes; i++) {
      startup_message(users[i / n_databases], databases[i % n_databases], &probes[i].p, &probes[i].len);
    }
    if (mode_pooled) {
      roles = calloc((size_t)n_users, sizeof *roles);
      for (int i = 0; i < n_users; i++) roles[i] = (pg_role){.user = users[i], .password = passwords[i]};
      logins = calloc((size_t)concurrency, sizeof *logins);
      free_logins = calloc((size_t)concurrency, sizeof *free_logins);
      if (logins == NULL || free_logins == NULL) return -1;
      for (int i = 0; i < concurrency; i++) free_logins[n_free_logins++] = concurrency - 1 - i;
    }
  } else {
    n_probes = 1;
    probes = calloc(1, sizeof *probes);
    probes[0].p = (unsigned char *)PROBE;
    probes[0].len = PROBE_LEN;
  }
  lifetime_end = now_ms() + lifetime_ms;
  have_config = 1;
  return 0;
}

static void on_line(char *line, size_t len) {
  while (len > 0 && (*line == ' ' || *line == '\t' || *line == '\r')) line++, len--;
  if (len == 0 || *line != '{') return;
  msg_t[0] = 0;
  msg_n = -1;
  if (json_parse(line, len, on_message_field) != 0) return;
  if (strcmp(msg_t, "config") == 0) {
    if (have_config) return; // once, as the coordinator sends it
    json_parse(line, len, on_config_field);
    if (apply_config() != 0) exit(1);
  } else if (strcmp(msg_t, "target") == 0 && msg_n >= 0) {
    target = msg_n;
    if (target < confirmed) {
      // Ramp down: close the newest held connections (RST, as on stop).
      while (confirmed > target && n_held > 0) {
        int fd = held[--n_held];
        forget(fd);
        close_rst(fd);
        confirmed--;
        closed_by_us++;
      }
    }
    open_more();
    report();
  } else if (strcmp(msg_t, "stop") == 0) {
    stop("asked");
  }
}

// ---------------------------------------------------------------------------------------------------- main

int main(int argc, char **argv) {
  const char *index = getenv("JOB_COMPLETION_INDEX");
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--index") == 0 && i + 1 < argc) index = argv[++i];
    else if (strcmp(argv[i], "--coordinator") == 0) {
      fprintf(stderr, "agent: --coordinator (control over TCP) is in the Node agent only: node load/agent.ts\n");
      return 2;
    }
  }
  if (getenv("LOAD_COORDINATOR") != NULL && getenv("LOAD_COORDINATOR")[0] != 0) {
    fprintf(stderr, "agent: LOAD_COORDINATOR (control over TCP) is in the Node agent only: node load/agent.ts\n");
    return 2;
  }
  id = index != NULL ? atoi(index) : 0;
  signal(SIGPIPE, SIG_IGN);
  max_fds = fd_limit();
  conns = calloc((size_t)max_fds, sizeof *conns);
  held = calloc((size_t)max_fds, sizeof *held);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (conns == NULL || held == NULL || ep < 0) {
    perror("agent");
    return 1;
  }
  struct epoll_event sev = {.events = EPOLLIN, .data.fd = STDIN_FILENO};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &sev) != 0) {
    perror("agent: stdin");
    return 1;
  }
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  out_add(&out, "{\"t\":\"hello\",\"id\":%d,\"pid\":%d,\"host\":", id, (int)getpid());
  out_str(&out, host);
  out_add(&out, "}");
  out_line(&out);

  lines_t lines = {0};
  struct epoll_event events[1024];
  int stdin_ready = 0;
  double next_tick = now_ms() + 500;
  for (;;) {
    double now = now_ms();
    int timeout = (int)(next_tick - now);
    if (timeout < 0) timeout = 0;
    int n = epoll_wait(ep, events, 1024, timeout);
    if (n < 0 && errno != EINTR) {
      perror("agent: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == STDIN_FILENO) {
        stdin_ready = 1; // after the batch: a lower target closes fds whose events may still be in it
        continue;
      }
      switch (conns[fd].state) {
        case S_CONNECTING: on_connected(fd); break;
        case S_WAITING: mode_pooled ? on_login(fd) : on_answer(fd); break;
        case S_HELD: on_held(fd); break;
        default: break;
      }
    }
    if (stdin_ready) {
      stdin_ready = 0;
      if (!lines_read(&lines, on_line)) stop("stdin closed");
    }
    open_more();
    now = now_ms();
    if (now >= next_tick) {
      next_tick = now + 500;
      if (have_config) {
        if (now >= lifetime_end) stop("lifetime over");
        // One sweep for every pending connection's deadline (newest last: walk backwards, removal swaps).
        for (int i = n_pending - 1; i >= 0; i--) {
          if (i < n_pending && pending[i].t0 < now - confirm_timeout_ms) fail(pending[i].fd, "TIMEOUT");
        }
        open_more();
      }
      report();
    }
  }
}
