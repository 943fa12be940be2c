# bench/lib.bash — helpers that bench/intake and bench/learning share. Sourced, not run.
# Each script sets `bench_name` (for messages) before sourcing this file.
: "${bench_name:=bench}"

# bench_check NAME VALUE MIN MAX: exits 2 unless VALUE is an integer in MIN..MAX (option --NAME).
bench_check() {
    if ! [[ "$2" =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
        echo "$bench_name: --$1 must be $3..$4" >&2
        exit 2
    fi
}

# stop PID: SIGTERM, up to 100 x 0.1 s for it to exit, then SIGKILL.
stop() {
    local pid=$1
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# pace_parse FILE KEY...: pace's last line ("pace key=value ...") -> the values of the keys
# named, in that order, on one line; fails when the line or a key is missing.
pace_parse() {
    local file=$1
    shift
    awk -v keys="$*" '
    /^pace rate_asked=/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }; found = 1 }
    END {
        if (!found) exit 1
        n = split(keys, k, " ")
        for (i = 1; i <= n; i++) { if (!(k[i] in v)) exit 1; printf "%s%s", v[k[i]], (i < n) ? " " : "\n" }
    }' "$file"
}
