#!/usr/bin/env bash
# `make run`: the embedded default. Exports the default dataset, starts the Airflow UI
# (standalone, SQLite) and the model server, triggers the `retrain` DAG once on the local
# backend (through Airflow, so the UI shows the run and its logs), then serves until Ctrl-C.
# Ports: AIRFLOW_PORT (8080), SERVING_PORT (3000).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/airflow-env.sh
mkdir -p "$AIRFLOW_HOME" data/logs
RETRAIN_CONF="${RETRAIN_CONF:-{\}}"

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
cleanup() {
  trap - EXIT INT TERM
  echo; echo "==> stopping"
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
trap cleanup EXIT INT TERM

# The server follows the registry's production version (DIGITS_REGISTRY_URI): it fetches the bento that
# `package` registered, verifies its sha256 and imports it into data/bentoml (as the chart's init container
# does), and serves its model.
echo "==> model server on http://127.0.0.1:$SERVING_PORT (log: data/logs/serving.log)"
BENTOML_HOME="$ROOT/data/bentoml" setsid bentoml serve serving.service:DigitsClassifier --host 127.0.0.1 \
  --port "$SERVING_PORT" > data/logs/serving.log 2>&1 &
pids+=($!)

echo "==> airflow standalone on http://127.0.0.1:$AIRFLOW_PORT (log: data/logs/airflow.log)"
setsid airflow standalone > data/logs/airflow.log 2>&1 &
pids+=($!)

for _ in $(seq 180); do
  curl -sf "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null && break
  sleep 1
done
curl -sf "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null || { echo "Airflow not ready" >&2; tail data/logs/airflow.log; exit 1; }

echo "==> first retrain run (conf: $RETRAIN_CONF), through Airflow: the UI shows it and its task logs"
python scripts/first-run.py "http://127.0.0.1:$AIRFLOW_PORT" || echo "    the first run failed: open it in the UI" >&2

for _ in $(seq 60); do curl -sf "http://127.0.0.1:$SERVING_PORT/readyz" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$SERVING_PORT/readyz" >/dev/null || echo "model server not ready (no model in production yet?): data/logs/serving.log" >&2

password=$(python -c "import json,sys; print(json.load(open('$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated')).get('admin',''))" 2>/dev/null || true)
cat <<BANNER

  Airflow UI     http://127.0.0.1:$AIRFLOW_PORT   login: admin / ${password:-see $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}
  Model server   http://127.0.0.1:$SERVING_PORT   (docs: /docs, health: /readyz, metrics: /metrics)

  Try it:
    curl -X POST http://127.0.0.1:$SERVING_PORT/predict -F file=@serving/samples/digit-3.png

  Retrain from the UI: DAG "retrain" → Trigger → edit the form (learning rates, epochs, ...).
  A new model is deployed only if it beats production; /predict then answers with its
  version in the X-Model-Version header. Ctrl-C stops everything.

BANNER
wait
