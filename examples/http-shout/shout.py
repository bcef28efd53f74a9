"""shout answers every event POSTed to it with its text in capitals.

fnbox starts this server once and POSTs each event in CloudEvents HTTP
binary mode: the body is the event's data, its attributes are ce-* headers.
A 2xx body is the result; 4xx dead-letters the event, 5xx retries it."""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Shout(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            text = json.loads(body)["text"]
        except (ValueError, KeyError, TypeError):
            self.send_response(422)  # bad input: straight to the dead-letter stream
            self.end_headers()
            return
        result = json.dumps({"text": text.upper() + "!", "id": self.headers["ce-id"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(result)))
        self.end_headers()
        self.wfile.write(result)

    def log_message(self, fmt, *args):
        print(fmt % args, file=sys.stderr)


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Shout).serve_forever()
