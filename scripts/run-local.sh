#!/usr/bin/env bash
# `make run`: the embedded default. Exports the default dataset, starts the model server and the
# Airflow UI (standalone, SQLite), unpauses `retrain` and, only when the registry has no production
# model (or RETRAIN=1, or RETRAIN_CONF is given), triggers it once through Airflow (so the UI shows the
# run and its logs); then serves until Ctrl-C or SIGTERM, which stop everything and exit 0.
# Ports: AIRFLOW_PORT (8080), SERVING_PORT (3000). Airflow's worker slots: AIRFLOW__CORE__PARALLELISM
# (default: the CPU count + 2, at least 4; the LocalExecutor forks that many workers at start and keeps them).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
# What the user set for this run, repeated in the banner's lines for another shell.
user_settings=$(compgen -e | grep -E '^(AIRFLOW_HOME|AIRFLOW_PORT|SERVING_PORT|RETRAIN_[A-Z_]+|AWS_ENDPOINT_URL_S3)$' || true)
source scripts/airflow-env.sh
mkdir -p "$AIRFLOW_HOME" data/logs
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-$(( $(nproc) + 2 > 4 ? $(nproc) + 2 : 4 ))}"

for port in "$AIRFLOW_PORT" "$SERVING_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; set AIRFLOW_PORT / SERVING_PORT" >&2; exit 1
  fi
done

if ! python -c "from retrain_steps import artifacts, datasets; import sys; u = '$RETRAIN_DATASET_URI'; sys.exit(not (datasets.is_folder(u) or artifacts.exists(u)))"; then
  echo "==> exporting the embedded digits dataset to $RETRAIN_DATASET_URI"
  python -m retrain_steps export-default --output "$RETRAIN_DATASET_URI"
fi

echo "==> airflow db migrate"
airflow db migrate > data/logs/db-migrate.log 2>&1
airflow dags reserialize >> data/logs/db-migrate.log 2>&1

pids=()
stop_servers() {
  # The servers run in their own sessions (setsid), so Ctrl-C reaches only this script: stop each
  # process group with TERM, and kill whatever is left of it after 20 s.
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 20); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
# While the servers stop, a further INT/TERM is ignored: GNU make forwards the TERM it gets to this
# script, so a `kill -- -PGID` arrives twice, and stop_servers has its own 20 s deadline.
on_exit() { status=$?; trap - EXIT; trap '' INT TERM; stop_servers; exit "$status"; }
# A requested stop (Ctrl-C, SIGTERM) is a clean end: exit 0, so `make` reports no error.
on_stop() { trap - EXIT; trap '' INT TERM; echo; echo "==> stopping"; stop_servers; echo "==> stopped"; exit 0; }
trap on_exit EXIT
trap on_stop INT TERM

# The server follows the production version of the registry's model RETRAIN_MODEL (DIGITS_REGISTRY_URI,
# DIGITS_MODEL): it fetches the bento that
# `package` registered, verifies its sha256 and imports it into data/bentoml (as the chart's init container
# does), and serves its model.
echo "==> model server on http://127.0.0.1:$SERVING_PORT (log: data/logs/serving.log)"
BENTOML_HOME="$ROOT/data/bentoml" setsid bentoml serve serving.service:DigitsClassifier --host 127.0.0.1 \
  --port "$SERVING_PORT" > data/logs/serving.log 2>&1 &
pids+=($!)

echo "==> airflow standalone on http://127.0.0.1:$AIRFLOW_PORT (log: data/logs/airflow.log; $AIRFLOW__CORE__PARALLELISM worker slots)"
setsid airflow standalone > data/logs/airflow.log 2>&1 &
pids+=($!)

for _ in $(seq 180); do
  curl -sf "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null || { echo "Airflow not ready" >&2; tail data/logs/airflow.log; exit 1; }

# Unpauses `retrain`; retrains only when nothing is in production or when asked (RETRAIN=1, RETRAIN_CONF).
python scripts/first-run.py "http://127.0.0.1:$AIRFLOW_PORT" || echo "    the first run failed: open it in the UI" >&2

for _ in $(seq 60); do curl -sf "http://127.0.0.1:$SERVING_PORT/readyz" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$SERVING_PORT/readyz" >/dev/null || echo "model server not ready (no model in production yet?): data/logs/serving.log" >&2

password=$(python -c "import json,sys; print(json.load(open('$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated')).get('admin',''))" 2>/dev/null || true)
exports="AIRFLOW_HOME=$(printf '%q' "$AIRFLOW_HOME") AIRFLOW_PORT=$AIRFLOW_PORT SERVING_PORT=$SERVING_PORT"
for name in $user_settings; do
  case "$name" in AIRFLOW_HOME|AIRFLOW_PORT|SERVING_PORT|RETRAIN_CONF) ;; *) exports+=" $name=$(printf '%q' "${!name}")" ;; esac
done
cat <<BANNER

  Airflow UI     http://127.0.0.1:$AIRFLOW_PORT   login: admin / ${password:-see $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}
  Model server   http://127.0.0.1:$SERVING_PORT   (docs: /docs, health: /readyz, metrics: /metrics)

  Try it:
    curl -X POST http://127.0.0.1:$SERVING_PORT/predict -F file=@serving/samples/digit-3.png

  In another shell (the airflow CLI, scripts/models, the README's examples), paste:
    cd $(printf '%q' "$ROOT")
    export $exports
    source scripts/airflow-env.sh

  Retrain from the UI: DAG "retrain" → Trigger → edit the form (learning rates, epochs, ...).
  A new model is deployed only if it beats production; /predict then answers with its
  version in the X-Model-Version header. Ctrl-C stops everything.

BANNER
wait  # a stop runs on_stop, which exits 0; wait returns by itself only when both servers ended
echo "the servers stopped by themselves: see data/logs/serving.log and data/logs/airflow.log" >&2
exit 1
