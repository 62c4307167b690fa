"""A local HTTP server in a thread for the URL-input tests (loopback only; port chosen by the OS)."""

import contextlib
import http.server
import threading


@contextlib.contextmanager
def local_http_server(handler):
    """Serve ``handler`` (a BaseHTTPRequestHandler class or factory) on 127.0.0.1; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
