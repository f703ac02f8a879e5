#!/usr/bin/env bash
# Side by side: bitacora-server and the reference automerge-repo sync server
# (@automerge/automerge-repo-sync-server, pinned by tests/bench-js/package-lock.json) under the
# same workload from the load generator `carga` (tests/src/bin/carga.rs), on this machine.
#
#   scripts/bench-compare.sh            # builds, runs, prints the table, updates docs/performance.md
#   ESCRIBIR=0 scripts/bench-compare.sh # same, without touching docs/performance.md
#
# Knobs (environment): ESCUELAS (70) DISPOSITIVOS (3) EDICIONES (50) BASE (300) MAESTROS (3)
# EDICIONES_VIVO (60) INTERVALO_MS (200) PASOS (5000) KBPS (256) RTT_MS (600) SEMILLA (1)
# SALIDA (a new temporary directory: the JSON reports and the servers' logs) JOBS (2).
#
# Each scenario runs against a fresh server: bitacora-server on a fresh SQLite data directory
# (its schools, docentes, tokens and actors registered by `carga preparar`: the generator then
# presents a bearer token per device), the reference on a fresh DATA_DIR (the generator runs
# with --generico: random document ids, no token). Same schools, same devices, same changes:
# the workload is drawn from SEMILLA. Needs cargo, node and npm; nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
RAIZ=$PWD

ESCUELAS=${ESCUELAS:-70}
DISPOSITIVOS=${DISPOSITIVOS:-3}
EDICIONES=${EDICIONES:-50}
BASE=${BASE:-300}
MAESTROS=${MAESTROS:-3}
EDICIONES_VIVO=${EDICIONES_VIVO:-60}
INTERVALO_MS=${INTERVALO_MS:-200}
PASOS=${PASOS:-5000}
KBPS=${KBPS:-256}
RTT_MS=${RTT_MS:-600}
SEMILLA=${SEMILLA:-1}
JOBS=${JOBS:-2}
ESCRIBIR=${ESCRIBIR:-1}
SALIDA=${SALIDA:-$(mktemp -d -t bench-compare.XXXXXX)}
mkdir -p "$SALIDA/bitacora" "$SALIDA/referencia"

echo "== build (release) and npm ci" >&2
cargo build --release -j"$JOBS" -p bitacora-server --bin bitacora-server -p bitacora-tests --bin carga >&2
TARGET=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
SERVIDOR=$TARGET/release/bitacora-server
CARGA=$TARGET/release/carga
(cd tests/bench-js && npm ci --no-audit --no-fund --loglevel=error >&2)
# The real node binary (PATH may hold a wrapper script): its pid is the one to sample.
NODE=$(node -e 'console.log(process.execPath)')
REFERENCIA=$RAIZ/tests/bench-js/node_modules/@automerge/automerge-repo-sync-server/src/index.js

PID=""
parar() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=""
    fi
}
trap parar EXIT

# Waits until file $1 has a line matching $2; prints it.
esperar_linea() {
    for _ in $(seq 1 300); do
        if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "the server did not start; its output:" >&2
    cat "$1" >&2
    return 1
}

# Starts bitacora-server on a fresh, prepared data directory; sets PID and URL.
bitacora() {
    local dir=$SALIDA/bitacora/$1
    "$CARGA" preparar --datos "$dir" --escuelas "$ESCUELAS" --dispositivos "$DISPOSITIVOS" \
        --maestros "$MAESTROS" --semilla "$SEMILLA" >&2
    # Only this run's configuration: no stray BITACORA_* from the caller.
    env $(env | sed -n 's/^\(BITACORA_[^=]*\)=.*/-u \1/p') BITACORA_LOG=warn \
        "$SERVIDOR" --data-dir "$dir" serve --listen 127.0.0.1:0 \
        >"$dir/servidor.out" 2>"$dir/servidor.err" &
    PID=$!
    URL=$(esperar_linea "$dir/servidor.out" '^escuchando en ' | sed 's/^escuchando en //')
    ARGS=(--url "$URL" --preparado "$dir/carga.json" --nombre bitacora-server --pid "$PID")
}

# Starts the reference server on a free port and a fresh DATA_DIR; sets PID and URL.
referencia() {
    local dir=$SALIDA/referencia/$1
    mkdir -p "$dir"
    local puerto
    puerto=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
    (cd "$dir" && exec env DATA_DIR="$dir/data" PORT="$puerto" "$NODE" "$REFERENCIA" >"$dir/servidor.out" 2>&1) &
    PID=$!
    esperar_linea "$dir/servidor.out" '^Listening on port' >/dev/null
    URL=http://127.0.0.1:$puerto
    ARGS=(--url "$URL" --generico --semilla "$SEMILLA" --nombre automerge-repo-sync-server --pid "$PID")
}

escenario() { # $1: the report's name, $2: flota|vivo|satelite, then its own arguments
    local e=$1 orden=$2
    shift 2
    for servidor in bitacora referencia; do
        echo "== $e: $servidor" >&2
        "$servidor" "$e"
        local err=$SALIDA/$servidor/$e.carga.err
        if ! "$CARGA" "$orden" "${ARGS[@]}" --json "$SALIDA/$servidor/$e.json" "$@" 2>"$err"; then
            # A server that cannot complete a scenario is a result too: recorded, not fatal.
            local msg
            msg=$(grep -m1 '^Error: ' "$err" | sed 's/^Error: //')
            echo "$servidor did not complete $e: $msg" >&2
            node -e 'console.log(JSON.stringify({fallo: process.argv[1]}))' "${msg:-failed}" \
                >"$SALIDA/$servidor/$e.json"
        fi
        parar
    done
}

CARGA_INICIO=$(cut -d' ' -f1-3 /proc/loadavg)
escenario flota flota --escuelas "$ESCUELAS" --dispositivos "$DISPOSITIVOS" --ediciones "$EDICIONES" --base "$BASE"
escenario vivo vivo --maestros "$MAESTROS" --ediciones "$EDICIONES_VIVO" --intervalo-ms "$INTERVALO_MS"
# The same session on the document of a school after a full cycle.
escenario vivo-ciclo vivo --maestros "$MAESTROS" --ediciones "$EDICIONES_VIVO" --intervalo-ms "$INTERVALO_MS" --base "$PASOS"
escenario satelite satelite --kbps "$KBPS" --rtt-ms "$RTT_MS" --pasos "$PASOS"
CARGA_FIN=$(cut -d' ' -f1-3 /proc/loadavg)

TABLA=$SALIDA/tabla.md
{
    echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) at commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') by \`scripts/bench-compare.sh\`"
    echo "(ESCUELAS=$ESCUELAS DISPOSITIVOS=$DISPOSITIVOS EDICIONES=$EDICIONES BASE=$BASE MAESTROS=$MAESTROS EDICIONES_VIVO=$EDICIONES_VIVO INTERVALO_MS=$INTERVALO_MS PASOS=$PASOS KBPS=$KBPS RTT_MS=$RTT_MS SEMILLA=$SEMILLA)."
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r); load average $CARGA_INICIO at the start, $CARGA_FIN at the end."
    echo
    "$CARGA" tabla --bitacora "$SALIDA/bitacora" --referencia "$SALIDA/referencia"
} >"$TABLA"
cat "$TABLA"
echo "reports and server logs: $SALIDA" >&2

if [ "$ESCRIBIR" = 1 ]; then
    DOC=docs/performance.md
    awk -v f="$TABLA" '
        /<!-- bench-compare: begin -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
        /<!-- bench-compare: end -->/ { skip = 0 }
        !skip { print }
    ' "$DOC" >"$DOC.tmp" && mv "$DOC.tmp" "$DOC"
    echo "updated $DOC" >&2
fi
