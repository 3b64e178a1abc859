/*
 * The sandbox ("pause") process of every pod on the test node: it holds the
 * pod's namespaces open and does nothing else. Written for natsregion; built
 * static by tools/install.sh node so the image needs no libc.
 *
 * As PID 1 of the pod it must reap orphans (otherwise they stay zombies) and
 * must exit on SIGTERM/SIGINT (PID 1 has no default handlers, so without ours
 * the runtime would have to SIGKILL it on every pod stop).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

static void on(int sig, void (*handler)(int)) {
    struct sigaction sa = {0};
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        exit(1);
    }
}

int main(void) {
    on(SIGTERM, stop);
    on(SIGINT, stop);
    on(SIGCHLD, reap);
    for (;;) {
        pause();
    }
}
