// lean: the benchmark's proxy and HTTP server, small enough that their own
// cost does not hide the interception cost being measured.
//
//   lean proxy --listen PORT            transparent: upstream = SO_ORIGINAL_DST
//   lean proxy --map LPORT=IP:PORT ...  explicit: each listener has a fixed upstream
//   lean http  --listen IP:PORT [--body TEXT]
//                                       fixed 200 "ok" (or TEXT) per request, keep-alive
//                                       unless the request says Connection: close
//
// One thread per connection; the proxy relays both directions with poll and
// recv/send. On SIGUSR1 each prints one JSON line of counters to stdout.
// Only for bench/: the reference sidecar is sidecar/.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static atomic_ullong g_conns, g_requests, g_bytes_up, g_bytes_down, g_errors;

static void die(const char *what) {
  fprintf(stderr, "lean: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int listen_on(const char *ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "lean: '%s' is not an IPv4 address\n", ip);
    exit(2);
  }
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  if (listen(fd, 4096) < 0) die("listen");
  return fd;
}

static void nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// ---- proxy ---------------------------------------------------------------

struct listener {
  int fd;
  int transparent;
  struct sockaddr_in upstream;
};

struct pair {
  int down;  // accepted from the app
  struct listener *l;
};

static int send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void *relay(void *arg) {
  struct pair *pr = arg;
  int down = pr->down, up = -1;
  struct sockaddr_in dst = pr->l->upstream;
  if (pr->l->transparent) {
    socklen_t len = sizeof dst;
    if (getsockopt(down, SOL_IP, SO_ORIGINAL_DST, &dst, &len) < 0) goto fail;
  }
  up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (up < 0 || connect(up, (struct sockaddr *)&dst, sizeof dst) < 0) goto fail;
  nodelay(down);
  nodelay(up);
  atomic_fetch_add(&g_conns, 1);
  char buf[65536];
  struct pollfd p[2] = {{.fd = down, .events = POLLIN}, {.fd = up, .events = POLLIN}};
  int open_dirs = 2;
  while (open_dirs) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = recv(p[i].fd, buf, sizeof buf, 0);
      int to = i == 0 ? up : down;
      if (r <= 0) {
        // Half-close: pass the FIN on and stop reading this side.
        shutdown(to, SHUT_WR);
        p[i].fd = -1;
        open_dirs--;
        if (r < 0) open_dirs = 0;
        continue;
      }
      if (send_all(to, buf, (size_t)r) < 0) {
        open_dirs = 0;
        break;
      }
      atomic_fetch_add(i == 0 ? &g_bytes_up : &g_bytes_down, (unsigned long long)r);
    }
  }
  close(up);
  close(down);
  free(pr);
  return NULL;
fail:
  atomic_fetch_add(&g_errors, 1);
  if (up >= 0) close(up);
  close(down);
  free(pr);
  return NULL;
}

static void *accept_loop(void *arg) {
  struct listener *l = arg;
  for (;;) {
    int c = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
      die("accept");
    }
    struct pair *pr = malloc(sizeof *pr);
    pr->down = c;
    pr->l = l;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    if (pthread_create(&t, &at, relay, pr) != 0) {
      close(c);
      free(pr);
    }
    pthread_attr_destroy(&at);
  }
  return NULL;
}

// ---- http ----------------------------------------------------------------

static char RESP_KEEP[256], RESP_CLOSE[256];
static size_t RESP_KEEP_N, RESP_CLOSE_N;

static void usage(void);

static void set_body(const char *body) {
  if (strlen(body) > 64) usage();
  RESP_KEEP_N = (size_t)snprintf(RESP_KEEP, sizeof RESP_KEEP, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n\r\n%s", strlen(body), body);
  RESP_CLOSE_N = (size_t)snprintf(RESP_CLOSE, sizeof RESP_CLOSE, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n%s", strlen(body), body);
}

static void *serve(void *arg) {
  int fd = (int)(long)arg;
  nodelay(fd);
  atomic_fetch_add(&g_conns, 1);
  char buf[16384];
  size_t have = 0;
  for (;;) {
    ssize_t r = recv(fd, buf + have, sizeof buf - have - 1, 0);
    if (r <= 0) break;
    have += (size_t)r;
    buf[have] = 0;
    char *end;
    int closing = 0;
    while ((end = strstr(buf, "\r\n\r\n"))) {
      *end = 0;
      closing = strcasestr(buf, "connection: close") != NULL;
      atomic_fetch_add(&g_requests, 1);
      const char *resp = closing ? RESP_CLOSE : RESP_KEEP;
      size_t n = closing ? RESP_CLOSE_N : RESP_KEEP_N;
      if (send_all(fd, resp, n) < 0) goto out;
      atomic_fetch_add(&g_bytes_down, n);
      size_t used = (size_t)(end + 4 - buf);
      memmove(buf, buf + used, have - used + 1);
      have -= used;
      if (closing) goto out;
    }
    if (have == sizeof buf - 1) break;  // a header larger than we accept
  }
out:
  close(fd);
  return NULL;
}

static void *http_loop(void *arg) {
  int lfd = (int)(long)arg;
  for (;;) {
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE) continue;
      die("accept");
    }
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 256 * 1024);
    if (pthread_create(&t, &at, serve, (void *)(long)c) != 0) close(c);
    pthread_attr_destroy(&at);
  }
  return NULL;
}

// ---- main ----------------------------------------------------------------

static void usage(void) {
  fprintf(stderr,
          "usage: lean proxy --listen PORT | lean proxy --map LPORT=IP:PORT [...] | lean http --listen IP:PORT [--body TEXT]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 4) usage();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);  // every thread inherits: only sigwait below sees them

  pthread_t t;
  if (strcmp(argv[1], "proxy") == 0) {
    for (int i = 2; i + 1 < argc; i += 2) {
      struct listener *l = calloc(1, sizeof *l);
      if (strcmp(argv[i], "--listen") == 0) {
        l->transparent = 1;
        l->fd = listen_on("127.0.0.1", atoi(argv[i + 1]));
      } else if (strcmp(argv[i], "--map") == 0) {
        char ip[64];
        int lport, uport;
        if (sscanf(argv[i + 1], "%d=%63[^:]:%d", &lport, ip, &uport) != 3) usage();
        l->upstream.sin_family = AF_INET;
        l->upstream.sin_port = htons(uport);
        if (inet_pton(AF_INET, ip, &l->upstream.sin_addr) != 1) usage();
        l->fd = listen_on("127.0.0.1", lport);
      } else {
        usage();
      }
      pthread_create(&t, NULL, accept_loop, l);
    }
  } else if (strcmp(argv[1], "http") == 0 && strcmp(argv[2], "--listen") == 0) {
    char ip[64];
    int port;
    if (sscanf(argv[3], "%63[^:]:%d", ip, &port) != 2) usage();
    set_body(argc >= 6 && strcmp(argv[4], "--body") == 0 ? argv[5] : "ok");
    pthread_create(&t, NULL, http_loop, (void *)(long)listen_on(ip, port));
  } else {
    usage();
  }
  printf("{\"event\":\"ready\"}\n");
  fflush(stdout);
  for (;;) {
    int sig;
    sigwait(&set, &sig);
    printf("{\"event\":\"stats\",\"connections\":%llu,\"requests\":%llu,\"bytesUp\":%llu,\"bytesDown\":%llu,\"errors\":%llu}\n",
           (unsigned long long)g_conns, (unsigned long long)g_requests, (unsigned long long)g_bytes_up,
           (unsigned long long)g_bytes_down, (unsigned long long)g_errors);
    fflush(stdout);
    if (sig == SIGTERM) return 0;
  }
}
