"""A receiver for the HTTP sink: prints each CloudEvent it gets, answers 204.

    python3 receiver.py 9999
"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(self.headers.get("ce-type"), self.headers.get("ce-id"), body.decode(), flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 9999), Receiver).serve_forever()
