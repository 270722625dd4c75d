// The bench's load generator in C: bench/tcp/loadgen.ts's workloads (and bench/sni's TLS loops) without a Node
// process in the way. A Node generator tops out near 5–6k new connections/s on this machine, below what HAProxy
// relays, so every proxy looked alike; this one is one thread, one epoll set, non-blocking sockets, level-triggered,
// a few bytes per connection in a table indexed by fd.
//   bench/native/bin/loadgen --mode conn|echo|bulk|latency|tls --port P [--host 127.0.0.1] [--duration S]
//                            [--warmup S] [--concurrency N] [--size BYTES]
//                            [--targets NAME@PORT,NAME@PORT --ca FILE,FILE [--resume 1]]     (tls)   [--sources N]
// Modes (defaults in brackets), as bench/tcp/loadgen.ts:
//   conn     N [100] loops of: connect, write SIZE [64] bytes, read them back, FIN, wait for the peer's FIN, close.
//            op = one connection
//   echo     N [100] connections, each writing SIZE [1024] bytes and waiting for them (one in flight each).
//            op = one round trip
//   bulk     N [4] connections writing SIZE [65536]-byte chunks while at most 1 MiB is unanswered, reading the echo.
//            bytes = bytes echoed back
//   latency  1 connection, SIZE [64] bytes ping-pong; every round trip timed (p50, p90, p99, max, mean in µs)
//   tls      N [32] loops of: connect to the next target's port, full TLS handshake with its NAME as SNI (no
//            session resumption; the certificate verified against the CA files and NAME), read the origin's answer
//            to its close, close. op = one connection that got an answer. With --resume, a TLS 1.3 resumption
//            instead: before the run one full handshake per target fetches the origin's ticket, and every connection
//            of the run offers it (psk_dhe_ke: a new X25519 exchange, no certificate signed or verified). The result
//            counts the connections the origin resumed ("resumed").
// Source addresses (conn and tls, IPv4 loopback targets): each new connection binds the next of N [64] addresses
// 127.0.0.2, 127.0.0.3, … with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the port at connect time per address.
// From one source address at 14k connections/s, the TIME_WAIT sockets this client leaves fill the ephemeral port
// range, and connect's port search (__inet_hash_connect, __inet_check_established, tcp_twsk_unique) took ≈ 30 % of
// the generator's CPU (perf): the generator, not the proxy, set the rate. --sources 0 leaves the choice to the kernel.
// Runs the workload unmeasured for --warmup s, prints {"event":"measuring"} when the measured window starts and
// {"event":"result",…} when it ends (the runner reads the proxy's CPU at those two lines), then exits. Exits on its
// own at duration + warmup + 15 s whatever happens, and when stdin (a pipe or socket: the runner) closes.
#include "../../load/native/common.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

enum { M_CONN, M_ECHO, M_BULK, M_LATENCY, M_TLS };
enum { S_FREE, S_CONNECTING, S_HANDSHAKE, S_OPEN, S_CLOSING };

struct conn {
  uint8_t state;
  uint8_t out_watched; // EPOLLOUT is in this fd's epoll mask
  uint16_t target; // tls: which target
  int64_t sent, got, goal; // bytes sent, received, and to be sent so far
  double sent_at; // latency: when the message in flight was sent (ms)
  SSL *ssl;
};

static struct conn *conns;
static int max_fds, ep, mode;
static int concurrency, size;
static struct sockaddr_storage addr;
static socklen_t addr_len;
static char *payload;
static int measuring, stopped;
static long ops, errors;
static int64_t bytes;
// Loop modes open a connection's successor after the batch of events is handled, not at once: a new socket may
// take the closed one's fd number, and a stale event of the batch would then be read as the new one's.
static int to_open;
// conn and tls: how many loopback source addresses new connections rotate over (0: one, the kernel's choice).
static int n_sources, next_source;

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/** Binds fd to the next source address of the rotation, its port left to connect. 0, or an errno. */
static int bind_source(int fd) {
  struct sockaddr_in src = {.sin_family = AF_INET};
  src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(next_source++ % n_sources));
  int one = 1;
  if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0) return errno;
  return bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ? errno : 0;
}

#define BULK_WINDOW (1 << 20)
#define MAX_TARGETS 16
static struct {
  char name[256];
  int port;
} targets[MAX_TARGETS];
static int n_targets, next_target;
static SSL_CTX *tls_ctx;
// --resume: the session (with the origin's ticket) each target's connections offer (prime_sessions).
static SSL_SESSION *sessions[MAX_TARGETS];
static int resume;
static long resumed;

static double *rtts;
static size_t n_rtts, cap_rtts;

/** Counts a failure of the measured window (warm-up failures only show as a missing rate). */
static void fail(const char *name) {
  if (measuring && !stopped) {
    errors++;
    count_error(name);
  }
}

static void watch(int fd, int out) {
  struct conn *c = &conns[fd];
  if (c->out_watched == out) return;
  c->out_watched = (uint8_t)out;
  epoll_watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN | (out ? EPOLLOUT : 0));
}

static void close_conn(int fd) {
  struct conn *c = &conns[fd];
  if (c->ssl != NULL) SSL_free(c->ssl);
  memset(c, 0, sizeof *c);
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
}

/** A connection ended (done or failed): the loop modes start the next one, the persistent ones lose one. */
static void finish(int fd, int ok) {
  struct conn *c = &conns[fd];
  if (ok && resume && c->ssl != NULL) {
    if (SSL_session_reused(c->ssl) && measuring) resumed++;
    // The answer was read to its end: a clean close. Without this SSL_free takes the connection for a broken one
    // (no close_notify sent) and marks its session, the one every connection offers, not resumable.
    SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  }
  close_conn(fd);
  if (ok && measuring) ops++;
  if (!stopped && (mode == M_CONN || mode == M_TLS)) to_open++;
}

static void sock_fail(int fd, int e) {
  fail(errno_name(e));
  finish(fd, 0);
}

/** Sends until `goal` is reached or the socket is full (then watches EPOLLOUT). Returns -1 when fd was closed. */
static int flush(int fd) {
  struct conn *c = &conns[fd];
  while (c->sent < c->goal) {
    int64_t left = c->goal - c->sent;
    ssize_t w = send(fd, payload, (size_t)(left < size ? left : size), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      sock_fail(fd, errno);
      return -1;
    }
    c->sent += w;
  }
  watch(fd, c->sent < c->goal);
  return 0;
}

static void open_one(void) {
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail(errno_name(errno));
    return;
  }
  if (fd >= max_fds) {
    close(fd);
    fail("EMFILE");
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct conn *c = &conns[fd];
  memset(c, 0, sizeof *c);
  if (mode == M_TLS) {
    c->target = (uint16_t)(next_target++ % n_targets);
    set_port(&addr, targets[c->target].port);
  }
  if (n_sources > 0) {
    int e = bind_source(fd);
    if (e != 0) {
      close(fd);
      fail(errno_name(e));
      return;
    }
  }
  c->state = S_CONNECTING;
  c->out_watched = 1;
  epoll_watch(ep, EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT);
  if (connect(fd, (struct sockaddr *)&addr, addr_len) != 0 && errno != EINPROGRESS) sock_fail(fd, errno);
}

static void record_rtt(double ms) {
  if (n_rtts == cap_rtts) {
    size_t cap = cap_rtts == 0 ? 1 << 16 : cap_rtts * 2;
    double *p = realloc(rtts, cap * sizeof *p);
    if (p == NULL) return;
    rtts = p;
    cap_rtts = cap;
  }
  rtts[n_rtts++] = ms;
}

/** The next message of a persistent connection (echo, latency) or more of the stream (bulk). */
static int feed(int fd) {
  struct conn *c = &conns[fd];
  if (stopped) return 0;
  if (mode == M_BULK) c->goal = c->got + BULK_WINDOW;
  else c->goal += size, c->sent_at = now_ms();
  return flush(fd);
}

// ---------------------------------------------------------------------------------------------------- tls

static void tls_fail(int fd, const char *name) {
  ERR_clear_error();
  fail(name);
  finish(fd, 0);
}

/** Drives the handshake, then reads the answer to its end. Called whenever the socket is ready either way. */
static void tls_step(int fd) {
  struct conn *c = &conns[fd];
  if (c->state == S_HANDSHAKE) {
    int r = SSL_connect(c->ssl);
    if (r != 1) {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ) return watch(fd, 0);
      if (e == SSL_ERROR_WANT_WRITE) return watch(fd, 1);
      long v = SSL_get_verify_result(c->ssl);
      return tls_fail(fd, v != X509_V_OK ? "CERT_VERIFY" : e == SSL_ERROR_SYSCALL ? "TLS_EOF" : "TLS_HANDSHAKE");
    }
    c->state = S_OPEN;
    watch(fd, 0);
  }
  char buf[4096];
  for (;;) {
    int n = SSL_read(c->ssl, buf, sizeof buf);
    if (n > 0) {
      c->got += n;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ) return watch(fd, 0);
    if (e == SSL_ERROR_WANT_WRITE) return watch(fd, 1);
    // The origin's close_notify, or its FIN: done if it answered first.
    ERR_clear_error();
    if (c->got > 0) return finish(fd, 1);
    return tls_fail(fd, "NO_ANSWER");
  }
}

// ---------------------------------------------------------------------------------------------------- events

static void on_connected(int fd) {
  struct conn *c = &conns[fd];
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return sock_fail(fd, err);
  if (mode == M_TLS) {
    c->ssl = SSL_new(tls_ctx);
    if (c->ssl == NULL) return tls_fail(fd, "TLS_NEW");
    SSL_set_fd(c->ssl, fd);
    SSL_set_tlsext_host_name(c->ssl, targets[c->target].name);
    SSL_set1_host(c->ssl, targets[c->target].name);
    if (sessions[c->target] != NULL) SSL_set_session(c->ssl, sessions[c->target]);
    c->state = S_HANDSHAKE;
    return tls_step(fd);
  }
  c->state = S_OPEN;
  if (mode == M_CONN) {
    c->goal = size;
    flush(fd);
  } else feed(fd);
}

static void on_readable(int fd) {
  static char buf[1 << 18];
  struct conn *c = &conns[fd];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) sock_fail(fd, errno);
    return;
  }
  if (n == 0) {
    // The peer's FIN: the end of a conn loop once its bytes came back, an early close otherwise.
    if (mode == M_CONN && c->state == S_CLOSING) return finish(fd, 1);
    fail("EARLY_CLOSE");
    return finish(fd, 0);
  }
  c->got += n;
  switch (mode) {
    case M_CONN:
      if (c->state == S_OPEN && c->got >= size) {
        c->state = S_CLOSING;
        shutdown(fd, SHUT_WR);
      }
      break;
    case M_BULK:
      if (measuring) bytes += n;
      if (c->sent - c->got < BULK_WINDOW) feed(fd);
      break;
    default: // echo, latency: one message in flight
      if (c->got >= c->goal) {
        if (measuring) {
          ops++;
          if (mode == M_LATENCY) record_rtt(now_ms() - c->sent_at);
        }
        feed(fd);
      }
  }
}

static void on_event(int fd, uint32_t events) {
  struct conn *c = &conns[fd];
  if (c->state == S_FREE) return;
  if (c->state == S_CONNECTING) {
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(fd);
    return;
  }
  if (c->state == S_HANDSHAKE || mode == M_TLS) return tls_step(fd);
  if ((events & EPOLLOUT) && flush(fd) != 0) return;
  if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(fd);
}

// ---------------------------------------------------------------------------------------------------- main

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(double p) {
  if (n_rtts == 0) return 0;
  size_t i = (size_t)(p / 100 * (double)n_rtts);
  return rtts[i < n_rtts ? i : n_rtts - 1];
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(void) {
  fprintf(stderr,
          "loadgen: usage: --mode conn|echo|bulk|latency|tls --port P [--host H] [--duration S] [--warmup S]\n"
          "                [--concurrency N] [--size BYTES] [--targets NAME@PORT,… --ca FILE,… [--resume 1]]\n"
          "                [--sources N]\n");
  exit(2);
}

static void parse_targets(char *list) {
  for (char *save = NULL, *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
    char *at = strrchr(t, '@');
    if (at == NULL || n_targets == MAX_TARGETS || (size_t)(at - t) >= sizeof targets[0].name) usage();
    memcpy(targets[n_targets].name, t, (size_t)(at - t));
    targets[n_targets].port = atoi(at + 1);
    if (targets[n_targets].port <= 0) usage();
    n_targets++;
  }
}

static void setup_tls(char *ca_list) {
  tls_ctx = SSL_CTX_new(TLS_client_method());
  if (tls_ctx == NULL) exit(1);
  SSL_CTX_set_verify(tls_ctx, SSL_VERIFY_PEER, NULL);
  // No session cache: without --resume every connection is a full handshake, as a new client's; with it the one
  // session per target kept by hand (sessions[]) is what connections offer.
  SSL_CTX_set_session_cache_mode(tls_ctx, SSL_SESS_CACHE_OFF);
  if (!resume) SSL_CTX_set_options(tls_ctx, SSL_OP_NO_TICKET);
  for (char *save = NULL, *f = strtok_r(ca_list, ",", &save); f != NULL; f = strtok_r(NULL, ",", &save)) {
    if (SSL_CTX_load_verify_locations(tls_ctx, f, NULL) != 1) {
      fprintf(stderr, "loadgen: cannot load CA file %s\n", f);
      exit(2);
    }
  }
}

/**
 * --resume: one full handshake per target before the run, blocking, to fetch the ticket every connection of the run
 * then offers; so even a short run's window holds resumed connections only. Exits when a target sends no ticket.
 */
static void prime_sessions(void) {
  for (int t = 0; t < n_targets; t++) {
    set_port(&addr, targets[t].port);
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    SSL *ssl = SSL_new(tls_ctx);
    if (fd < 0 || ssl == NULL || connect(fd, (struct sockaddr *)&addr, addr_len) != 0) {
      fprintf(stderr, "loadgen: cannot reach %s@%d to fetch its ticket\n", targets[t].name, targets[t].port);
      exit(1);
    }
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, targets[t].name);
    SSL_set1_host(ssl, targets[t].name);
    char buf[256];
    if (SSL_connect(ssl) == 1) {
      while (SSL_read(ssl, buf, sizeof buf) > 0) {
      }
    }
    SSL_SESSION *s = SSL_get1_session(ssl);
    if (s == NULL || !SSL_SESSION_is_resumable(s)) {
      fprintf(stderr, "loadgen: %s@%d sent no session ticket (origin without --tickets?)\n", targets[t].name,
              targets[t].port);
      exit(1);
    }
    sessions[t] = s;
    SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN); // see finish: keeps the session resumable
    SSL_free(ssl);
    close(fd);
  }
  set_port(&addr, targets[0].port);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *mode_arg = "echo";
  char *targets_arg = NULL, *ca_arg = NULL;
  int port = 0, sources = 64;
  double duration_s = 5, warmup_s = 1;
  concurrency = -1;
  size = -1;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc) usage();
    const char *v = argv[++i];
    if (strcmp(k, "--mode") == 0) mode_arg = v;
    else if (strcmp(k, "--host") == 0) host = v;
    else if (strcmp(k, "--port") == 0) port = atoi(v);
    else if (strcmp(k, "--duration") == 0) duration_s = atof(v);
    else if (strcmp(k, "--warmup") == 0) warmup_s = atof(v);
    else if (strcmp(k, "--concurrency") == 0) concurrency = atoi(v);
    else if (strcmp(k, "--size") == 0) size = atoi(v);
    else if (strcmp(k, "--targets") == 0) targets_arg = strdup(v);
    else if (strcmp(k, "--ca") == 0) ca_arg = strdup(v);
    else if (strcmp(k, "--sources") == 0) sources = atoi(v);
    else if (strcmp(k, "--resume") == 0 && strcmp(v, "1") == 0) resume = 1;
    else usage();
  }
  static const struct {
    const char *name;
    int concurrency, size;
  } modes[] = {{"conn", 100, 64}, {"echo", 100, 1024}, {"bulk", 4, 65536}, {"latency", 1, 64}, {"tls", 32, 0}};
  mode = -1;
  for (int m = 0; m < 5; m++) {
    if (strcmp(mode_arg, modes[m].name) == 0) mode = m;
  }
  if (mode < 0 || !(duration_s > 0) || !(warmup_s >= 0)) usage();
  if (concurrency < 0) concurrency = modes[mode].concurrency;
  if (size < 0) size = modes[mode].size;
  if (mode == M_LATENCY) concurrency = 1;
  // At most 10,000 sockets: this machine allows 20,000 fds per process.
  if (concurrency < 1 || concurrency > 10000 || size > (1 << 20) || (mode != M_TLS && size < 1)) usage();
  if (mode == M_TLS) {
    if (targets_arg == NULL || ca_arg == NULL) usage();
    parse_targets(targets_arg);
    setup_tls(ca_arg);
    port = targets[0].port;
  }
  if (port <= 0 || (addr_len = parse_addr(host, port, &addr)) == 0 || sources < 0 || sources > 250) usage();
  // Only loopback targets: any 127.0.0.0/8 address is this host's own, so every source can reach them.
  int loopback = addr.ss_family == AF_INET && (ntohl(((struct sockaddr_in *)&addr)->sin_addr.s_addr) >> 24) == 127;
  if ((mode == M_CONN || mode == M_TLS) && loopback) n_sources = sources;
  if (mode == M_TLS && resume) prime_sessions();
  payload = malloc(size > 0 ? (size_t)size : 1);
  memset(payload, 'a', size > 0 ? (size_t)size : 1);
  signal(SIGPIPE, SIG_IGN);

  max_fds = fd_limit();
  conns = calloc((size_t)max_fds, sizeof *conns);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (conns == NULL || ep < 0) {
    perror("loadgen");
    return 1;
  }
  struct stat st;
  if (fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
    struct epoll_event sev = {.events = EPOLLIN, .data.fd = STDIN_FILENO};
    epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &sev);
  }
  for (int i = 0; i < concurrency; i++) open_one();

  double start = now_ms();
  double measure_at = start + warmup_s * 1000, end_at = measure_at + duration_s * 1000;
  double hard_stop = end_at + 15000;
  double t0 = 0, cpu0 = 0;
  static struct epoll_event events[4096];
  for (;;) {
    double now = now_ms();
    if (!measuring && now >= measure_at && t0 == 0) {
      cpu0 = cpu_seconds();
      t0 = now_ms();
      measuring = 1;
      printf("{\"event\":\"measuring\"}\n");
      fflush(stdout);
    }
    if (measuring && now >= end_at) break;
    if (now >= hard_stop) {
      fprintf(stderr, "loadgen: ran past its deadline\n");
      return 3;
    }
    double next = measuring ? end_at : measure_at;
    int timeout = (int)(next - now) + 1;
    int n = epoll_wait(ep, events, 4096, timeout < 0 ? 0 : timeout);
    if (n < 0 && errno != EINTR) {
      perror("loadgen: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == STDIN_FILENO) {
        char drop[256];
        ssize_t r = read(STDIN_FILENO, drop, sizeof drop);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) return 4; // the runner is gone
        continue;
      }
      on_event(fd, events[i].events);
    }
    // Only this batch's successors: one that fails at once is retried after the next epoll_wait, not in a spin.
    for (int k = to_open; k > 0; k--, to_open--) open_one();
  }
  measuring = 0;
  double seconds = (now_ms() - t0) / 1000;
  double cpu = cpu_seconds() - cpu0;
  out_t o = {0};
  static const char *names[] = {"conn", "echo", "bulk", "latency", "tls"};
  out_add(&o,
          "{\"event\":\"result\",\"mode\":\"%s\",\"concurrency\":%d,\"size\":%d,\"seconds\":%.6f,\"ops\":%ld,"
          "\"bytes\":%lld,\"rate\":%.3f,\"errors\":%ld,\"errorCodes\":",
          names[mode], concurrency, size, seconds, ops, (long long)bytes,
          (mode == M_BULK ? (double)bytes : (double)ops) / seconds, errors);
  out_errors(&o);
  if (mode == M_TLS) out_add(&o, ",\"resumed\":%ld", resumed);
  out_add(&o, ",\"loadgenCpuSeconds\":%.4f", cpu);
  if (mode == M_LATENCY) {
    qsort(rtts, n_rtts, sizeof *rtts, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n_rtts; i++) sum += rtts[i];
    out_add(&o, ",\"latencyUs\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f,\"mean\":%.2f}",
            percentile(50) * 1000, percentile(90) * 1000, percentile(99) * 1000,
            (n_rtts ? rtts[n_rtts - 1] : 0) * 1000, (n_rtts ? sum / (double)n_rtts : 0) * 1000);
  }
  out_add(&o, "}");
  out_line(&o);
  stopped = 1;
  // Like the Node generator's destroy(): every socket reset, no TIME_WAIT left behind for the next run.
  for (int fd = 0; fd < max_fds; fd++) {
    if (conns[fd].state != S_FREE) close_rst(fd);
  }
  return 0;
}
