#!/usr/bin/env python3
"""Counts the words of {"text": ...}: the event arrives on stdin as
structured CloudEvents JSON, the result goes to stdout, logs to stderr."""
import json
import sys

event = json.load(sys.stdin)
words = event["data"].get("text", "").split()
print(f"counting {len(words)} words of event {event['id']}", file=sys.stderr)
json.dump({"words": len(words), "distinct": len({w.lower() for w in words})}, sys.stdout)
