/*
 * resolve NAME [SECONDS]: looks NAME up through the pod's own resolver
 * (/etc/resolv.conf as the kubelet wrote it) until it resolves or SECONDS
 * (default 30) pass; prints the addresses and exits 0, else exits 1.
 *
 * The one-node test cluster counts as ready only when a pod resolves a
 * Service name; the other images hold nothing but their server, so this is
 * the client. Built static against musl, whose resolver needs no NSS modules.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: resolve NAME [SECONDS]\n");
        return 2;
    }
    int seconds = argc > 2 ? atoi(argv[2]) : 30;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    for (int tried = 0;; tried++) {
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(argv[1], NULL, &hints, &res);
        if (rc == 0) {
            for (struct addrinfo *a = res; a; a = a->ai_next) {
                char ip[INET_ADDRSTRLEN];
                struct sockaddr_in *sin = (struct sockaddr_in *)a->ai_addr;
                inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
                printf("%s %s\n", argv[1], ip);
            }
            freeaddrinfo(res);
            return 0;
        }
        if (tried >= seconds) {
            fprintf(stderr, "resolve %s: %s\n", argv[1], gai_strerror(rc));
            return 1;
        }
        sleep(1);
    }
}
