"""A command app: any server that listens on $PORT (Globe's contract). Standard library only."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"hello": "from a command app", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path}", flush=True)


if __name__ == "__main__":
    port = int(os.environ["PORT"])
    print(f"listening on port {port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Hello).serve_forever()
