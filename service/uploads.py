"""Reading the photos of POST /predict and /predict_batch: the multipart body, streamed, with size limits.

Every upload gets an answer, however it is sent:
* with ``Content-Length`` or ``Transfer-Encoding: chunked``: the body is parsed as it arrives and refused
  (413 ``request_too_large``) as soon as it passes the limit;
* a refused body is read and discarded (up to ``config.MAX_DISCARD_BYTES``) before the answer, so a client
  that writes the whole body before reading the answer (Python's urllib, many scripts) gets the 4xx JSON
  instead of a reset connection.
The photos are kept in memory, never written to disk or logged.
"""
from __future__ import annotations

from typing import AsyncIterator

import starlette.formparsers
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from skinscan import config
from skinscan.decode import InputError

FORM_OVERHEAD_BYTES = 1 << 20  # the form's own framing: boundaries, part headers, other small fields


def max_request_bytes(max_files: int) -> int:
    """Largest multipart body accepted: the photos plus 1 MB for the form's own framing."""
    return config.MAX_UPLOAD_BYTES * max_files + FORM_OVERHEAD_BYTES


# Keep multipart uploads in memory: Starlette would otherwise spool files over 1 MB to a temp file.
starlette.formparsers.MultiPartParser.spool_max_size = max_request_bytes(config.MAX_BATCH_FILES)


def too_large(max_files: int) -> InputError:
    return InputError("request_too_large", f"The request is too large: at most {max_files} photo(s) of "
                                           f"{config.MAX_UPLOAD_BYTES // (1 << 20)} MB each.")


async def limited(chunks: AsyncIterator[bytes], limit: int, max_files: int) -> AsyncIterator[bytes]:
    """``chunks`` until more than ``limit`` bytes have come: then InputError request_too_large."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise too_large(max_files)
        yield chunk


async def discard_rest(request: Request) -> None:
    """Read and drop what is left of the body, up to config.MAX_DISCARD_BYTES (then the connection closes)."""
    dropped = 0
    try:
        async for chunk in request.stream():
            dropped += len(chunk)
            if dropped > config.MAX_DISCARD_BYTES:
                return
    except (RuntimeError, ClientDisconnect):  # already fully read, or the client went away
        return


async def read_images(request: Request, max_files: int) -> list[bytes]:
    """The ``image`` file fields of a multipart request, in order, as bytes; InputError otherwise.

    Whatever the outcome, the request body has been read (up to the discard bound) when this returns, except
    when the client is still waiting for "100 Continue" before it sends the body we refuse from the headers."""
    try:
        check_headers(request, max_files)
    except InputError:
        if request.headers.get("expect", "").lower() != "100-continue":
            await discard_rest(request)
        raise
    try:
        return await parse_images(request, max_files)
    except InputError:
        await discard_rest(request)
        raise


def check_headers(request: Request, max_files: int) -> None:
    """What can be refused before any of the body is read: the media type and a declared length over the limit."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise InputError("unsupported_media_type",
                         "Send the photo as multipart/form-data with a file field named 'image'.")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > max_request_bytes(max_files)):
        raise too_large(max_files)


async def parse_images(request: Request, max_files: int) -> list[bytes]:
    limit = max_request_bytes(max_files)
    parser = MultiPartParser(request.headers, limited(request.stream(), limit, max_files),
                             max_files=max_files + 1, max_fields=max_files + 10)
    try:
        form = await parser.parse()
    except InputError:  # request_too_large, from limited()
        raise
    except (MultiPartException, KeyError, ValueError, UnicodeError) as err:
        if str(err).startswith("Too many files"):
            raise InputError("too_many_files", f"At most {max_files} photos per request.")
        raise InputError("malformed_request", "The multipart body could not be read. Send the photo as a file "
                                              "field named 'image'.")
    except ClientDisconnect:
        raise InputError("malformed_request", "The request body ended early.")
    try:
        fields = form.getlist("image")
        if not fields:
            raise InputError("missing_field", "No file field named 'image' in the form.")
        if any(not isinstance(f, UploadFile) for f in fields):
            raise InputError("not_a_file", "The 'image' field must be a file upload, not text.")
        if len(fields) > max_files:
            raise InputError("too_many_files", f"At most {max_files} photos per request.")
        return [await f.read() for f in fields]
    finally:
        await form.close()
