// The native load backend: load/backend.ts in C. An echo server on several addresses; several of these processes
// listen on the same addresses (SO_REUSEPORT: the kernel spreads connections over them). tcp mode echoes every byte;
// postgres mode answers the startup message (length-prefixed) with AuthenticationOk, BackendKeyData and
// ReadyForQuery (28 bytes, protocol.ts startupAnswer), then echoes.
//   load/native/bin/backend --listen 127.0.0.1:7001,127.0.0.1:7002 --mode tcp|postgres [--id K] [--lifetime S]
// Reports a JSON line (BackendReport in load/protocol.ts) once listening and every 500 ms on stdout; exits when stdin
// closes (its coordinator is gone), on SIGTERM or SIGINT (closing every socket with an RST), or when its lifetime is
// over.
//
// One thread, one epoll set, non-blocking sockets, level-triggered. Per socket: 24 bytes in a table indexed by fd
// (open flag, the startup message's length bytes and how much of it is still to come, and an output buffer that is
// only allocated when the peer does not read what is echoed: reading stops until it is written).
#include "common.h"

struct bconn {
  uint8_t open;
  uint8_t len_got; // postgres: bytes of the startup message's length seen (4 = all)
  uint8_t len[4];
  uint8_t answered; // postgres: startup answered, echoing now (tcp: always 1)
  uint8_t pad;
  int32_t skip; // postgres: bytes of the startup message still to come after its length
  uint32_t out_len; // bytes waiting in out (the peer's receive window was full)
  char *out;
};

static struct bconn *conns;
static int max_fds;
static int ep;
static int mode_pg;
static int backend_id;
static long open_count, accepted, errors;
static uint32_t next_pid;

#define MAX_LISTEN 4096
static int listeners[MAX_LISTEN];
static char listening[MAX_LISTEN][64];
static int n_listen;
static int paused; // listeners taken out of the epoll set after EMFILE, back at the next tick

static volatile sig_atomic_t got_signal;
static out_t out;

static void on_signal(int sig) { got_signal = sig; }

static void report(void) {
  out_add(&out, "{\"t\":\"backend\",\"pid\":%d,\"listening\":[", (int)getpid());
  for (int i = 0; i < n_listen; i++) {
    if (i > 0) out_add(&out, ",");
    out_str(&out, listening[i]);
  }
  out_add(&out, "],\"open\":%ld,\"accepted\":%ld,\"errors\":%ld,\"errorCodes\":", open_count, accepted, errors);
  out_errors(&out);
  out_add(&out, ",\"rssBytes\":%ld}", rss_bytes());
  out_line(&out);
}

/** Listeners are marked open == 2 in the table, connections 1. */
static int is_listener(int fd) {
  return fd < max_fds && conns[fd].open == 2;
}

static void close_conn(int fd, int rst) {
  struct bconn *c = &conns[fd];
  free(c->out);
  memset(c, 0, sizeof *c);
  open_count--;
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  if (rst) close_rst(fd);
  else close(fd);
}

static void sock_error(int fd, int e) {
  errors++;
  count_error(errno_name(e));
  close_conn(fd, 0);
}

/** Sends bytes, or queues them and stops reading until the peer takes them. Returns 0, or -1 when fd was closed. */
static int send_bytes(int fd, const char *p, size_t len) {
  struct bconn *c = &conns[fd];
  if (c->out_len == 0) {
    ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      sock_error(fd, errno);
      return -1;
    }
    if (w > 0) {
      p += w;
      len -= (size_t)w;
    }
    if (len == 0) return 0;
    epoll_watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
  }
  char *grown = realloc(c->out, c->out_len + len);
  if (grown == NULL) {
    sock_error(fd, ENOMEM);
    return -1;
  }
  memcpy(grown + c->out_len, p, len);
  c->out = grown;
  c->out_len += (uint32_t)len;
  return 0;
}

static void on_writable(int fd) {
  struct bconn *c = &conns[fd];
  ssize_t w = send(fd, c->out, c->out_len, MSG_NOSIGNAL);
  if (w < 0) {
    if (errno != EAGAIN && errno != EINTR) sock_error(fd, errno);
    return;
  }
  memmove(c->out, c->out + w, c->out_len - (size_t)w);
  c->out_len -= (uint32_t)w;
  if (c->out_len > 0) return;
  free(c->out);
  c->out = NULL;
  epoll_watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
}

static void on_readable(int fd) {
  static char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) sock_error(fd, errno);
    return;
  }
  if (n == 0) {
    close_conn(fd, 0); // the peer ended: so do we (Node's allowHalfOpen false)
    return;
  }
  struct bconn *c = &conns[fd];
  size_t off = 0;
  if (!c->answered) {
    // postgres: the startup message is length-prefixed; answer once it is all here, then echo what follows it.
    while (off < (size_t)n && c->len_got < 4) c->len[c->len_got++] = (uint8_t)buf[off++];
    if (c->len_got < 4) return;
    if (c->skip < 0) {
      int32_t total = (int32_t)((uint32_t)c->len[0] << 24 | (uint32_t)c->len[1] << 16 | (uint32_t)c->len[2] << 8 |
                                (uint32_t)c->len[3]);
      c->skip = total > 4 ? total - 4 : 0;
    }
    size_t take = (size_t)n - off < (size_t)c->skip ? (size_t)n - off : (size_t)c->skip;
    off += take;
    c->skip -= (int32_t)take;
    if (c->skip > 0) return;
    c->answered = 1;
    // AuthenticationOk, BackendKeyData (process id, secret key), ReadyForQuery (idle).
    char a[28] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'K', 0, 0, 0, 12};
    uint32_t pid = htonl(next_pid++), key = htonl((uint32_t)random() & 0x7fffffff);
    memcpy(a + 14, &pid, 4);
    memcpy(a + 18, &key, 4);
    a[22] = 'Z';
    a[23] = 0, a[24] = 0, a[25] = 0, a[26] = 5;
    a[27] = 'I';
    if (send_bytes(fd, a, sizeof a) != 0) return;
  }
  if (off < (size_t)n) send_bytes(fd, buf + off, (size_t)n - off);
}

static void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
      errors++;
      count_error(errno_name(errno));
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: stop accepting until the next tick rather than spin on a readable listener.
        epoll_ctl(ep, EPOLL_CTL_DEL, lfd, NULL);
        paused = 1;
      }
      return;
    }
    if (fd >= max_fds) {
      close(fd);
      errors++;
      count_error("EMFILE");
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct bconn *c = &conns[fd];
    memset(c, 0, sizeof *c);
    c->open = 1;
    c->answered = !mode_pg;
    c->skip = -1;
    open_count++;
    accepted++;
    epoll_watch(ep, EPOLL_CTL_ADD, fd, EPOLLIN);
  }
}

static void stop(const char *why) {
  fprintf(stderr, "backend %d: stopping (%s)\n", backend_id, why);
  for (int i = 0; i < n_listen; i++) close(listeners[i]);
  for (int fd = 0; fd < max_fds; fd++) {
    if (conns[fd].open == 1) close_conn(fd, 1);
  }
  exit(0);
}

static void listen_on(const char *hp) {
  char host[64];
  const char *colon = strrchr(hp, ':');
  if (colon == NULL || (size_t)(colon - hp) >= sizeof host) {
    fprintf(stderr, "backend %d: %s: expected HOST:PORT\n", backend_id, hp);
    exit(1);
  }
  memcpy(host, hp, (size_t)(colon - hp));
  host[colon - hp] = 0;
  struct sockaddr_storage ss;
  socklen_t len = parse_addr(host, atoi(colon + 1), &ss);
  int fd = len == 0 ? -1 : socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 ||
      listen(fd, 65535) != 0 || fd >= max_fds || n_listen >= MAX_LISTEN) {
    fprintf(stderr, "backend %d: %s: %s\n", backend_id, hp, len == 0 ? "not an address" : strerror(errno));
    exit(1);
  }
  len = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &len);
  char addr[INET6_ADDRSTRLEN] = "";
  int port;
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof addr);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  } else {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof addr);
    port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  snprintf(listening[n_listen], sizeof listening[n_listen], "%s:%d", addr, port);
  listeners[n_listen++] = fd;
  conns[fd].open = 2;
  epoll_watch(ep, EPOLL_CTL_ADD, fd, EPOLLIN);
}

int main(int argc, char **argv) {
  const char *listen_arg = "127.0.0.1:0";
  double lifetime_s = 3600;
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], "--listen") == 0) listen_arg = argv[++i];
    else if (strcmp(argv[i], "--mode") == 0) mode_pg = strcmp(argv[++i], "postgres") == 0;
    else if (strcmp(argv[i], "--id") == 0) backend_id = atoi(argv[++i]);
    else if (strcmp(argv[i], "--lifetime") == 0) lifetime_s = atof(argv[++i]);
  }
  next_pid = (uint32_t)(backend_id + 1) * 1000000u;
  srandom((unsigned)getpid() ^ (unsigned)time(NULL));
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {0};
  sa.sa_handler = on_signal; // no SA_RESTART: epoll_wait returns EINTR and the loop sees the flag
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  max_fds = fd_limit();
  conns = calloc((size_t)max_fds, sizeof *conns);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (conns == NULL || ep < 0) {
    perror("backend");
    return 1;
  }
  char *list = strdup(listen_arg);
  for (char *save = NULL, *hp = strtok_r(list, ",", &save); hp != NULL; hp = strtok_r(NULL, ",", &save)) {
    listen_on(hp);
  }
  free(list);
  struct epoll_event sev = {.events = EPOLLIN, .data.fd = STDIN_FILENO};
  epoll_ctl(ep, EPOLL_CTL_ADD, STDIN_FILENO, &sev);
  report();

  double end = now_ms() + lifetime_s * 1000;
  double next_tick = now_ms() + 500;
  struct epoll_event events[1024];
  for (;;) {
    int timeout = (int)(next_tick - now_ms());
    int n = epoll_wait(ep, events, 1024, timeout < 0 ? 0 : timeout);
    if (got_signal) stop(got_signal == SIGTERM ? "SIGTERM" : "SIGINT");
    if (n < 0 && errno != EINTR) {
      perror("backend: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == STDIN_FILENO) {
        char drop[4096];
        ssize_t r = read(STDIN_FILENO, drop, sizeof drop);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) stop("stdin closed");
        continue;
      }
      if (is_listener(fd)) {
        on_accept(fd);
        continue;
      }
      if (conns[fd].open != 1) continue;
      if (conns[fd].out_len > 0) on_writable(fd);
      else on_readable(fd);
    }
    double now = now_ms();
    if (now >= next_tick) {
      next_tick = now + 500;
      if (now >= end) stop("lifetime over");
      if (paused) {
        paused = 0;
        for (int i = 0; i < n_listen; i++) {
          struct epoll_event ev = {.events = EPOLLIN, .data.fd = listeners[i]};
          epoll_ctl(ep, EPOLL_CTL_ADD, listeners[i], &ev); // EEXIST for those still in the set: harmless
        }
      }
      report();
    }
  }
}
