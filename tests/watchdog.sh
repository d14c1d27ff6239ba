#!/bin/sh
# Runs a test helper process and stops it when the test process that started it
# goes away, even if that process was killed without a chance to clean up.
# Usage: watchdog.sh PARENT_PID PROGRAM [ARGS...]
parent=$1
shift
"$@" &
child=$!
trap 'kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT HUP
while kill -0 "$parent" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
  sleep 0.5
done
kill "$child" 2>/dev/null
wait "$child" 2>/dev/null
