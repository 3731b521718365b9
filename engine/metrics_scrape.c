/* metrics_scrape.c - another daemon's /metrics over HTTP (metrics_scrape.h). */
#include "metrics_scrape.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc_table.h"

typedef struct body_buf {
    char *p;
    size_t len;
} body_buf;

static size_t
body_add(char *data, size_t size, size_t n, void *arg)
{
    body_buf *b = arg;
    size_t k = size * n;
    if (b->len + k > METRICS_SCRAPE_MAX)
        return 0;
    char *p = realloc(b->p, b->len + k + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->len, data, k);
    b->p = p;
    b->len += k;
    p[b->len] = '\0';
    return k;
}

lb_status
metrics_scrape(char **text, const char *url, int64_t timeout_ms, lb_err *err)
{
    *text = NULL;
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "libcurl: cannot start");
    body_buf b = { 0 };
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_add);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    long code = 0;
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK || code != 200) {
        free(b.p);
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "%s",
                          rc != CURLE_OK ? curl_easy_strerror(rc) : "metrics did not answer 200");
    }
    *text = b.p != NULL ? b.p : strdup("");
    return *text != NULL ? LB_OK : lb_err_set(err, LB_ERR_NOMEM, "metrics page");
}

double
metrics_series_sum(const char *text, const char *series)
{
    double sum = -1;
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, series, n) != 0 || (p[n] != '{' && p[n] != ' '))
            continue;
        const char *v = strchr(p, ' ');
        const char *eol = strchr(p, '\n');
        if (v != NULL && (eol == NULL || v < eol))
            sum = (sum < 0 ? 0 : sum) + strtod(v + 1, NULL);
    }
    return sum;
}

/* Instance i of a daemon: its port is <port variable>_<i> from i = 2 on (the
 * env file of scripts/dev, lb_daemon_port_var), default port + 100 per
 * instance as scripts/dev draws them. */
static int
instance_port(const svc_table_daemon *d, int i)
{
    char var[128];
    if (i == 1)
        snprintf(var, sizeof var, "%s", d->port_env);
    else
        snprintf(var, sizeof var, "%s_%d", d->port_env, i);
    const char *v = getenv(var);
    return v != NULL && v[0] != '\0' ? atoi(v) : d->port_default + 100 * (i - 1);
}

/* How many instances of a daemon run: LAYBY_INSTANCES (scripts/dev writes
 * it), or more when <port variable>_<i> names further ones (issue 23). */
static int
instances_of(const svc_table_daemon *d)
{
    const char *v = getenv("LAYBY_INSTANCES");
    int n = v != NULL && atoi(v) > 0 ? atoi(v) : 1;
    for (char var[128];; n++) {
        snprintf(var, sizeof var, "%s_%d", d->port_env, n + 1);
        if (getenv(var) == NULL)
            return n;
    }
}

json_t *
metrics_scrape_daemons(const char *host, int64_t timeout_ms)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < svc_table_n_daemons; i++) {
        const svc_table_daemon *d = &svc_table_daemons[i];
        for (int k = 1, n = instances_of(d); k <= n; k++) {
            int port = instance_port(d, k);
            char url[320], name[96];
            /* Instance 1 keeps the binary's name: what a single stack always said. */
            if (k == 1)
                snprintf(name, sizeof name, "%s", d->binary);
            else
                snprintf(name, sizeof name, "%s-%d", d->binary, k);
            snprintf(url, sizeof url, "http://%s:%d/metrics", host, port);
            json_t *o = json_pack("{s:s,s:i,s:i}", "name", name, "instance", k, "port", port);
            char *text = NULL;
            lb_err err;
            if (metrics_scrape(&text, url, timeout_ms, &err) != LB_OK) {
                json_object_set_new(o, "ok", json_false());
                json_object_set_new(o, "error", json_string(err.msg));
            } else {
                double backlog = metrics_series_sum(text, "layby_outbox_backlog_rows");
                json_object_set_new(o, "ok", json_true());
                json_object_set_new(o, "outboxBacklog",
                                    backlog < 0 ? json_null() : json_integer((json_int_t)backlog));
            }
            free(text);
            json_array_append_new(arr, o);
        }
    }
    return arr;
}
