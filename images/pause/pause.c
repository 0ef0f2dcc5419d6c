/*
 * The pod sandbox's process: holds the pod's namespaces, reaps orphans that
 * end up as its children, and exits on SIGTERM or SIGINT. Linked statically
 * so that its image is this one file.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv)
{
	struct sigaction stop = { .sa_handler = on_stop };
	struct sigaction child = { .sa_handler = on_child, .sa_flags = SA_NOCLDSTOP };

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		puts("switchyard-lab pause");
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: not PID 1; orphans are reaped only as PID 1\n");
	if (sigaction(SIGINT, &stop, NULL) || sigaction(SIGTERM, &stop, NULL) || sigaction(SIGCHLD, &child, NULL)) {
		perror("pause: sigaction");
		return 1;
	}
	for (;;)
		pause();
}
