"""Fetching audio from an ``http://`` / ``https://`` URL, with limits (the API's URL input).

Only http and https are fetched: another scheme (``file://``, ``ftp://``, ``data:``) is refused,
and so is a redirect to one (urllib alone would follow a redirect to ``ftp://``). Three limits:

* ``timeout``: seconds any single network wait may take (connect, headers, each read);
* ``total_timeout``: seconds for the whole transfer (a server that trickles a byte now and then
  never trips ``timeout``); checked between reads, so the worst case is ``total_timeout + timeout``;
* ``max_bytes``: a larger body is refused (by its Content-Length at once, else while reading).

Errors are :class:`FetchError` naming the URL and what went wrong.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_TOTAL_TIMEOUT_S = 300.0
DEFAULT_MAX_BYTES = 512 * 1024 * 1024  # 512 MiB: about 4.6 hours of 16 kHz 16-bit mono audio
ALLOWED_SCHEMES = ("http", "https")
_CHUNK = 1 << 16


class FetchError(ValueError):
    """A URL that could not be fetched within the limits; the message names it."""


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only (urllib's own check lets ``ftp://`` through)."""

    def http_error_302(self, req, fp, code, msg, headers):
        location = headers.get("location") or headers.get("uri")
        if location:
            newurl = urllib.parse.urljoin(req.full_url, location)
            if urllib.parse.urlparse(newurl).scheme.lower() not in ALLOWED_SCHEMES:
                raise FetchError(f"{req.full_url}: redirected to {newurl}: only http(s) URLs are fetched")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener() -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                    urllib.request.HTTPDefaultErrorHandler(), _HttpOnlyRedirects(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)  # no FileHandler, FTPHandler, DataHandler
    return opener


def fetch(url: str, timeout: float = DEFAULT_TIMEOUT_S, max_bytes: int = DEFAULT_MAX_BYTES,
          total_timeout: float = DEFAULT_TOTAL_TIMEOUT_S) -> bytes:
    """GET ``url`` (http/https only) within the limits above; returns the body."""
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise FetchError(f"{url}: only http(s) URLs are fetched, not {scheme or 'a plain path'}")
    deadline = time.monotonic() + total_timeout
    chunks, size = [], 0
    try:
        with _opener().open(url, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{url}: {int(declared)} bytes, more than the limit of {max_bytes}")
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(f"{url}: not complete after {total_timeout:g} s ({size} bytes so far)")
                chunk = response.read1(_CHUNK)  # what has arrived, not a full chunk (trickling servers)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url}: more than the limit of {max_bytes} bytes")
    except urllib.error.HTTPError as e:
        raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise FetchError(f"{url}: cannot fetch ({e.reason})") from None
    except TimeoutError:
        raise FetchError(f"{url}: no answer within {timeout:g} s") from None
    except OSError as e:  # connection reset, ...
        raise FetchError(f"{url}: cannot fetch ({e})") from None
    except http.client.HTTPException as e:  # a malformed status line or headers
        raise FetchError(f"{url}: bad HTTP response ({type(e).__name__}: {e})") from None
    data = b"".join(chunks)
    if not data:
        raise FetchError(f"{url}: empty response")
    return data

