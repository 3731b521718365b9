# scripts/lib/services.awk - reads the service table (etc/services.tsv, plus
# tests/support/services-test.tsv in test set-ups) and prints one view of it.
# The one parser: the shell (scripts/lib/services.sh), CMake and the build's
# code generator all call it, so they cannot read the table differently.
#
#   awk -v want=VIEW -f services.awk TABLE...
#   check     nothing; fails (exit 1, message on stderr) on a malformed table
#   nats      permission rows, as etc/nats-users.tsv: user ENV pub|sub subject...
#   roles     schema ENV... : the role owning each schema and who connects as it
#   daemons   layby-<service> PORT_VARIABLE DEFAULT, in start order
#   folders   layby-<service> FOLDER, for CMake
#   c         gen/svc_table.c: durables and daemons as C tables
# Every view checks the whole table first. mawk-compatible (Debian's awk).

function fail(msg) {
    printf "%s:%d: %s\n", FILENAME, FNR, msg > "/dev/stderr"
    failed = 1
    exit 1
}

function need(lo, hi) {
    if (NF - 2 < lo || (hi >= 0 && NF - 2 > hi))
        fail("field '" $2 "' takes " (hi < 0 ? lo " or more" : (lo == hi ? lo : lo " to " hi)) \
             " values, not " NF - 2)
}

function once(key) {
    if ((svc SUBSEP key) in seen_once)
        fail("service " svc ": field '" key "' given twice")
    seen_once[svc, key] = 1
}

# Rest of the line from field i, single-spaced.
function rest(i,    s) {
    s = $i
    for (i++; i <= NF; i++)
        s = s " " $i
    return s
}

/^[ \t]*(#|$)/ { next }

{
    svc = $1
    if (svc !~ /^[a-z][a-z0-9]*$/)
        fail("service name '" svc "': lower-case letters and digits")
    if (NF < 2)
        fail("service " svc ": no field")
    for (i = 1; i <= NF; i++)
        if ($i ~ /["\\]/)
            fail("no quotes or backslashes: " $i)
    if (!(svc in known)) {
        known[svc] = 1
        order[++n_svc] = svc
    }
    f = $2
    if (f == "folder") {
        need(1, 1); once(f); folder[svc] = $3
    } else if (f == "port") {
        need(1, 2); once(f)
        if ($3 !~ /^[0-9]+$/ || $3 + 0 < 1 || $3 + 0 > 65535)
            fail("port '" $3 "' is no TCP port")
        if ($3 in port_user)
            fail("port " $3 " is " port_user[$3] "'s already")
        port_user[$3] = svc
        port[svc] = $3
        port_var[svc] = NF == 4 ? $4 : "LAYBY_" toupper(svc) "_METRICS_PORT"
        if (port_var[svc] !~ /^LAYBY_[A-Z0-9_]+$/)
            fail("port variable '" port_var[svc] "' must be LAYBY_<NAME>")
    } else if (f == "schema") {
        need(1, -1); once(f)
        if ($3 !~ /^[a-z][a-z0-9_]*$/ || $3 == "public" || $3 == "order")
            fail("schema '" $3 "': lower-case, not public, not the reserved word order")
        if ($3 in schema_user)
            fail("schema " $3 " is " schema_user[$3] "'s already")
        schema_user[$3] = svc
        schema[svc] = $3
        extra = toupper(svc)
        for (i = 4; i <= NF; i++) {
            if ($i !~ /^[A-Z][A-Z0-9_]*$/)
                fail("environment prefix '" $i "': capitals")
            extra = extra " " $i
        }
        schema_env[svc] = extra
    } else if (f == "durable") {
        need(3, 3)
        if ($3 !~ /^[A-Z][A-Z0-9_]*$/)
            fail("stream '" $3 "': capitals")
        if ($4 !~ /^[a-z][a-z0-9-]*$/)
            fail("durable '" $4 "': lower-case letters, digits and -")
        if (($3 SUBSEP $4) in durable_user)
            fail("durable " $3 "/" $4 " is " durable_user[$3, $4] "'s already")
        durable_user[$3, $4] = svc
        n_dur++
        dur_svc[n_dur] = svc; dur_stream[n_dur] = $3; dur_name[n_dur] = $4; dur_filter[n_dur] = $5
        has_durable[svc] = 1
    } else if (f == "publish") {
        need(1, -1); pub[svc] = pub[svc] (pub[svc] == "" ? "" : " ") rest(3)
    } else if (f == "subscribe") {
        need(1, -1); subs[svc] = subs[svc] (subs[svc] == "" ? "" : " ") rest(3)
    } else if (f == "grant") {
        need(2, -1)
        if ($3 !~ /^[a-z][a-z0-9]*$/)
            fail("grant: '" $3 "' is no user name")
        n_grant++
        grant_user[n_grant] = $3; grant_subj[n_grant] = rest(4)
    } else {
        fail("unknown field '" f "' (folder port schema durable publish subscribe grant)")
    }
}

function view_nats(    k, s, d, up, api) {
    for (k = 1; k <= n_svc; k++) {
        s = order[k]
        up = toupper(s)
        if (pub[s] != "")
            print s, up, "pub", pub[s]
        if (has_durable[s] || subs[s] != "")
            print s, up, "pub", "layby.dlq." s, "_INBOX.>"
        for (d = 1; d <= n_dur; d++) {
            if (dur_svc[d] != s)
                continue
            api = dur_stream[d] "." dur_name[d]
            print s, up, "pub", "$JS.API.CONSUMER.INFO." api, "$JS.API.CONSUMER.MSG.NEXT." api, \
                "$JS.ACK." api ".>"
        }
        if (has_durable[s])
            print s, up, "pub", "$JS.API.STREAM.INFO.*"
        print s, up, "sub", "_INBOX.>" (subs[s] == "" ? "" : " " subs[s])
    }
    for (k = 1; k <= n_grant; k++)
        print grant_user[k], toupper(grant_user[k]), "pub", grant_subj[k]
}

function view_c(    k, s, d) {
    print "/* svc_table.c - generated by scripts/lib/services.awk from the service"
    print " * table (etc/services.tsv): do not edit. */"
    print "#include \"engine/bus_topology.h\""
    print "#include \"engine/svc_table.h\""
    print ""
    print "const bus_topology_consumer bus_topology_consumers[] = {"
    for (d = 1; d <= n_dur; d++)
        printf "    { \"%s\", \"%s\", \"%s\", \"layby-%s\" },\n", dur_stream[d], dur_name[d], \
            dur_filter[d], dur_svc[d]
    print "};"
    print "const size_t bus_topology_n_consumers = LB_COUNTOF(bus_topology_consumers);"
    print ""
    print "const svc_table_daemon svc_table_daemons[] = {"
    for (k = 1; k <= n_svc; k++) {
        s = order[k]
        if (s in port)
            printf "    { \"layby-%s\", \"%s\", %d },\n", s, port_var[s], port[s]
    }
    print "};"
    print "const size_t svc_table_n_daemons = LB_COUNTOF(svc_table_daemons);"
    print ""
    print "const svc_table_schema svc_table_schemas[] = {"
    for (k = 1; k <= n_svc; k++) {
        s = order[k]
        if (s in schema)
            printf "    { \"%s\", \"LAYBY_%s_DATABASE_URL\" },\n", schema[s], toupper(s)
    }
    print "};"
    print "const size_t svc_table_n_schemas = LB_COUNTOF(svc_table_schemas);"
}

END {
    if (failed)
        exit 1
    if (n_svc == 0) {
        print "services.awk: the table is empty" > "/dev/stderr"
        exit 1
    }
    if (n_dur == 0) {
        print "services.awk: no durable in the table" > "/dev/stderr"
        exit 1
    }
    if (want == "check") {
    } else if (want == "nats") {
        view_nats()
    } else if (want == "roles") {
        for (k = 1; k <= n_svc; k++)
            if (order[k] in schema)
                print schema[order[k]], schema_env[order[k]]
    } else if (want == "daemons") {
        for (k = 1; k <= n_svc; k++)
            if (order[k] in port)
                print "layby-" order[k], port_var[order[k]], port[order[k]]
    } else if (want == "folders") {
        for (k = 1; k <= n_svc; k++)
            if (order[k] in folder)
                print "layby-" order[k], folder[order[k]]
    } else if (want == "c") {
        view_c()
    } else {
        print "services.awk: want=check|nats|roles|daemons|folders|c, not '" want "'" > "/dev/stderr"
        exit 1
    }
}
