/* bus_status.c - streams, durables and servers as JSON (bus_status.h). */
#include "bus_status.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "bus_topology.h"

static json_t *
jint(uint64_t v)
{
    return json_integer((json_int_t)v);
}

json_t *
bus_status_streams(jsCtx *js, uint64_t *dlq_msgs)
{
    json_t *arr = json_array();
    *dlq_msgs = 0;
    for (size_t i = 0; i < bus_topology_n_streams; i++) {
        const char *name = bus_topology_streams[i].name;
        jsStreamInfo *si = NULL;
        json_t *o = json_pack("{s:s}", "name", name);
        if (js_GetStreamInfo(&si, js, name, NULL, NULL) != NATS_OK) {
            json_object_set_new(o, "ok", json_false());
        } else {
            json_object_set_new(o, "ok", json_true());
            json_object_set_new(o, "messages", jint(si->State.Msgs));
            json_object_set_new(o, "bytes", jint(si->State.Bytes));
            json_object_set_new(o, "lastSeq", jint(si->State.LastSeq));
            json_object_set_new(o, "replicas",
                                json_integer(si->Config != NULL ? si->Config->Replicas : 1));
            if (si->Cluster != NULL && si->Cluster->Leader != NULL)
                json_object_set_new(o, "leader", json_string(si->Cluster->Leader));
            if (strcmp(name, BUS_STREAM_DLQ) == 0)
                *dlq_msgs = si->State.Msgs;
            jsStreamInfo_Destroy(si);
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

json_t *
bus_status_durables(jsCtx *js)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < bus_topology_n_consumers; i++) {
        const bus_topology_consumer *c = &bus_topology_consumers[i];
        jsConsumerInfo *ci = NULL;
        json_t *o = json_pack("{s:s,s:s}", "stream", c->stream, "name", c->durable);
        if (js_GetConsumerInfo(&ci, js, c->stream, c->durable, NULL, NULL) != NATS_OK) {
            json_object_set_new(o, "ok", json_false());
        } else {
            json_object_set_new(o, "ok", json_true());
            json_object_set_new(o, "pending", jint(ci->NumPending));
            json_object_set_new(o, "ackPending", json_integer(ci->NumAckPending));
            json_object_set_new(o, "redelivered", json_integer(ci->NumRedelivered));
            jsConsumerInfo_Destroy(ci);
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

/* fd connected to host:port within the deadline, or -1 with *why. */
static int
probe_connect(const char *host, const char *port, int64_t deadline, const char **why)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) {
        *why = "cannot resolve the host";
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        *why = "connection refused";
        return -1;
    }
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int64_t left = deadline - lb_mono_us() / 1000;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (left <= 0 || poll(&p, 1, (int)left) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
        close(fd);
        *why = soerr != 0 ? "connection refused" : "no answer in time";
        return -1;
    }
    return fd;
}

/* The JSON of the server's "INFO {...}\r\n" greeting, or NULL with *why. */
static json_t *
probe_info(const char *url, int64_t timeout_ms, const char **why)
{
    char host[256], port[16] = "4222";
    const char *p = strstr(url, "://");
    p = p != NULL ? p + 3 : url;
    const char *at = strrchr(p, '@'); /* user:password@ */
    if (at != NULL)
        p = at + 1;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof host) {
        *why = "not a server URL";
        return NULL;
    }
    memcpy(host, p, hl);
    host[hl] = '\0';
    if (p[hl] == ':')
        snprintf(port, sizeof port, "%.*s", (int)strcspn(p + hl + 1, "/"), p + hl + 1);
    int64_t deadline = lb_mono_us() / 1000 + timeout_ms;
    int fd = probe_connect(host, port, deadline, why);
    if (fd < 0)
        return NULL;
    char buf[8192];
    size_t n = 0;
    char *eol = NULL;
    while (eol == NULL && n < sizeof buf - 1) {
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int64_t left = deadline - lb_mono_us() / 1000;
        if (left <= 0 || poll(&pf, 1, (int)left) != 1)
            break;
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        buf[n] = '\0';
        eol = strstr(buf, "\r\n");
    }
    close(fd);
    if (eol == NULL || strncmp(buf, "INFO ", 5) != 0) {
        *why = "no INFO line from the server";
        return NULL;
    }
    *eol = '\0';
    json_t *info = json_loads(buf + 5, 0, NULL);
    if (info == NULL)
        *why = "the server's INFO is not JSON";
    return info;
}

static void
server_add(json_t *arr, const char *url, const char *connected_id, int64_t timeout_ms)
{
    const char *why = NULL;
    json_t *o = json_pack("{s:s}", "url", url);
    json_t *info = probe_info(url, timeout_ms, &why);
    if (info == NULL) {
        json_object_set_new(o, "ok", json_false());
        json_object_set_new(o, "error", json_string(why));
    } else {
        const char *id = json_string_value(json_object_get(info, "server_id"));
        json_object_set_new(o, "ok", json_true());
        json_object_set_new(
            o, "connected",
            json_boolean(id != NULL && connected_id[0] != '\0' && strcmp(id, connected_id) == 0));
        json_object_set(o, "name", json_object_get(info, "server_name"));
        json_object_set(o, "version", json_object_get(info, "version"));
        json_object_set_new(o, "jetstream",
                            json_boolean(json_is_true(json_object_get(info, "jetstream"))));
        json_t *cluster = json_object_get(info, "cluster");
        if (json_is_string(cluster))
            json_object_set(o, "cluster", cluster);
        json_decref(info);
    }
    json_array_append_new(arr, o);
}

json_t *
bus_status_servers(natsConnection *nc, int64_t timeout_ms)
{
    json_t *arr = json_array();
    char connected_id[128] = "";
    char **urls = NULL;
    int n = 0;
    if (natsConnection_GetConnectedServerId(nc, connected_id, sizeof connected_id) != NATS_OK)
        connected_id[0] = '\0';
    if (natsConnection_GetServers(nc, &urls, &n) != NATS_OK)
        return arr;
    for (int i = 0; i < n; i++) {
        server_add(arr, urls[i], connected_id, timeout_ms);
        free(urls[i]);
    }
    free(urls);
    return arr;
}
