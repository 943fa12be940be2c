#!/usr/bin/env bash
# The README's first command: installs what tandem needs, builds it, and runs its main job
# on the embedded defaults: a SQLite database, the support-triage example process (Banking77,
# 77 intents) trained on its history, and the HTTP server, ready for items.
#
#   TANDEM_PORT   port to listen on (default 8080)
#   TANDEM_DB     database file (default build/demo/tandem.db, started afresh each run)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DTDM_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)"

tandem=build/release/tandem
port=${TANDEM_PORT:-8080}
db=${TANDEM_DB:-build/demo/tandem.db}
mkdir -p "$(dirname "$db")"
rm -f "$db" "$db-wal" "$db-shm"

echo
echo "== applying examples/support-triage/process.yaml"
$tandem process apply examples/support-triage/process.yaml --db "$db"
echo "== training it on 10,003 labelled support messages (examples/support-triage/data/train.csv)"
$tandem train --process support-triage examples/support-triage/data/train.csv --db "$db"
# Tokens for the tour, readable by this user only: an admin; ana, a reviewer of the support
# queue; maria, the process's owner. Every API call needs one (docs/security.md).
dir=$(dirname "$db")
(
    umask 077
    $tandem token create --name admin --role admin --db "$db" >"$dir/admin.token"
    $tandem token create --name ana --role reviewer --scope support --db "$db" >"$dir/ana.token"
    $tandem token create --name maria --role owner --scope support-triage --db "$db" \
        >"$dir/maria.token"
)

cat <<NEXT

== tandem is starting on http://127.0.0.1:$port (Ctrl-C stops it).

  The workspace: open http://127.0.0.1:$port/ in a browser and sign in with a token:
  ana's ($dir/ana.token) to work the support queue, maria's ($dir/maria.token) for the
  owner's dashboard and kill switch. Send the test messages first (below) to fill the queue.

  In another terminal:

  # the tokens made for this demo: an admin, and ana, a reviewer of the support queue
  export TANDEM_TOKEN=\$(cat $dir/admin.token) ANA=\$(cat $dir/ana.token)
  A="Authorization: Bearer \$TANDEM_TOKEN"

  # send a customer message; the AI routes it alone if its error is proven under budget
  curl -s -X POST http://127.0.0.1:$port/v1/processes/support-triage/items -H "\$A" \\
       -H 'Content-Type: application/json' -d '{"text": "I still have not received my card"}'

  # send the 3,080 test messages as a batch, then look at what people have to do
  build/release/tandem submit --process support-triage --url http://127.0.0.1:$port \\
       examples/support-triage/data/test.csv | head
  curl -s -H "\$A" 'http://127.0.0.1:$port/v1/queues/support/tasks?limit=3'

  # claim and answer a task as ana (put its id in place of TASK)
  curl -s -X POST http://127.0.0.1:$port/v1/tasks/TASK/claim -H "Authorization: Bearer \$ANA" \\
       -H 'Content-Type: application/json' -d '{"lease_seconds": 300}'
  curl -s -X POST http://127.0.0.1:$port/v1/tasks/TASK/complete -H "Authorization: Bearer \$ANA" \\
       -H 'Content-Type: application/json' -d '{"action": "accept"}'

  # the process's state, the audit trail, and its verification
  curl -s -H "\$A" http://127.0.0.1:$port/v1/processes/support-triage
  curl -s -H "\$A" 'http://127.0.0.1:$port/v1/audit?limit=5'
  build/release/tandem audit verify --url http://127.0.0.1:$port

docs/api.md describes every route; README.md has a longer tour.

NEXT
exec $tandem serve --db "$db" --listen "127.0.0.1:$port"
