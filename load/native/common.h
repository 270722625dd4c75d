// What the native agent (agent.c) and backend (backend.c) share: time, RSS, errno names, error counters, JSON-lines
// output, a line reader for stdin, and a small JSON reader for the one config line an agent receives.
//
// Why native: a Node agent or backend costs ≈ 6 KB of RSS per socket beside the kernel's own socket memory (a
// net.Socket, its handle and libuv state). At 440k connections that was 2.8 GB for the agents and 2.7 GB for the
// backends, more than the proxy's growth; the C programs keep a few bytes per descriptor in flat arrays indexed by fd
// and nothing else per connection (load/README.md has the measured figures).
//
// Why the JSON reader is hand-written: the build is `cc file.c` with no dependency beyond libc, so no JSON library.
// The messages are ours (load/protocol.ts) and small: objects whose values are strings, numbers, booleans, null,
// nested objects and arrays. The reader walks any such value and reports every (key, scalar) pair it meets, array
// elements with their index; the agent keeps the keys it knows. Strings are unescaped (\uXXXX as UTF-8).
#ifndef POLYPROXY_LOAD_COMMON_H
#define POLYPROXY_LOAD_COMMON_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/** Resident set size from /proc/self/statm (second field, in pages). */
static inline long rss_bytes(void) {
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  long size = 0, resident = 0;
  if (sscanf(buf, "%ld %ld", &size, &resident) != 2) return 0;
  return resident * sysconf(_SC_PAGESIZE);
}

/** The errno's symbolic name, as Node reports it in err.code (ECONNREFUSED, ECONNRESET, …). */
static inline const char *errno_name(int e) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *n = strerrorname_np(e);
  if (n != NULL) return n;
#endif
  switch (e) {
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case ECONNABORTED: return "ECONNABORTED";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EPIPE: return "EPIPE";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    default: return "ERROR";
  }
}

// ---------------------------------------------------------------------------------------------------- error counts

#define MAX_ERROR_KINDS 32
static struct {
  char name[32];
  long count;
} error_kinds[MAX_ERROR_KINDS];
static int n_error_kinds;

static inline void count_error(const char *name) {
  for (int i = 0; i < n_error_kinds; i++) {
    if (strcmp(error_kinds[i].name, name) == 0) {
      error_kinds[i].count++;
      return;
    }
  }
  // A new kind; past the table's size, every further kind is counted as OTHER in the last slot.
  int i = n_error_kinds < MAX_ERROR_KINDS ? n_error_kinds++ : MAX_ERROR_KINDS - 1;
  if (n_error_kinds < MAX_ERROR_KINDS || error_kinds[i].name[0] == 0) {
    snprintf(error_kinds[i].name, sizeof error_kinds[i].name, "%s", i == MAX_ERROR_KINDS - 1 ? "OTHER" : name);
  }
  error_kinds[i].count++;
}

// ---------------------------------------------------------------------------------------------------- output

/** A growable text buffer for one JSON line. */
typedef struct {
  char *p;
  size_t len, cap;
} out_t;

static inline void out_add(out_t *o, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->cap - o->len;
    int n = vsnprintf(o->p == NULL ? NULL : o->p + o->len, o->p == NULL ? 0 : room, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (o->p != NULL && (size_t)n < room) {
      o->len += (size_t)n;
      return;
    }
    size_t cap = o->cap == 0 ? 1024 : o->cap;
    while (cap < o->len + (size_t)n + 1) cap *= 2;
    char *p = realloc(o->p, cap);
    if (p == NULL) return;
    o->p = p;
    o->cap = cap;
  }
}

/** A JSON string literal (the names here are ASCII; control characters and quotes are escaped). */
static inline void out_str(out_t *o, const char *s) {
  out_add(o, "\"");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') out_add(o, "\\%c", c);
    else if (c < 0x20) out_add(o, "\\u%04x", c);
    else out_add(o, "%c", c);
  }
  out_add(o, "\"");
}

static inline void out_errors(out_t *o) {
  out_add(o, "{");
  for (int i = 0; i < n_error_kinds; i++) {
    if (i > 0) out_add(o, ",");
    out_str(o, error_kinds[i].name);
    out_add(o, ":%ld", error_kinds[i].count);
  }
  out_add(o, "}");
}

/** Writes the line and a newline to stdout (a pipe to the coordinator; blocking, so nothing is dropped). */
static inline void out_line(out_t *o) {
  out_add(o, "\n");
  size_t off = 0;
  while (off < o->len) {
    ssize_t n = write(STDOUT_FILENO, o->p + off, o->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += (size_t)n;
  }
  o->len = 0;
}

// ---------------------------------------------------------------------------------------------------- stdin lines

/** Bytes read from stdin that do not end in a newline yet. Like protocol.ts's jsonLines, a line over 1 MB is dropped. */
typedef struct {
  char *p;
  size_t len, cap;
} lines_t;

/** Reads what stdin has; calls on_line for every complete line. Returns 0 at end of input (or an error), else 1. */
static inline int lines_read(lines_t *l, void (*on_line)(char *line, size_t len)) {
  if (l->cap - l->len < 65536) {
    size_t cap = l->cap == 0 ? 65536 * 2 : l->cap * 2;
    char *p = realloc(l->p, cap);
    if (p == NULL) return 0;
    l->p = p;
    l->cap = cap;
  }
  ssize_t n = read(STDIN_FILENO, l->p + l->len, l->cap - l->len - 1);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
  if (n <= 0) return 0;
  l->len += (size_t)n;
  size_t start = 0;
  for (size_t i = l->len - (size_t)n; i < l->len; i++) {
    if (l->p[i] != '\n') continue;
    l->p[i] = 0;
    on_line(l->p + start, i - start);
    start = i + 1;
  }
  memmove(l->p, l->p + start, l->len - start);
  l->len -= start;
  if (l->len > (1 << 20)) l->len = 0;
  return 1;
}

// ---------------------------------------------------------------------------------------------------- JSON reader

enum { J_STR, J_NUM, J_BOOL, J_NULL };

/** Called for every scalar: its key (of the nearest object), its kind and value, and its index when it is an element
 * of an array (-1 otherwise). `s` is NUL-terminated and valid during the call only. */
typedef void (*json_field_fn)(const char *key, int kind, const char *s, double num, int index);

typedef struct {
  const char *p, *end;
  char *scratch; // unescaped strings go here; as long as the input, so every string fits
  size_t used;
  json_field_fn fn;
  int depth;
} json_t;

static inline void j_ws(json_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static inline int j_hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/** Reads a string at j->p (which is at the opening quote) into the scratch buffer; returns it, or NULL. */
static inline char *j_string(json_t *j) {
  if (j->p >= j->end || *j->p != '"') return NULL;
  j->p++;
  char *out = j->scratch + j->used;
  char *w = out;
  while (j->p < j->end && *j->p != '"') {
    char c = *j->p++;
    if (c != '\\') {
      *w++ = c;
      continue;
    }
    if (j->p >= j->end) return NULL;
    char e = *j->p++;
    switch (e) {
      case '"': *w++ = '"'; break;
      case '\\': *w++ = '\\'; break;
      case '/': *w++ = '/'; break;
      case 'b': *w++ = '\b'; break;
      case 'f': *w++ = '\f'; break;
      case 'n': *w++ = '\n'; break;
      case 'r': *w++ = '\r'; break;
      case 't': *w++ = '\t'; break;
      case 'u': {
        unsigned cp;
        if (j->end - j->p < 4 || j_hex4(j->p, &cp) != 0) return NULL;
        j->p += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
          unsigned lo;
          if (j_hex4(j->p + 2, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            j->p += 6;
          }
        }
        // UTF-8 (an escaped \u0000 ends the C string early: none of our fields has one).
        if (cp < 0x80) *w++ = (char)cp;
        else if (cp < 0x800) {
          *w++ = (char)(0xc0 | (cp >> 6));
          *w++ = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
          *w++ = (char)(0xe0 | (cp >> 12));
          *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
          *w++ = (char)(0x80 | (cp & 0x3f));
        } else {
          *w++ = (char)(0xf0 | (cp >> 18));
          *w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
          *w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
          *w++ = (char)(0x80 | (cp & 0x3f));
        }
        break;
      }
      default: return NULL;
    }
  }
  if (j->p >= j->end) return NULL;
  j->p++; // closing quote
  *w++ = 0;
  j->used += (size_t)(w - out);
  return out;
}

static inline int j_value(json_t *j, const char *key, int index);

static inline int j_object(json_t *j) {
  j->p++; // {
  j_ws(j);
  if (j->p < j->end && *j->p == '}') {
    j->p++;
    return 0;
  }
  for (;;) {
    j_ws(j);
    size_t mark = j->used;
    char *key = j_string(j);
    if (key == NULL) return -1;
    j_ws(j);
    if (j->p >= j->end || *j->p != ':') return -1;
    j->p++;
    if (j_value(j, key, -1) != 0) return -1;
    j->used = mark; // the key and the value's strings are no longer needed
    j_ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    if (j->p < j->end && *j->p == '}') {
      j->p++;
      return 0;
    }
    return -1;
  }
}

static inline int j_array(json_t *j, const char *key) {
  j->p++; // [
  j_ws(j);
  if (j->p < j->end && *j->p == ']') {
    j->p++;
    return 0;
  }
  for (int i = 0;; i++) {
    if (j_value(j, key, i) != 0) return -1;
    j_ws(j);
    if (j->p < j->end && *j->p == ',') {
      j->p++;
      continue;
    }
    if (j->p < j->end && *j->p == ']') {
      j->p++;
      return 0;
    }
    return -1;
  }
}

static inline int j_value(json_t *j, const char *key, int index) {
  j_ws(j);
  if (j->p >= j->end) return -1;
  if (++j->depth > 32) return -1;
  int rc = 0;
  char c = *j->p;
  if (c == '{') rc = j_object(j);
  else if (c == '[') rc = j_array(j, key);
  else if (c == '"') {
    size_t mark = j->used;
    char *s = j_string(j);
    if (s == NULL) rc = -1;
    else j->fn(key, J_STR, s, 0, index);
    j->used = mark;
  } else if (c == 't' && j->end - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
    j->p += 4;
    j->fn(key, J_BOOL, "true", 1, index);
  } else if (c == 'f' && j->end - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
    j->p += 5;
    j->fn(key, J_BOOL, "false", 0, index);
  } else if (c == 'n' && j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
    j->p += 4;
    j->fn(key, J_NULL, "null", 0, index);
  } else {
    // A number: strtod on a NUL-terminated copy (the input line is NUL-terminated by lines_read, but be strict).
    char num[64];
    size_t n = 0;
    while (j->p < j->end && n < sizeof num - 1 && *j->p != 0 && strchr("+-0123456789.eE", *j->p) != NULL) {
      num[n++] = *j->p++;
    }
    num[n] = 0;
    char *endp;
    double v = strtod(num, &endp);
    if (n == 0 || *endp != 0) rc = -1;
    else j->fn(key, J_NUM, num, v, index);
  }
  j->depth--;
  return rc;
}

/** Parses one JSON value (a line); calls fn for every scalar in it. Returns 0, or -1 when the text is not JSON. */
static inline int json_parse(const char *text, size_t len, json_field_fn fn) {
  json_t j = {text, text + len, malloc(len + 1), 0, fn, 0};
  if (j.scratch == NULL) return -1;
  int rc = j_value(&j, "", -1);
  if (rc == 0) {
    j_ws(&j);
    if (j.p != j.end) rc = -1;
  }
  free(j.scratch);
  return rc;
}

// ---------------------------------------------------------------------------------------------------- sockets

/** Parses an IPv4 or IPv6 literal and a port into `ss`; returns its length, or 0. */
static inline socklen_t parse_addr(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    return sizeof *a4;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    return sizeof *a6;
  }
  return 0;
}

static inline void set_port(struct sockaddr_storage *ss, int port) {
  if (ss->ss_family == AF_INET) ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/** Closes with an RST rather than a FIN (SO_LINGER 0): no TIME_WAIT left on the port, as Node's resetAndDestroy. */
/** Adds (EPOLL_CTL_ADD) or changes (EPOLL_CTL_MOD) what epoll reports for `fd`. */
static inline int epoll_watch(int ep, int op, int fd, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.fd = fd};
  return epoll_ctl(ep, op, fd, &ev);
}

static inline void close_rst(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

/** The soft RLIMIT_NOFILE: the size of the per-descriptor tables (the coordinator sets it with `ulimit -n`). */
static inline int fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 24)) return 1 << 16;
  return (int)rl.rlim_cur;
}

#endif
