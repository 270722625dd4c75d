// The native agent's client side of mode postgres-pooled (agent.c): a login to a PostgreSQL server as libpq makes it,
// answering whichever request the server sends (here the proxy, which authenticates pooled clients itself):
// SCRAM-SHA-256 (RFC 5802 / 7677, without channel binding, as libpq over a plain socket), md5, or a cleartext password;
// then one simple query, `SELECT 1`, read to its ReadyForQuery. The connection is confirmed only when the login's
// ReadyForQuery came, the query's one DataRow held "1", its CommandComplete said "SELECT 1" and the last
// ReadyForQuery said idle; an ErrorResponse counts as `PG_<SQLSTATE>` (PG_28P01 for a refused password).
//
// Hashing is OpenSSL's libcrypto (PBKDF2, HMAC, SHA-256, MD5, base64). The expensive part of SCRAM, PBKDF2 with the
// role's iteration count (4096 by default), runs once per role and salt: every client of a role is given the same
// salt and iteration count, so ClientKey, StoredKey and ServerKey are kept per role and each login costs two HMACs
// (ClientSignature, ServerSignature). The per-login state lives only while the login is pending (at most
// --concurrency of them, allocated once); a held connection keeps nothing here.
#ifndef POLYPROXY_LOAD_PGLOGIN_H
#define POLYPROXY_LOAD_PGLOGIN_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common.h"

/** A role the agent logs in as: its password, and the SCRAM keys of the last salt and iteration count seen. */
typedef struct {
  char *user;
  char *password;
  int iterations; // 0: no keys yet
  unsigned char salt[64];
  int salt_len;
  unsigned char client_key[32], stored_key[32], server_key[32];
} pg_role;

#define PGX_BUF 2048

/** One pending login: where it is, and the bytes of the server's message that has not arrived whole. */
typedef struct {
  uint8_t queried; // the query was sent (the login's ReadyForQuery came)
  uint8_t rows; // DataRows holding the expected "1"
  uint8_t complete; // CommandComplete "SELECT 1"
  uint8_t scram; // a SCRAM exchange started
  uint8_t verified; // its server signature checked
  int role;
  char client_first_bare[40]; // "n=,r=" and the 24-character nonce
  unsigned char server_signature[32];
  size_t len;
  unsigned char buf[PGX_BUF];
} pgx_t;

static const char PG_QUERY[] = "SELECT 1";

static inline uint32_t pg_be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void pg_put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

/** A frontend message: type byte, length, then `len` bytes of body. One send: the socket buffer is empty. */
static inline int pg_send(int fd, char type, const void *body, size_t len) {
  unsigned char msg[1024];
  if (len + 5 > sizeof msg) return -1;
  msg[0] = (unsigned char)type;
  pg_put32(msg + 1, (uint32_t)(len + 4));
  memcpy(msg + 5, body, len);
  return send(fd, msg, len + 5, MSG_NOSIGNAL) == (ssize_t)(len + 5) ? 0 : -1;
}

/** base64 of `len` bytes into `out` (NUL-terminated). */
static inline void pg_b64(const unsigned char *in, int len, char *out) {
  EVP_EncodeBlock((unsigned char *)out, in, len);
}

/** Decodes base64 `in` (`n` characters); returns the byte count, or -1. */
static inline int pg_unb64(const char *in, int n, unsigned char *out, int cap) {
  if (n % 4 != 0 || n / 4 * 3 > cap) return -1;
  int len = EVP_DecodeBlock(out, (const unsigned char *)in, n);
  if (len < 0) return -1;
  for (int i = n - 1; i >= 0 && in[i] == '='; i--) len--; // EVP_DecodeBlock counts the padding as bytes
  return len;
}

static inline void pg_hmac(const unsigned char *key, int key_len, const void *data, size_t len, unsigned char *out) {
  unsigned int n = 32;
  HMAC(EVP_sha256(), key, key_len, data, len, out, &n);
}

/** The value of attribute `name` ("r", "s", "i") of a SCRAM message: a pointer into `msg` and its length, or NULL. */
static inline const char *pg_attr(const char *msg, size_t len, char name, size_t *vlen) {
  size_t i = 0;
  while (i + 1 < len) {
    size_t end = i;
    while (end < len && msg[end] != ',') end++;
    if (msg[i] == name && msg[i + 1] == '=') {
      *vlen = end - i - 2;
      return msg + i + 2;
    }
    i = end + 1;
  }
  return NULL;
}

/** The role's keys for this salt and iteration count: PBKDF2 only when they are not the ones already kept. */
static inline void pg_role_keys(pg_role *r, const unsigned char *salt, int salt_len, int iterations) {
  if (r->iterations == iterations && r->salt_len == salt_len && memcmp(r->salt, salt, (size_t)salt_len) == 0) return;
  unsigned char salted[32];
  PKCS5_PBKDF2_HMAC(r->password, (int)strlen(r->password), salt, salt_len, iterations, EVP_sha256(), 32, salted);
  pg_hmac(salted, 32, "Client Key", 10, r->client_key);
  pg_hmac(salted, 32, "Server Key", 10, r->server_key);
  unsigned int n = 32;
  EVP_Digest(r->client_key, 32, r->stored_key, &n, EVP_sha256(), NULL);
  memcpy(r->salt, salt, (size_t)salt_len);
  r->salt_len = salt_len;
  r->iterations = iterations;
}

/** md5 hex digits of the concatenation of two byte strings. */
static inline void pg_md5_hex(const void *a, size_t alen, const void *b, size_t blen, char *out) {
  unsigned char data[512], digest[16];
  unsigned int n = 16;
  if (alen + blen > sizeof data) alen = blen = 0;
  memcpy(data, a, alen);
  memcpy(data + alen, b, blen);
  EVP_Digest(data, alen + blen, digest, &n, EVP_md5(), NULL);
  for (int i = 0; i < 16; i++) sprintf(out + 2 * i, "%02x", digest[i]);
}

static char pg_error_code[16];

/** One whole backend message. Returns 0 (go on), 1 (confirmed) or -1 (failed, *error says why). */
static inline int pgx_message(pgx_t *x, pg_role *roles, int fd, unsigned char type, const unsigned char *body,
                              size_t len, const char **error) {
  pg_role *r = &roles[x->role];
  *error = "BAD_ANSWER";
  switch (type) {
    case 'R': {
      if (len < 4) return -1;
      uint32_t code = pg_be32(body);
      if (code == 0) return x->scram && !x->verified ? -1 : 0; // AuthenticationOk
      if (code == 3) return pg_send(fd, 'p', r->password, strlen(r->password) + 1) == 0 ? 0 : -1;
      if (code == 5 && len == 8) {
        // md5: "md5" + md5(md5(password + user) + salt)
        char inner[33], answer[36] = "md5";
        pg_md5_hex(r->password, strlen(r->password), r->user, strlen(r->user), inner);
        pg_md5_hex(inner, 32, body + 4, 4, answer + 3);
        return pg_send(fd, 'p', answer, 36) == 0 ? 0 : -1;
      }
      if (code == 10) {
        // AuthenticationSASL: a list of mechanisms, each NUL-terminated, then an empty one.
        int offered = 0;
        for (size_t i = 4; i < len && body[i] != 0; i += strlen((const char *)body + i) + 1) {
          if (strcmp((const char *)body + i, "SCRAM-SHA-256") == 0) offered = 1;
        }
        if (!offered) {
          *error = "NO_SCRAM_SHA_256";
          return -1;
        }
        unsigned char raw[18];
        RAND_bytes(raw, sizeof raw);
        memcpy(x->client_first_bare, "n=,r=", 5);
        pg_b64(raw, sizeof raw, x->client_first_bare + 5);
        // SASLInitialResponse: the mechanism, then the client-first-message with its length.
        unsigned char msg[128];
        size_t bare = strlen(x->client_first_bare), n = 0;
        memcpy(msg, "SCRAM-SHA-256", 14);
        n = 14;
        pg_put32(msg + n, (uint32_t)(3 + bare));
        n += 4;
        memcpy(msg + n, "n,,", 3);
        memcpy(msg + n + 3, x->client_first_bare, bare);
        n += 3 + bare;
        x->scram = 1;
        return pg_send(fd, 'p', msg, n) == 0 ? 0 : -1;
      }
      if (code == 11 && x->scram) {
        // server-first-message: r=<our nonce + the server's>,s=<salt>,i=<iterations>
        const char *first = (const char *)body + 4;
        size_t flen = len - 4, nlen = 0, slen = 0, ilen = 0;
        const char *nonce = pg_attr(first, flen, 'r', &nlen);
        const char *salt64 = pg_attr(first, flen, 's', &slen);
        const char *iter = pg_attr(first, flen, 'i', &ilen);
        size_t ours = strlen(x->client_first_bare) - 5;
        if (nonce == NULL || salt64 == NULL || iter == NULL || nlen <= ours || ilen == 0 || ilen > 9 ||
            memcmp(nonce, x->client_first_bare + 5, ours) != 0) {
          *error = "BAD_SCRAM_CHALLENGE";
          return -1;
        }
        unsigned char salt[64];
        char b64[128];
        if (slen >= sizeof b64) return -1;
        memcpy(b64, salt64, slen);
        int salt_len = pg_unb64(b64, (int)slen, salt, sizeof salt);
        int iterations = atoi(iter);
        if (salt_len <= 0 || iterations <= 0) {
          *error = "BAD_SCRAM_CHALLENGE";
          return -1;
        }
        pg_role_keys(r, salt, salt_len, iterations);
        // client-final-message-without-proof, the AuthMessage it is signed with, then the proof.
        char final[512], auth[1024];
        int wlen = snprintf(final, sizeof final, "c=biws,r=%.*s", (int)nlen, nonce);
        int alen = snprintf(auth, sizeof auth, "%s,%.*s,%s", x->client_first_bare, (int)flen, first, final);
        if (wlen < 0 || alen < 0 || wlen + 48 >= (int)sizeof final || alen >= (int)sizeof auth) return -1;
        unsigned char signature[32], proof[32];
        pg_hmac(r->stored_key, 32, auth, (size_t)alen, signature);
        for (int i = 0; i < 32; i++) proof[i] = r->client_key[i] ^ signature[i];
        pg_hmac(r->server_key, 32, auth, (size_t)alen, x->server_signature);
        memcpy(final + wlen, ",p=", 3);
        pg_b64(proof, 32, final + wlen + 3);
        return pg_send(fd, 'p', final, strlen(final)) == 0 ? 0 : -1;
      }
      if (code == 12 && x->scram) {
        // server-final-message: v=<ServerSignature>, proof that the other side holds the role's ServerKey.
        unsigned char got[48];
        const char *v = (const char *)body + 4;
        size_t vlen = len - 4;
        while (vlen > 0 && v[vlen - 1] == 0) vlen--;
        char b64[64];
        if (vlen < 2 || vlen - 2 >= sizeof b64 || v[0] != 'v' || v[1] != '=') return -1;
        memcpy(b64, v + 2, vlen - 2);
        if (pg_unb64(b64, (int)vlen - 2, got, sizeof got) != 32 || memcmp(got, x->server_signature, 32) != 0) {
          *error = "BAD_SERVER_SIGNATURE";
          return -1;
        }
        x->verified = 1;
        return 0;
      }
      *error = "UNSUPPORTED_AUTHENTICATION";
      return -1;
    }
    case 'S': // ParameterStatus
    case 'K': // BackendKeyData
    case 'N': // NoticeResponse
      return 0;
    case 'E': {
      // ErrorResponse: fields of a type byte and a NUL-terminated value; the SQLSTATE is field 'C'.
      for (size_t i = 0; i < len && body[i] != 0; i += strlen((const char *)body + i + 1) + 2) {
        if (body[i] == 'C') {
          snprintf(pg_error_code, sizeof pg_error_code, "PG_%.5s", (const char *)body + i + 1);
          *error = pg_error_code;
          break;
        }
      }
      return -1;
    }
    case 'Z': // ReadyForQuery: after the login, send the query; after the query, check its answer.
      if (len != 1) return -1;
      if (!x->queried) {
        if (x->scram && !x->verified) return -1;
        x->queried = 1;
        return pg_send(fd, 'Q', PG_QUERY, sizeof PG_QUERY) == 0 ? 0 : -1;
      }
      return body[0] == 'I' && x->rows == 1 && x->complete ? 1 : -1;
    case 'T': // RowDescription
      return x->queried ? 0 : -1;
    case 'D': // DataRow: one column, "1"
      if (!x->queried || len != 7 || body[0] != 0 || body[1] != 1 || pg_be32(body + 2) != 1 || body[6] != '1') return -1;
      x->rows++;
      return 0;
    case 'C': // CommandComplete
      if (!x->queried || len != 9 || memcmp(body, "SELECT 1", 9) != 0) return -1;
      x->complete = 1;
      return 0;
    default:
      return -1;
  }
}

/**
 * Reads what the server sent and handles each whole message. Returns 0 (more to come), 1 (confirmed: the query's
 * answer is complete) or -1 (failed, *error says why: an errno name, PG_<SQLSTATE>, BAD_ANSWER, …).
 */
static inline int pgx_read(pgx_t *x, pg_role *roles, int fd, const char **error) {
  if (x->len == PGX_BUF) {
    *error = "MESSAGE_TOO_LONG";
    return -1;
  }
  ssize_t n = read(fd, x->buf + x->len, PGX_BUF - x->len);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return 0;
    *error = errno_name(errno);
    return -1;
  }
  if (n == 0) {
    *error = "CLOSED_BEFORE_ANSWER";
    return -1;
  }
  x->len += (size_t)n;
  size_t at = 0;
  int rc = 0;
  while (rc == 0 && x->len - at >= 5) {
    uint32_t mlen = pg_be32(x->buf + at + 1);
    if (mlen < 4 || mlen > PGX_BUF - 1) {
      *error = mlen < 4 ? "BAD_ANSWER" : "MESSAGE_TOO_LONG";
      return -1;
    }
    if (x->len - at < 1 + (size_t)mlen) break;
    rc = pgx_message(x, roles, fd, x->buf[at], x->buf + at + 5, mlen - 4, error);
    at += 1 + mlen;
  }
  if (rc != 0) return rc;
  memmove(x->buf, x->buf + at, x->len - at);
  x->len -= at;
  return 0;
}

#endif
