// The SNI scenario's TLS origins in C (they were node:tls, as costly per handshake as the proxies they fed): one
// listener per certificate on 127.0.0.1, each answering "ok\n" as soon as the handshake is done, then closing
// (close_notify, FIN). No session cache and no tickets: every client pays a full handshake. With --tickets, each
// full handshake is followed by one TLS 1.3 session ticket (stateless: sealed with this process's own ticket key),
// which a client may offer to resume (bench/native/loadgen.c --resume 1).
//   bench/native/bin/tls-origin [--tickets] CERT:KEY [CERT:KEY …] [--lifetime S]
// Prints {"ports":[…]} once listening, then {"accepted":N,"answered":N,"errors":N,"errorCodes":{…}} when it exits:
// when stdin (a pipe or socket: the runner) closes, on SIGTERM or SIGINT, or when its lifetime (3600 s) is over. One thread, one epoll
// set, non-blocking sockets, one SSL per descriptor in a table indexed by fd.
#include "../../load/native/common.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#define MAX_CERTS 16
static SSL_CTX *ctxs[MAX_CERTS];
static int tickets; // --tickets: one stateless TLS 1.3 ticket after each full handshake
static int listeners[MAX_CERTS], ports[MAX_CERTS], n_listeners;
static SSL **ssls; // by fd; NULL for free descriptors
static int max_fds, ep;
static long accepted, answered, errors;
static volatile sig_atomic_t got_signal;

static void on_signal(int sig) { got_signal = sig; }

static void done(int fd, const char *error) {
  if (error != NULL) {
    errors++;
    count_error(error);
  }
  ERR_clear_error();
  SSL_free(ssls[fd]);
  ssls[fd] = NULL;
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
}

static void step(int fd) {
  SSL *ssl = ssls[fd];
  int r = SSL_accept(ssl);
  if (r != 1) {
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ) return (void)epoll_watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
    if (e == SSL_ERROR_WANT_WRITE) return (void)epoll_watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
    // A client that went away mid-handshake (the load generator stopping) lands here too.
    return done(fd, e == SSL_ERROR_SYSCALL ? "TLS_EOF" : "TLS_HANDSHAKE");
  }
  // Three bytes on an empty socket buffer: written at once.
  if (SSL_write(ssl, "ok\n", 3) != 3) return done(fd, "TLS_WRITE");
  SSL_shutdown(ssl);
  answered++;
  done(fd, NULL);
}

static void on_accept(int index) {
  for (;;) {
    int fd = accept4(listeners[index], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        errors++;
        count_error(errno_name(errno));
      }
      return;
    }
    if (fd >= max_fds || (ssls[fd] = SSL_new(ctxs[index])) == NULL) {
      close(fd);
      errors++;
      count_error("EMFILE");
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    accepted++;
    SSL_set_fd(ssls[fd], fd);
    epoll_watch(ep, EPOLL_CTL_ADD, fd, EPOLLIN);
  }
}

static void report_and_exit(void) {
  out_t o = {0};
  out_add(&o, "{\"accepted\":%ld,\"answered\":%ld,\"errors\":%ld,\"errorCodes\":", accepted, answered, errors);
  out_errors(&o);
  out_add(&o, "}");
  out_line(&o);
  exit(0);
}

static void listen_with(const char *pair) {
  char cert[1024];
  const char *colon = strchr(pair, ':');
  if (colon == NULL || (size_t)(colon - pair) >= sizeof cert || n_listeners == MAX_CERTS) {
    fprintf(stderr, "tls-origin: %s: expected CERT:KEY\n", pair);
    exit(2);
  }
  memcpy(cert, pair, (size_t)(colon - pair));
  cert[colon - pair] = 0;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == NULL || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, colon + 1, SSL_FILETYPE_PEM) != 1) {
    fprintf(stderr, "tls-origin: cannot load %s\n", pair);
    exit(2);
  }
  // OpenSSL sends TLS 1.3 tickets only with the server cache mode on; stateless tickets never enter the cache.
  SSL_CTX_set_session_cache_mode(ctx, tickets ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, tickets ? 1 : 0);
  struct sockaddr_storage ss;
  socklen_t len = parse_addr("127.0.0.1", 0, &ss);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 4096) != 0) {
    perror("tls-origin: listen");
    exit(1);
  }
  getsockname(fd, (struct sockaddr *)&ss, &len);
  ctxs[n_listeners] = ctx;
  listeners[n_listeners] = fd;
  ports[n_listeners] = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  epoll_watch(ep, EPOLL_CTL_ADD, fd, EPOLLIN);
  n_listeners++;
}

int main(int argc, char **argv) {
  double lifetime_s = 3600;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {0};
  sa.sa_handler = on_signal; // no SA_RESTART: epoll_wait returns EINTR and the loop sees the flag
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  max_fds = fd_limit();
  ssls = calloc((size_t)max_fds, sizeof *ssls);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ssls == NULL || ep < 0) return 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--tickets") == 0) tickets = 1;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--lifetime") == 0 && i + 1 < argc) lifetime_s = atof(argv[++i]);
    else if (strcmp(argv[i], "--tickets") != 0) listen_with(argv[i]);
  }
  if (n_listeners == 0) {
    fprintf(stderr, "tls-origin: usage: [--tickets] CERT:KEY [CERT:KEY …] [--lifetime S]\n");
    return 2;
  }
  out_t o = {0};
  out_add(&o, "{\"ports\":[");
  for (int i = 0; i < n_listeners; i++) out_add(&o, "%s%d", i ? "," : "", ports[i]);
  out_add(&o, "]}");
  out_line(&o);
  struct stat st;
  if (fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
    epoll_watch(ep, EPOLL_CTL_ADD, STDIN_FILENO, EPOLLIN);
  }
  double end = now_ms() + lifetime_s * 1000;
  static struct epoll_event events[1024];
  for (;;) {
    int n = epoll_wait(ep, events, 1024, 1000);
    if (got_signal || now_ms() >= end) report_and_exit();
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd, listener = -1;
      for (int k = 0; k < n_listeners; k++) {
        if (listeners[k] == fd) listener = k;
      }
      if (listener >= 0) on_accept(listener);
      else if (fd == STDIN_FILENO) {
        char drop[256];
        ssize_t r = read(STDIN_FILENO, drop, sizeof drop);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) report_and_exit();
      } else if (fd < max_fds && ssls[fd] != NULL) step(fd);
    }
  }
}
