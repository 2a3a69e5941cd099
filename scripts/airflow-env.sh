# Environment of the embedded default (local backend, SQLite, standalone). Source it.
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export PATH="$ROOT/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/airflow-home}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
export SERVING_PORT="${SERVING_PORT:-3000}"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW_PORT/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
# The store's locations as the DAGs resolve them (their defaults live in plugins/retraining/config.py only)
eval "$(PYTHONPATH="$ROOT/plugins" "$ROOT/.venv/bin/python" -m retraining.config)"
export DIGITS_REGISTRY_URI="$RETRAIN_REGISTRY"
export DIGITS_MODEL="${RETRAIN_MODEL:-}"  # the model the server follows: RETRAIN_MODEL's (empty: the default, digits)
export GIT_COMMIT="${GIT_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || true)}"
