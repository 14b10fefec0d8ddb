/* LD_PRELOAD shim for load generators that cannot choose a source address (wrk): each TCP connect()
 * to 127.0.0.0/8 is first bound to the next of SRCBIND_SOURCES loopback addresses 127.0.0.1,
 * 127.0.0.2, ... so one run looks like many clients. Loopback destinations only; nothing else is touched. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

static atomic_uint next_source;

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real_connect)(int, const struct sockaddr *, socklen_t);
    if (!real_connect) real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    const char *sources = getenv("SRCBIND_SOURCES");
    if (sources && addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *dst = (const struct sockaddr_in *)addr;
        unsigned count = (unsigned)atoi(sources);
        if (count > 0 && count < 65000 && (ntohl(dst->sin_addr.s_addr) >> 24) == 127) {
            struct sockaddr_in src = {0};
            src.sin_family = AF_INET;
            src.sin_addr.s_addr = htonl(0x7f000001u + atomic_fetch_add(&next_source, 1) % count);
            bind(fd, (const struct sockaddr *)&src, sizeof src); /* failure: connect from the default */
        }
    }
    return real_connect(fd, addr, len);
}
