/* mailer_deliver.c - one mail's text, and its two ways out: a .eml file for
 * the dev mailbox, or SMTP through libcurl (PLATFORM.md: refused recipient is
 * CURLE_SEND_ERROR with response 550, a down server CURLE_COULDNT_CONNECT). */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mailer.h"

static bool
header_safe(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

lb_status
mailer_format(char **out, const char *mail_id, const Layby__V1__MailContent *m, const char *from,
              int64_t now_ms, lb_err *err)
{
    if (!header_safe(m->to) || !header_safe(m->subject) || !header_safe(from) || m->to[0] == '\0')
        return lb_err_set(err, LB_ERR_INVALID, "mail %s: header with a line break or no recipient",
                          mail_id);
    char date[64];
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    const char *fmt = "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n"
                      "Message-ID: <%s@layby>\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=UTF-8\r\n"
                      "Content-Transfer-Encoding: 8bit\r\n\r\n%s";
    int n = snprintf(NULL, 0, fmt, from, m->to, m->subject, date, mail_id, m->text);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "mail text");
    snprintf(buf, (size_t)n + 1, fmt, from, m->to, m->subject, date, mail_id, m->text);
    *out = buf;
    return LB_OK;
}

lb_status
mailer_eml_write(const char *mailbox, const char *mail_id, const char *text, lb_err *err)
{
    char path[1024], tmp[1024];
    if (snprintf(path, sizeof path, "%s/%s.eml", mailbox, mail_id) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/.%s.tmp", mailbox, mail_id) >= (int)sizeof tmp)
        return lb_err_set(err, LB_ERR_CONFIG, "mailbox path too long");
    FILE *f = fopen(tmp, "wb");
    if (f == NULL)
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "mailbox %s: %s", mailbox, strerror(errno));
    size_t len = strlen(text);
    bool ok = fwrite(text, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok; /* the commit that follows must not outlive the file */
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "mailbox %s: %s", mailbox, strerror(e));
    }
    return LB_OK;
}

typedef struct upload {
    const char *p;
    size_t left;
} upload;

static size_t
read_cb(char *buf, size_t size, size_t n, void *arg)
{
    upload *u = arg;
    size_t k = size * n < u->left ? size * n : u->left;
    memcpy(buf, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

/* "smtp+starttls://h:p" -> "smtp://h:p" and STARTTLS required: CURLUSESSL_ALL
 * fails the transfer (CURLE_USE_SSL_FAILED) before MAIL FROM when the server
 * offers no STARTTLS, where CURLUSESSL_TRY would go on in clear. Peer and host
 * verification stay libcurl's default (on); only the trusted CAs may change. */
static const char starttls_scheme[] = "smtp+starttls://";

lb_status
mailer_smtp_send(const char *url, const char *ca_file, const char *from, const char *to,
                 const char *text, int64_t timeout_ms, lb_err *err)
{
    char real[1024], rcpt[512], mfrom[512];
    bool starttls = strncmp(url, starttls_scheme, sizeof starttls_scheme - 1) == 0;
    snprintf(real, sizeof real, "%s%s", starttls ? "smtp://" : "",
             starttls ? url + sizeof starttls_scheme - 1 : url);
    snprintf(rcpt, sizeof rcpt, "<%s>", to);
    snprintf(mfrom, sizeof mfrom, "<%s>", from);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return lb_err_set(err, LB_ERR_NOMEM, "curl handle");
    struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
    upload u = { text, strlen(text) };
    curl_easy_setopt(c, CURLOPT_URL, real);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, mfrom);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (starttls)
        curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (ca_file != NULL && ca_file[0] != '\0')
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(rcpts);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) /* the recipient is never put into the error: it is personal */
        return lb_err_set(err, LB_ERR_UNAVAILABLE, "smtp: %s (server answered %ld)",
                          curl_easy_strerror(rc), code);
    return LB_OK;
}
