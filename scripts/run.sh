#!/usr/bin/env bash
# `make run`: migrate, seed the demo world, then run the web server, a Celery worker
# and Celery beat together. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
CELERY=.venv/bin/celery
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
# A local demo runs with DEBUG on unless the caller says otherwise.
export DEBUG=${DEBUG:-1}
export ALLOWED_HOSTS=${ALLOWED_HOSTS:-127.0.0.1,localhost}

$PY manage.py migrate --noinput
$PY manage.py seed_demo

pids=()
stop() {
  trap - INT TERM EXIT
  if ((${#pids[@]})); then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  echo "Arbiter stopped."
}
trap stop INT TERM EXIT

$CELERY -A config worker --loglevel=INFO --concurrency=2 &
pids+=($!)
$CELERY -A config beat --loglevel=INFO &
pids+=($!)
$PY manage.py runserver --noreload "$HOST:$PORT" &
pids+=($!)

cat <<BANNER

  Arbiter is running at http://$HOST:$PORT/
  Sign in as any of these (password: ${DEMO_PASSWORD:-arbiter-demo}):
    admin    - admin: settings, thresholds, queues, Django admin
    manager  - manager: SLA dashboard and flow metrics
    alice    - reviewer
    bob      - reviewer and checker (four-eyes)
    carol    - reviewer and checker (four-eyes)
    auditor  - auditor: reads everything, changes nothing
  Press Ctrl-C to stop the web server, the worker and beat.

BANNER

# Stop everything as soon as any one of the three exits.
wait -n "${pids[@]}"
