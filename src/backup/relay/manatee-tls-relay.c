// manatee-tls-relay: one end of the TLS relay of a zfs backup stream (src/backup/tls-relay.ts), in
// place of socat. Same checks as the socat relay: TLS 1.3 only, the peer's certificate verified
// against the given CA file alone, the client checks the server's certificate against the host it
// dialled and that it is bound to the source's peer id, the server accepts one connection only,
// from a certificate bound to the job's peer id. Bound to a peer id: the certificate's CN is the id
// (socat's commonname check) and its one urn:manatee:peer: URI name is urn:manatee:peer:<id>. What it does differently: large buffers. The sender
// reads its input in chunks of up to 1 MiB and writes the chunk's TLS records with one write (a
// buffering BIO), the receiver reads ahead 64 KiB of records per read and writes what it decrypted
// in chunks of up to 1 MiB; socat moves one 16 KiB record per select loop (about 8 system calls).
//
//   manatee-tls-relay listen  <bind-address> <peer-id> <cert> <key> <ca> [count] [handshake-timeout=<s>] [accept-timeout=<s>]   stdin -> TLS
//   manatee-tls-relay connect <host> <port> <peer-id> <cert> <key> <ca> [handshake-timeout=<s>]                                TLS -> stdout
//
// Its log lines (stderr) are in socat's format, which SocatRelay parses: "N listening on AF=2
// 127.0.0.1:port", "N accepting connection from ...", "N opening connection to ..." (one per address
// tried), "N SSL connection using <cipher>", "W ..." for an address that failed when another is
// left to try, "E ..." for errors; with `count`, "I transferred <n> bytes from 0 to <fd>" after each
// chunk. Exit 0 when the stream ended with TLS's close_notify, 3 when a deadline passed (below), 1
// on any other error (a truncated stream is one).
//
// Deadlines (whole seconds, 1 to 3600), so that a silent other side cannot hold either end:
// - the listener waits accept-timeout seconds (default 60) for its one connection, and gives it
//   handshake-timeout seconds (default 10) to finish the TLS handshake (a client that connects and
//   stays silent would otherwise hold its only slot);
// - the connecting end has handshake-timeout seconds (default 10) for the TCP connection and the
//   TLS handshake together. It tries each address of the host in getaddrinfo's order: an address
//   that refuses passes on at once, and each address but the last may wait at most an equal share
//   of what is left, so one that never answers leaves time for the next.
// The stream itself has no deadline (a zfs send may pause for long).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)
#define READ_AHEAD (64 * 1024)
#define PEER_URI_PREFIX "urn:manatee:peer:"
#define DEFAULT_HANDSHAKE_TIMEOUT 10
#define DEFAULT_ACCEPT_TIMEOUT 60
#define MAX_TIMEOUT 3600
/** The exit status when a deadline passed (SocatRelay maps it to MANATEE_ERR_BACKUP_TLS_RELAY_DEADLINE). */
#define EXIT_DEADLINE 3

__attribute__((format(printf, 2, 3))) static void say(char level, const char *fmt, ...) {
  char when[32];
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(when, sizeof when, "%Y/%m/%d %H:%M:%S", &tm);
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s manatee-tls-relay[%d] %c %s\n", when, (int)getpid(), level, msg);
}

/** OpenSSL's queued errors, joined, for an E line. */
static const char *ssl_errors(void) {
  static char out[768];
  out[0] = '\0';
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char one[256];
    ERR_error_string_n(e, one, sizeof one);
    if (strlen(out) + strlen(one) + 3 < sizeof out) {
      if (out[0] != '\0') strcat(out, "; ");
      strcat(out, one);
    }
  }
  return out[0] != '\0' ? out : "no OpenSSL error queued";
}

/** An E line, then exit with `status`. */
__attribute__((noreturn, format(printf, 2, 0))) static void vfail(int status, const char *fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  say('E', "%s", msg);
  exit(status);
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(1, fmt, ap);
  va_end(ap);
}

/** A deadline passed: its E line, exit EXIT_DEADLINE. */
__attribute__((noreturn, format(printf, 1, 2))) static void fail_deadline(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(EXIT_DEADLINE, fmt, ap);
  va_end(ap);
}

/** "AF=2 1.2.3.4:5" or "AF=10 [::1]:5", as socat writes addresses. */
static const char *addr_text(const struct sockaddr *sa, char *buf, size_t len) {
  char host[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    snprintf(buf, len, "AF=2 %s:%d", host, port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
    snprintf(buf, len, "AF=10 [%s]:%d", host, port);
  } else {
    snprintf(buf, len, "AF=%d ?", sa->sa_family);
  }
  return buf;
}

/** Why a handshake failed: OpenSSL's errors, and the certificate check's verdict when it failed. */
static void handshake_failed(SSL *ssl, const char *what) {
  const char *errs = ssl_errors();
  long v = SSL_get_verify_result(ssl);
  if (v != X509_V_OK) fail("%s: %s (the other side's certificate: %s)", what, errs, X509_verify_cert_error_string(v));
  fail("%s: %s", what, errs);
}

static SSL_CTX *context(int server, const char *cert, const char *key, const char *ca) {
  SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (ctx == NULL) fail("SSL_CTX_new(): %s", ssl_errors());
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) fail("TLS 1.3 only: %s", ssl_errors());
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) fail("SSL_CTX_use_certificate_chain_file(\"%s\"): %s", cert, ssl_errors());
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) fail("SSL_CTX_use_PrivateKey_file(\"%s\"): %s", key, ssl_errors());
  if (SSL_CTX_check_private_key(ctx) != 1) fail("the key does not match the certificate: %s", ssl_errors());
  // The shard's CA alone: no default verify paths.
  if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) fail("SSL_CTX_load_verify_locations(\"%s\"): %s", ca, ssl_errors());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
  return ctx;
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("write(%d, %zu): %s", fd, n, strerror(errno));
    }
    p += w;
    n -= (size_t)w;
  }
}

/** `in` (up to `n` bytes) for a log line: printable ASCII as it is, any other byte, '\\' and '"' as \xNN,
 * so that a name in a certificate cannot end the line or forge another that SocatRelay parses. */
static const char *escaped(const char *in, size_t n, char *out, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 5 <= len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') out[o++] = (char)c;
    else o += (size_t)snprintf(out + o, len - o, "\\x%02x", c);
  }
  out[o] = '\0';
  return out;
}

/** The other side's certificate must be bound to `peer`: its CN and its one peer URI name say `peer`. */
static void check_peer_id(SSL *ssl, const char *peer) {
  X509 *cert = SSL_get1_peer_certificate(ssl);
  if (cert == NULL) fail("the other side sent no certificate");
  char cn[256] = "";
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  if (n < 0 || (size_t)n != strlen(peer) || strcmp(cn, peer) != 0) {
    char shown[4 * sizeof cn + 1];
    fail("certificate is valid but its commonName does not match hostname \"%s\" (it is \"%s\")", peer, escaped(cn, n < 0 ? 0 : (size_t)n < sizeof cn ? (size_t)n : strlen(cn), shown, sizeof shown));
  }
  GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  int uris = 0, match = 0;
  for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
    const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_URI) continue;
    const unsigned char *u = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
    int len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
    size_t pl = strlen(PEER_URI_PREFIX);
    if ((size_t)len < pl || memcmp(u, PEER_URI_PREFIX, pl) != 0) continue;
    uris++;
    if ((size_t)len == pl + strlen(peer) && memcmp(u + pl, peer, strlen(peer)) == 0) match++;
  }
  GENERAL_NAMES_free(names);
  X509_free(cert);
  if (uris != 1 || match != 1) fail("certificate is valid but its peer URI name does not match \"%s%s\" (%d peer URI names)", PEER_URI_PREFIX, peer, uris);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_nonblocking(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK)) != 0) fail("fcntl(O_NONBLOCK): %s", strerror(errno));
}

/** Milliseconds from now until `deadline` (of now()) for poll(): 0 once it passed, else rounded up,
 * so that poll() does not wake just before it. */
static int ms_until(double deadline) {
  double left = deadline - now();
  return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

/** The TLS handshake (SSL_accept() when `server`, else SSL_connect()) done by `deadline` in all,
 * however slowly the other side trickles its bytes: the socket is non-blocking during the
 * handshake, and poll() waits only for what is left. `timeout` and `who` are for the E line. */
static void handshake_by(SSL *ssl, int fd, int server, double deadline, int timeout, const char *who) {
  const char *step = server ? "SSL_accept()" : "SSL_connect()";
  set_nonblocking(fd, 1);
  for (;;) {
    ERR_clear_error();
    int r = server ? SSL_accept(ssl) : SSL_connect(ssl);
    if (r == 1) break;
    int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) handshake_failed(ssl, step);
    if (now() >= deadline) fail_deadline("%s: no TLS handshake within the handshake deadline of %d s (handshake-timeout): %s", step, timeout, who);
    struct pollfd p = {.fd = fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
    if (poll(&p, 1, ms_until(deadline)) < 0 && errno != EINTR) fail("poll(): %s", strerror(errno));
  }
  set_nonblocking(fd, 0);  // the stream itself has no deadline
}

/** The listener's one connection, accepted within `timeout` seconds (the listening socket is
 * non-blocking: a connection that is reset between poll() and accept() is waited past, not waited on). */
static int accept_within(int lfd, struct sockaddr_storage *from, int timeout, const char *peer, const char *at) {
  double deadline = now() + timeout;
  set_nonblocking(lfd, 1);
  for (;;) {
    socklen_t len = sizeof *from;
    int fd = accept4(lfd, (struct sockaddr *)from, &len, SOCK_CLOEXEC);  // blocking, whatever lfd is
    if (fd >= 0) return fd;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) fail("accept(): %s", strerror(errno));
    if (now() >= deadline) fail_deadline("accept(): no connection within the accept deadline of %d s (accept-timeout): peer %s did not connect to %s", timeout, peer, at);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, ms_until(deadline)) < 0 && errno != EINTR) fail("poll(): %s", strerror(errno));
  }
}

static int listen_mode(const char *bind_addr, const char *peer, const char *cert, const char *key, const char *ca, int count, int handshake_timeout, int accept_timeout) {
  SSL_CTX *ctx = context(1, cert, key, ca);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, bind_addr, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    sl = sizeof *a4;
  } else if (inet_pton(AF_INET6, bind_addr, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    sl = sizeof *a6;
  } else {
    fail("bind address \"%s\" is not an IPv4 or IPv6 address", bind_addr);
  }
  int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) fail("socket(): %s", strerror(errno));
  if (bind(lfd, (struct sockaddr *)&ss, sl) != 0) fail("bind(%s): %s", bind_addr, strerror(errno));
  if (listen(lfd, 1) != 0) fail("listen(): %s", strerror(errno));
  sl = sizeof ss;
  getsockname(lfd, (struct sockaddr *)&ss, &sl);
  char t1[128], t2[128];
  say('N', "listening on %s", addr_text((struct sockaddr *)&ss, t1, sizeof t1));
  struct sockaddr_storage peer_addr;
  int fd = accept_within(lfd, &peer_addr, accept_timeout, peer, t1);
  double deadline = now() + handshake_timeout;
  close(lfd);  // one connection only
  sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  say('N', "accepting connection from %s on %s", addr_text((struct sockaddr *)&peer_addr, t1, sizeof t1), addr_text((struct sockaddr *)&ss, t2, sizeof t2));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);

  SSL *ssl = SSL_new(ctx);
  BIO *sock = BIO_new_socket(fd, BIO_NOCLOSE);
  BIO *buffered = BIO_new(BIO_f_buffer());
  if (ssl == NULL || sock == NULL || buffered == NULL || BIO_set_write_buffer_size(buffered, CHUNK + 64 * 1024) != 1) fail("SSL_new(): %s", ssl_errors());
  BIO_up_ref(sock);
  BIO_push(buffered, sock);
  SSL_set_bio(ssl, sock, buffered);
  char who[192];
  snprintf(who, sizeof who, "the connection from %s, for peer %s", t1, peer);
  handshake_by(ssl, fd, 1, deadline, handshake_timeout, who);
  check_peer_id(ssl, peer);
  say('N', "SSL connection using %s", SSL_get_cipher_name(ssl));

  char *buf = malloc(CHUNK);
  if (buf == NULL) fail("out of memory");
  for (;;) {
    ssize_t n = read(0, buf, CHUNK);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("read(0): %s", strerror(errno));
    }
    if (n == 0) break;
    if (SSL_write(ssl, buf, (int)n) != n) fail("SSL_write(): %s", ssl_errors());
    if (BIO_flush(SSL_get_wbio(ssl)) != 1) fail("sending: %s", ssl_errors());
    if (count) say('I', "transferred %zd bytes from 0 to %d", n, fd);
  }
  // The end of the stream: close_notify, then the connection's end; wait for the peer to close.
  if (SSL_shutdown(ssl) < 0 || BIO_flush(SSL_get_wbio(ssl)) != 1) fail("SSL_shutdown(): %s", ssl_errors());
  shutdown(fd, SHUT_WR);
  char drain[4096];
  while (read(fd, drain, sizeof drain) > 0) {
  }
  free(buf);
  SSL_free(ssl);  // and its BIOs: the buffer BIO and the socket BIO's two references
  close(fd);
  SSL_CTX_free(ctx);
  say('N', "exiting with status 0");
  return 0;
}

/** Appends "; " (unless first) and the formatted text to `out`, as much as fits. */
__attribute__((format(printf, 3, 4))) static void append(char *out, size_t len, const char *fmt, ...) {
  size_t used = strlen(out);
  if (used > 0 && used + 2 < len) {
    strcpy(out + used, "; ");
    used += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out + used, len - used, fmt, ap);
  va_end(ap);
}

/**
 * A TCP connection to one of `res`'s addresses, tried in getaddrinfo's order, made by `deadline`:
 * an address that refuses passes on at once, and each one but the last waits at most an equal
 * share of what is left (a firewall that drops its packets leaves time for the next). The socket
 * returned is non-blocking (the handshake that follows keeps it so until it is done). Fails when
 * none connects: with EXIT_DEADLINE when one of them did not answer in its time, naming them all.
 */
static int connect_by(const struct addrinfo *res, const char *peer, const char *host, const char *port, double deadline, int timeout) {
  char tried[768] = "";
  int left_to_try = 0, timed_out = 0;
  for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) left_to_try++;
  for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next, left_to_try--) {
    char at[128];
    addr_text(ai->ai_addr, at, sizeof at);
    double start = now();
    if (start >= deadline) {
      timed_out = 1;
      append(tried, sizeof tried, "%s: not tried, no time left", at);
      continue;
    }
    double until = start + (deadline - start) / left_to_try;
    say('N', "opening connection to %s", at);
    int err = 0, expired = 0;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      err = errno;
    } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      // EINPROGRESS (or EINTR): the connection goes on; poll() says when it is made or refused.
      if (errno != EINPROGRESS && errno != EINTR) err = errno;
      while (err == 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, ms_until(until));
        if (n < 0) {
          if (errno != EINTR) fail("poll(): %s", strerror(errno));
        } else if (n > 0) {
          socklen_t len = sizeof err;
          if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
          break;
        } else if (now() >= until) {
          err = ETIMEDOUT;
          expired = timed_out = 1;
        }
      }
    }
    if (err == 0) return fd;
    if (fd >= 0) close(fd);
    if (expired) append(tried, sizeof tried, "%s: no answer within %.1f s", at, until - start);
    else append(tried, sizeof tried, "connect(%s): %s", at, strerror(err));
    if (ai->ai_next != NULL) say('W', "connect(%s): %s; trying the next address", at, expired ? "no answer in its share of the deadline" : strerror(err));
  }
  if (timed_out) fail_deadline("connect(): no TCP connection within the handshake deadline of %d s (handshake-timeout): peer %s at %s port %s (%s)", timeout, peer, host, port, tried);
  fail("%s", tried);
}

static int connect_mode(const char *host, const char *port, const char *peer, const char *cert, const char *key, const char *ca, int handshake_timeout) {
  SSL_CTX *ctx = context(0, cert, key, ca);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, READ_AHEAD);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0 || res == NULL) fail("getaddrinfo(\"%s\"): %s", host, gai_strerror(rc));
  double deadline = now() + handshake_timeout;  // the TCP connection and the TLS handshake, together
  int fd = connect_by(res, peer, host, port, deadline, handshake_timeout);
  freeaddrinfo(res);
  char t1[128], remote[128];
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  say('N', "successfully connected from local address %s", addr_text((struct sockaddr *)&ss, t1, sizeof t1));
  sl = sizeof ss;
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) fail("getpeername(): %s", strerror(errno));
  addr_text((struct sockaddr *)&ss, remote, sizeof remote);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);

  SSL *ssl = SSL_new(ctx);
  if (ssl == NULL) fail("SSL_new(): %s", ssl_errors());
  // The server's certificate must name the host dialled (an address as an IP name, a name as DNS).
  struct in6_addr ip;
  if (inet_pton(AF_INET, host, &ip) == 1 || inet_pton(AF_INET6, host, &ip) == 1) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1) fail("host check: %s", ssl_errors());
  } else {
    if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1) fail("host check: %s", ssl_errors());
  }
  if (SSL_set_fd(ssl, fd) != 1) fail("SSL_set_fd(): %s", ssl_errors());
  char who[192];
  snprintf(who, sizeof who, "peer %s at %s", peer, remote);
  handshake_by(ssl, fd, 0, deadline, handshake_timeout, who);
  check_peer_id(ssl, peer);
  say('N', "SSL connection using %s", SSL_get_cipher_name(ssl));

  char *buf = malloc(CHUNK);
  if (buf == NULL) fail("out of memory");
  for (;;) {
    // Decrypt what has arrived (SSL_read gives one record at a time), then write it with one call.
    size_t off = 0;
    int r;
    do {
      r = SSL_read(ssl, buf + off, (int)(CHUNK - off));
      if (r > 0) off += (size_t)r;
    } while (r > 0 && CHUNK - off >= 16384 && SSL_has_pending(ssl));
    if (off > 0) write_all(1, buf, off);
    if (r <= 0) {
      int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_ZERO_RETURN) break;  // close_notify: the whole stream arrived
      if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) fail("SSL_read(): the connection ended without TLS's close_notify (%s)", errno != 0 ? strerror(errno) : "EOF");
      fail("SSL_read(): %s", ssl_errors());
    }
  }
  if (close(1) != 0) fail("close(1): %s", strerror(errno));
  SSL_shutdown(ssl);
  free(buf);
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  say('N', "exiting with status 0");
  return 0;
}

/** `arg` is `name`=<whole seconds from 1 to MAX_TIMEOUT>: 1 and the value in *out (it must not be
 * given twice: *given), 0 when `arg` is not that option; fails on a bad value. */
static int seconds_option(const char *arg, const char *name, int *out, int *given) {
  size_t nl = strlen(name);
  if (strncmp(arg, name, nl) != 0 || arg[nl] != '=') return 0;
  if (*given) return 0;  // a repeated option: not the usage
  const char *v = arg + nl + 1;
  char *end;
  errno = 0;
  long t = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || errno != 0 || t < 1 || t > MAX_TIMEOUT) fail("%s \"%s\" is not a whole number of seconds from 1 to %d", name, v, MAX_TIMEOUT);
  *out = (int)t;
  *given = 1;
  return 1;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);  // a closed reader is an error of write(), logged
  int handshake = DEFAULT_HANDSHAKE_TIMEOUT, handshake_given = 0, accept_s = DEFAULT_ACCEPT_TIMEOUT, accept_given = 0, ok = 1;
  if (argc >= 7 && argc <= 10 && strcmp(argv[1], "listen") == 0) {
    int count = 0;
    for (int i = 7; i < argc; i++) {
      if (strcmp(argv[i], "count") == 0 && !count) count = 1;
      else if (!seconds_option(argv[i], "handshake-timeout", &handshake, &handshake_given) && !seconds_option(argv[i], "accept-timeout", &accept_s, &accept_given)) ok = 0;
    }
    if (ok) return listen_mode(argv[2], argv[3], argv[4], argv[5], argv[6], count, handshake, accept_s);
  }
  if (argc >= 8 && argc <= 9 && strcmp(argv[1], "connect") == 0) {
    for (int i = 8; i < argc; i++) {
      if (!seconds_option(argv[i], "handshake-timeout", &handshake, &handshake_given)) ok = 0;
    }
    if (ok) return connect_mode(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7], handshake);
  }
  fail("usage: manatee-tls-relay listen <bind-address> <peer-id> <cert> <key> <ca> [count] [handshake-timeout=<s>] [accept-timeout=<s>] | connect <host> <port> <peer-id> <cert> <key> <ca> [handshake-timeout=<s>]");
}
