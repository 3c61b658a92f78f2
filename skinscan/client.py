"""A small HTTP client for the skinscan API (used by ``skinscan predict`` and the Streamlit UI).

Only ``requests`` and the settings module are imported, so the UI image needs no TensorFlow/OpenCV.

    from skinscan.client import Client, ClientError
    client = Client("http://127.0.0.1:3000")
    result = client.predict("photo.jpg")      # a path, or the photo's bytes
"""
from __future__ import annotations

import email.utils
import mimetypes
import os
import time
from pathlib import Path
from typing import Union

import requests

from skinscan import config

Photo = Union[str, Path, bytes, bytearray]


class ClientError(Exception):
    """The API answered with an error (4xx/5xx) or could not be reached.

    ``code`` is machine-readable (the API's error code, or ``api_unreachable``, ``timeout``, ``server_error``,
    ``bad_response``, ``file_not_readable``), ``message`` is meant for a person, ``status`` is the HTTP status
    (None without an answer).
    """

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status else ""
        return f"{self.message} ({where}{self.code})"

    def __repr__(self) -> str:
        return f"ClientError(code={self.code!r}, message={self.message!r}, status={self.status!r})"


def default_url() -> str:
    """``SKINSCAN_API_URL`` as set now (read at call time, not import time), else the configured default."""
    return os.environ.get("SKINSCAN_API_URL") or config.API_URL


def _file_field(photo: Photo, index: int = 0) -> tuple[str, tuple[str, bytes, str]]:
    """One multipart ``image`` field for a path or raw bytes; the bytes are read into memory, never copied."""
    if isinstance(photo, (bytes, bytearray)):
        return "image", (f"photo{index}", bytes(photo), "application/octet-stream")
    if isinstance(photo, (str, Path)):
        path = Path(photo)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ClientError("file_not_readable", f"Cannot read {path}: {err.strerror or err}") from err
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return "image", (path.name, data, mime)
    raise TypeError(f"expected a path or bytes, not {type(photo).__name__}")


class Client:
    """The skinscan HTTP API: predict, predict_batch, diseases, model, figure, ready.

    Every call has a timeout (``timeout`` seconds per attempt). A call that fails to connect, or gets 503 (the
    API is busy or starting), is retried up to ``retries`` times with exponential backoff (``backoff``, doubled
    each time, at most ``max_wait`` seconds; a 503's ``Retry-After`` is honoured up to ``max_wait``). Every
    call is safe to repeat: the API only reads, and stores nothing. Every failure is a ClientError.
    """

    def __init__(self, url: str | None = None, timeout: float = 60, retries: int = 3, backoff: float = 0.5,
                 max_wait: float = 10):
        self.url = (url or default_url()).rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # --- transport --------------------------------------------------------------------------
    def _wait(self, attempt: int, resp: requests.Response | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): Retry-After if given, else backoff."""
        wait = self.backoff * 2 ** attempt
        header = resp.headers.get("Retry-After") if resp is not None else None
        if header:
            if header.strip().isdigit():
                wait = float(header)
            else:
                when = email.utils.parsedate_to_datetime(header) if email.utils.parsedate_tz(header) else None
                if when is not None:
                    wait = when.timestamp() - time.time()
        return min(max(wait, 0.0), self.max_wait)

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        timeout = kwargs.pop("timeout", self.timeout)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self.session.request(method, self.url + path, timeout=timeout, **kwargs)
            except requests.Timeout as err:
                raise ClientError("timeout", f"The skinscan API at {self.url} did not answer within "
                                             f"{timeout:g} s. Try again in a moment.") from err
            except requests.RequestException as err:
                if not last and isinstance(err, requests.ConnectionError):
                    time.sleep(self._wait(attempt))
                    continue
                raise ClientError("api_unreachable", f"The skinscan API at {self.url} is not reachable. Check that "
                                                     "it is running (SKINSCAN_API_URL) and try again.") from err
            if resp.status_code == 503 and not last:
                time.sleep(self._wait(attempt, resp))
                continue
            if resp.status_code >= 400:
                raise self._error(resp)
            return resp
        raise AssertionError("unreachable")

    @staticmethod
    def _error(resp: requests.Response) -> ClientError:
        code, message = None, None
        try:
            err = resp.json().get("error")
            if isinstance(err, dict):
                code, message = err.get("code"), err.get("message")
        except (ValueError, AttributeError):
            pass
        if resp.status_code >= 500:
            code = code or "server_error"
            message = message or "The skinscan API had an internal problem. Try again in a moment."
        return ClientError(code or f"http_{resp.status_code}",
                           message or (resp.text.strip()[:300] or resp.reason or "Request failed."), resp.status_code)

    def _json(self, method: str, path: str, expect: type, **kwargs):
        resp = self._request(method, path, **kwargs)
        try:
            body = resp.json()
        except ValueError as err:
            raise ClientError("bad_response", f"The skinscan API at {self.url} sent an answer that is not JSON.",
                              resp.status_code) from err
        if not isinstance(body, expect):
            raise ClientError("bad_response", f"The skinscan API at {self.url} sent an answer of the wrong kind "
                                              f"({type(body).__name__}, expected {expect.__name__}).", resp.status_code)
        return body

    # --- API --------------------------------------------------------------------------------
    def predict(self, photo: Photo) -> dict:
        """The result for one photo (a path or its bytes); ClientError for a rejected photo or a failed call.

        ``verdict`` is ``disease`` (confident), ``uncertain`` (one of the 8, but not sure which: ``candidates`` names
        the two likeliest, ``disease`` is None), ``unknown`` (none of the 8) or ``not_skin``."""
        return self._json("POST", "/predict", dict, files=[_file_field(photo)])

    def predict_batch(self, photos: list[Photo]) -> list[dict]:
        """One entry per photo, in order: a result, or ``{"error": {"code", "message"}}`` for a rejected photo."""
        return self._json("POST", "/predict_batch", list, files=[_file_field(p, i) for i, p in enumerate(photos)])

    def diseases(self) -> list[dict]:
        """The disease cards of the 8 recognised conditions."""
        return self._json("GET", "/diseases", list)

    def model(self) -> dict:
        """The model card: test metrics, calibration, gate reports and figure paths."""
        return self._json("GET", "/model", dict)

    def figure(self, name: str) -> bytes:
        """PNG bytes of a model-card figure: ``confusion_matrix``, ``reliability.png`` or ``/model/reliability.png``."""
        path = name if name.startswith("/") else "/model/" + name
        if not path.endswith(".png"):
            path += ".png"
        return self._request("GET", path).content

    def ready(self) -> bool:
        """Whether the API answers GET /readyz with 200 (False when it is down or still starting)."""
        try:
            return self.session.get(self.url + "/readyz", timeout=min(self.timeout, 10)).status_code == 200
        except requests.RequestException:
            return False
