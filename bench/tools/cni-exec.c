// cni-exec: run one CNI plugin the way a Go runtime (libcni under containerd
// or CRI-O) runs it, and time only the plugin.
//
//   cni-exec [--netns PATH] PLUGIN
//
// Joins the node's network namespace first (as the runtime runs in it), then
// forks and execs PLUGIN with this process's environment, stdin, stdout and
// stderr, and waits. The plugin's wall time (fork to reaped, CLOCK_MONOTONIC)
// goes to fd 3 as nanoseconds when fd 3 is open. Exits with the plugin's
// status.
//
// Why not `nsenter ... PLUGIN` timed from Node: that figure also holds
// nsenter's own exec and a fork of the bench's large Node process, several
// milliseconds that no runtime pays.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--netns") == 0) {
        int fd = open(argv[i + 1], O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
            fprintf(stderr, "cni-exec: cannot join network namespace %s: %s\n", argv[i + 1], strerror(errno));
            return 125;
        }
        close(fd);
        i += 2;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: cni-exec [--netns PATH] PLUGIN\n");
        return 125;
    }
    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "cni-exec: fork: %s\n", strerror(errno));
        return 125;
    }
    if (pid == 0) {
        if (fcntl(3, F_GETFD) >= 0) close(3); // the timing pipe is not the plugin's
        execv(argv[i], &argv[i]);
        fprintf(stderr, "cni-exec: cannot exec %s: %s\n", argv[i], strerror(errno));
        _exit(126);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    long long t1 = now_ns();
    if (fcntl(3, F_GETFD) >= 0) dprintf(3, "%lld\n", t1 - t0);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}
