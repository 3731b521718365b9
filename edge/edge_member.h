/* edge_member.h - what the member rows of edge_table.c cannot say as data:
 * request fields only the edge knows, filled after the binds (the token's
 * login and token ids, the client's address for login throttling). Each hook
 * lists them in .fills: a body naming one is refused (unknown_field) and the
 * OpenAPI document does not show them.
 *
 * Ownership: static const hook tables.  Threads: any civetweb worker.
 */
#ifndef LAYBY_EDGE_EDGE_MEMBER_H
#define LAYBY_EDGE_EDGE_MEMBER_H

#include "edge_routes.h"

extern const edge_hooks edge_member_login_hooks;    /* Login.client_addr */
extern const edge_hooks edge_member_logout_hooks;   /* Logout.session_id, jti, exp */
extern const edge_hooks edge_member_password_hooks; /* ChangePassword.session_id */

#endif
