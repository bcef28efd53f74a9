#!/bin/sh
# Starts a grandchild that records its pid, then outlives the deadline.
sleep 30 &
echo $! > "$PIDFILE"
wait
