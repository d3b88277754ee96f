# Shared by scripts/test and scripts/bench: install and start the real services the tests and
# benchmarks need, on free ports, in a throwaway folder, and stop them on exit.
# Source it; it defines functions and sets nothing running by itself.

WORK_DIR=""
PG_DATA=""
PG_BIN=""
# Set by start_postgres: the admin URL of the throwaway cluster.
PG_URL=""
# Processes started by the scripts (a makrcave server, ...), stopped on exit.
SERVICE_PIDS=()

log() { printf '\033[1m[makrcave]\033[0m %s\n' "$*" >&2; }

# Background steps, by name: started by in_background, awaited by wait_step.
declare -A STEP_PIDS=()
declare -A STEP_LOGS=()

# in_background NAME COMMAND ARGS...: runs a step beside the main line, its output in
# $WORK_DIR/NAME.log.
in_background() {
  local name="$1"
  shift
  STEP_LOGS[$name]="$WORK_DIR/$name.log"
  "$@" >"${STEP_LOGS[$name]}" 2>&1 &
  STEP_PIDS[$name]=$!
  SERVICE_PIDS+=("$!")
}

# wait_step NAME...: waits for these background steps, prints each one's output, and fails if
# any failed.
wait_step() {
  local name failed=0
  for name in "$@"; do
    if ! wait "${STEP_PIDS[$name]}"; then
      failed=1
      log "$name failed:"
    fi
    cat "${STEP_LOGS[$name]}" >&2
  done
  return "$failed"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

find_pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return 0; fi
  return 1
}

# Installs what is missing: PostgreSQL, Mosquitto, openssl (the Bambu tests make their
# printer's certificates with it), vsftpd and db_load (the Bambu printer's storage and its
# login), Chromium and chromedriver, and pdftotext (the invoice PDF tests read PDFs back with it).
ensure_services_installed() {
  local want=()
  find_pg_bin >/dev/null || want+=(postgresql)
  [ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || want+=(mosquitto)
  command -v mosquitto_sub >/dev/null 2>&1 || want+=(mosquitto-clients)
  command -v openssl >/dev/null 2>&1 || want+=(openssl)
  [ -x /usr/sbin/vsftpd ] || want+=(vsftpd)
  command -v db_load >/dev/null 2>&1 || want+=(db-util)
  command -v pdftotext >/dev/null 2>&1 || want+=(poppler-utils)
  if [ "${1:-}" != "no-browser" ]; then
    command -v chromium >/dev/null 2>&1 || want+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || want+=(chromium-driver)
  fi
  if [ ${#want[@]} -gt 0 ]; then apt_install "${want[@]}"; fi
  PG_BIN=$(find_pg_bin) || { log "PostgreSQL's initdb not found even after installing"; return 1; }
  MAKRCAVE_TEST_PDFTOTEXT=$(command -v pdftotext) || { log "pdftotext not found even after installing"; return 1; }
  export MAKRCAVE_TEST_PDFTOTEXT
  ensure_bambu_ftp_login
}

# The login of the Bambu tests' printer storage. Each test starts its own vsftpd (as root:
# vsftpd logs users in through PAM), which logs `bblp` in through this PAM service against a
# Berkeley DB of virtual users: one, `bblp`, with the scripted printer's access code
# (ACCESS_CODE in tests/integration/bambu_printer.rs). A virtual user and not a system
# account, so that this well-known password opens that FTP server and nothing else. PAM reads
# its services from /etc/pam.d only, hence files outside the tests' folders, written once.
BAMBU_TEST_ACCESS_CODE=29071953
BAMBU_FTP_PAM=/etc/pam.d/makrcave-test-ftp
BAMBU_FTP_USERS=/etc/makrcave-test/ftp-users
ensure_bambu_ftp_login() {
  local service
  service="auth required pam_userdb.so db=$BAMBU_FTP_USERS
account required pam_permit.so"
  if [ "$(cat "$BAMBU_FTP_PAM" 2>/dev/null)" = "$service" ] && [ -f "$BAMBU_FTP_USERS.db" ]; then return 0; fi
  log "setting up the login of the Bambu tests' FTP server ($BAMBU_FTP_PAM)"
  as_root mkdir -p "$(dirname "$BAMBU_FTP_USERS")"
  as_root rm -f "$BAMBU_FTP_USERS.db"
  printf 'bblp\n%s\n' "$BAMBU_TEST_ACCESS_CODE" | as_root db_load -T -t hash "$BAMBU_FTP_USERS.db"
  as_root chmod 600 "$BAMBU_FTP_USERS.db"
  printf '%s\n' "$service" | as_root tee "$BAMBU_FTP_PAM" >/dev/null
}

make_work_dir() {
  WORK_DIR=$(mktemp -d /tmp/makrcave-services.XXXXXX)
  chmod 755 "$WORK_DIR"
}

# Starts a throwaway PostgreSQL and sets PG_URL to its admin URL. Call it directly, not in
# $(...): stop_services must see PG_DATA to stop the cluster on exit.
start_postgres() {
  local port user run=()
  port=$(free_port)
  PG_DATA="$WORK_DIR/pg"
  mkdir -p "$PG_DATA" "$WORK_DIR/pg-socket"
  user=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root.
    chown postgres "$PG_DATA" "$WORK_DIR/pg-socket"
    run=(runuser -u postgres --)
    user=postgres
  fi
  "${run[@]}" "$PG_BIN/initdb" -D "$PG_DATA/data" -A trust -U "$user" --no-sync >/dev/null
  "${run[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -w -l "$PG_DATA/log" \
    -o "-p $port -k $WORK_DIR/pg-socket -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >/dev/null
  PG_URL="postgres://$user@127.0.0.1:$port/postgres"
}

stop_services() {
  local pid
  for pid in ${SERVICE_PIDS[@]+"${SERVICE_PIDS[@]}"}; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVICE_PIDS=()
  if [ -n "$PG_DATA" ] && [ -d "$PG_DATA/data" ]; then
    if [ "$(id -u)" -eq 0 ]; then
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -m immediate stop >/dev/null 2>&1 || true
    else
      "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -m immediate stop >/dev/null 2>&1 || true
    fi
  fi
  if [ -n "$WORK_DIR" ]; then rm -rf "$WORK_DIR"; fi
}

# The Python virtualenv the tests use (PyJWT to mint tokens as a third party would, aiosmtpd
# to catch emails, schemathesis to check the server against its OpenAPI document, stripe and
# razorpay to sign webhook payloads with the gateways' own code), from
# PyPI, kept in target/ between runs.
SCHEMATHESIS_VERSION=4.32.5
ensure_test_venv() {
  local venv="$PWD/target/test-venv"
  if ! "$venv/bin/python" -c 'import jwt, cryptography, aiosmtpd, stripe, razorpay' >/dev/null 2>&1 \
    || [ "$("$venv/bin/st" --version 2>/dev/null)" != "st, version $SCHEMATHESIS_VERSION" ]; then
    log "creating the test virtualenv (PyJWT, cryptography, aiosmtpd, schemathesis, stripe, razorpay)"
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'PyJWT[crypto]==2.10.1' 'aiosmtpd==1.4.6' \
      "schemathesis==$SCHEMATHESIS_VERSION" 'stripe==13.2.0' 'razorpay==1.4.2'
  fi
  export MAKRCAVE_TEST_PYTHON="$venv/bin/python"
  export MAKRCAVE_TEST_ST="$venv/bin/st"
}

# A real OctoPrint for the OctoPrint adapter's tests (each test starts its own, with the virtual
# printer, on a free port). Its own virtualenv: OctoPrint pins its dependencies, which must not
# meet the test venv's. Made only when missing or of another version.
OCTOPRINT_VERSION=1.11.8
ensure_octoprint_venv() {
  local venv="$PWD/target/octoprint-venv"
  if [ "$("$venv/bin/python" -c 'import octoprint; print(octoprint.__version__)' 2>/dev/null)" != "$OCTOPRINT_VERSION" ]; then
    log "creating the OctoPrint virtualenv (OctoPrint $OCTOPRINT_VERSION)"
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "OctoPrint==$OCTOPRINT_VERSION"
  fi
  export MAKRCAVE_TEST_OCTOPRINT="$venv/bin/octoprint"
}

# Starts a real makrcave (SQLite and the embedded broker, a fresh data folder under WORK_DIR,
# free ports), waits until /healthz answers 200, mints a super_admin token, and runs
# schemathesis against its OpenAPI document: every check, every phase (stateful included),
# within a time budget. Fails on any failure. The server is stopped on exit.
# MAKRCAVE_SCHEMATHESIS_EXTRA adds options, e.g. "--seed N" to replay a failing run.
run_schemathesis() {
  local root="$PWD" bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/makrcave"
  local data="$WORK_DIR/schemathesis" http_port mqtt_port base pid token
  cargo build --quiet --bin makrcave
  mkdir -p "$data"
  http_port=$(free_port)
  mqtt_port=$(free_port)
  base="http://127.0.0.1:$http_port"
  "$bin" serve --data-dir "$data/data" --http "127.0.0.1:$http_port" --mqtt-listen "127.0.0.1:$mqtt_port" \
    --auth-rate-limit 600 --log 'warn,rumqttd=off' >"$data/server.log" 2>&1 &
  pid=$!
  SERVICE_PIDS+=("$pid")
  local deadline=$((SECONDS + 60))
  until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$base/healthz" >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      log "makrcave did not become healthy; its log:"
      cat "$data/server.log" >&2
      return 1
    fi
    sleep 0.2
  done
  token=$("$bin" token --data-dir "$data/data" --sub schemathesis --role super_admin)
  # Run from the work folder: hypothesis keeps its example database in the current folder.
  (
    cd "$data"
    "$MAKRCAVE_TEST_ST" --config-file "$root/scripts/schemathesis.toml" run "$base/api/openapi.json" \
      --checks all --phases examples,coverage,fuzzing,stateful --max-time "${MAKRCAVE_SCHEMATHESIS_SECONDS:-120}" \
      --request-timeout 10 -H "Authorization: Bearer $token" --no-color ${MAKRCAVE_SCHEMATHESIS_EXTRA:-}
  ) || {
    log "schemathesis failed; the server's log is $data/server.log"
    tail -50 "$data/server.log" >&2
    kill "$pid" 2>/dev/null || true
    return 1
  }
  # Stopped here too: run in the background, this is a subshell whose SERVICE_PIDS the exit
  # trap does not see.
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
