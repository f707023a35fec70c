#ifndef SL_CRESOLV_SHIM_H
#define SL_CRESOLV_SHIM_H
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <resolv.h>
#include <stdlib.h>
#include <string.h>

// res_ninit needs zeroed storage the caller owns; its size is glibc's business.
static inline res_state sl_res_new(void) {
    res_state s = (res_state)calloc(1, sizeof(struct __res_state));
    return s;
}

// Point a resolver at one IPv4 server and port (sl's `dns_server`, tests' dnsmasq).
// glibc keeps the list as a fixed array of sockaddr_in; Swift sees it as a tuple.
static inline void sl_res_set_server(res_state s, struct in_addr address, unsigned short port) {
    memset(&s->nsaddr_list[0], 0, sizeof s->nsaddr_list[0]);
    s->nsaddr_list[0].sin_family = AF_INET;
    s->nsaddr_list[0].sin_addr = address;
    s->nsaddr_list[0].sin_port = htons(port);
    s->nscount = 1;
    // An IPv6 server from resolv.conf lives in _ext and would win over the list.
    for (int i = 0; i < MAXNS; i++) {
        free(s->_u._ext.nsaddrs[i]);
        s->_u._ext.nsaddrs[i] = NULL;
    }
}

static inline void sl_res_set_timeout(res_state s, int seconds, int attempts) {
    s->retrans = seconds;
    s->retry = attempts;
}

// DNSSEC through a validating resolver: the DO bit on every query (EDNS0) and,
// since glibc 2.31, RES_TRUSTAD (`options trust-ad`) so that the AD bit of the
// answer reaches us; without it glibc clears AD. Only for a resolver the
// administrator names as trusted (`dnssec_resolver`).
static inline void sl_res_set_dnssec(res_state s) {
    s->options |= RES_USE_EDNS0 | RES_USE_DNSSEC | RES_TRUSTAD;
}

static inline int sl_res_ninit(res_state s) { return res_ninit(s); }
static inline void sl_res_nclose(res_state s) { res_nclose(s); }
static inline int sl_res_h_errno(res_state s) { return s->res_h_errno; }

static inline int sl_ns_msg_count(ns_msg *m, ns_sect section) { return ns_msg_count(*m, section); }
static inline const unsigned char *sl_ns_msg_base(ns_msg *m) { return ns_msg_base(*m); }
static inline const unsigned char *sl_ns_msg_end(ns_msg *m) { return ns_msg_end(*m); }
#endif
