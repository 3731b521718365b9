# scripts/lib/secrets.sh - generated secrets under $LB_SECRETS (mode 700).
#
# Each secret is made once and kept, so re-running `up` never changes a
# password under a running server. Nothing here prints a secret.
# shellcheck shell=bash

# lb_secret NAME: prints the secret NAME, creating a random one first.
lb_secret() {
    local f=$LB_SECRETS/$1
    if [ ! -s "$f" ]; then
        (umask 077 && openssl rand -hex 24 >"$f")
    fi
    cat "$f"
}

# Creates every file secret: the dev JWT ES256 key pair and the data keys.
lb_secrets_init() {
    local key=$LB_SECRETS/jwt-es256.key pub=$LB_SECRETS/jwt-es256.pub
    (
        umask 077
        if [ ! -s "$key" ]; then
            openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null |
                openssl pkcs8 -topk8 -nocrypt -out "$key.tmp"
            mv "$key.tmp" "$key"
            rm -f "$pub"
        fi
        [ -s "$pub" ] || openssl ec -in "$key" -pubout -out "$pub" 2>/dev/null
        # 32-byte keys, hex: AEAD key for personal data, and the blind-index key.
        [ -s "$LB_SECRETS/data.key" ] || openssl rand -hex 32 >"$LB_SECRETS/data.key"
        [ -s "$LB_SECRETS/index.key" ] || openssl rand -hex 32 >"$LB_SECRETS/index.key"
    )
}
