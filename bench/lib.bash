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

# cpustat: "steal total" ticks of the whole machine (/proc/stat): the time the hypervisor ran
# something else while a virtual CPU wanted to run, and all the time counted.
cpustat() { awk '$1 == "cpu" { print $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }
# steal_pct A B: the share of the machine's CPU time stolen between two cpustat outputs, in
# percent.
steal_pct() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); t = y[2] - x[2]; printf "%.1f", (t > 0 ? 100 * (y[1] - x[1]) / t : 0) }'; }
