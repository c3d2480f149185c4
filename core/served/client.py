"""A client for OpenAI-compatible servers (vLLM, SGLang, `transformers serve`, hosted APIs).

``Served`` names the endpoint, the model names there (cheapest first, for SGD's difficulty) and the
environment variable that holds the API key: the key itself is read when a request is made and never
stored in a trace, a log or an error message. ``stream_chat`` streams one chat completion and yields
``Chunk``s stamped with the client's clock; every failure (server down, timeout, an HTTP error, a
stream that is not server-sent JSON events, a model the server lacks) is a ``ServedError`` whose text
is one sentence a page can show.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field


class ServedError(ValueError):
    """A served request failed; the text says why in the user's terms."""


@dataclass(frozen=True)
class Served:
    url: str  # the server's base URL (".../v1" is added when missing)
    models: tuple[str, ...]  # model names on the server, cheapest first
    key_env: str = ""  # the environment variable holding the API key ("" = none)
    timeout_s: float = 60.0  # seconds without a byte from the server before a request fails
    structured: bool = True  # ask for a JSON-schema skeleton (falls back to free text if refused)
    extra: dict = field(default_factory=dict)  # request fields every call sends (e.g. a seed)

    def __post_init__(self) -> None:
        api_base(self.url)  # raises ServedError for a URL that is not http(s)
        if not self.models or not all(m.strip() for m in self.models):
            raise ServedError("Name the model to use on the server (its name as the server lists it).")
        if not 0 < self.timeout_s <= 3600:
            raise ServedError(f"The request timeout must be between 0 and 3600 seconds, got {self.timeout_s}.")

    @property
    def model(self) -> str:
        """The main (most capable) model: the last named."""
        return self.models[-1]

    def headers(self) -> dict[str, str]:
        key = os.environ.get(self.key_env, "") if self.key_env else ""
        if self.key_env and not key:
            raise ServedError(f"The environment variable {self.key_env} that should hold the API key is not set.")
        return {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    def describe(self) -> dict:
        """What a trace records of it: the endpoint and model names, never the key."""
        return {"endpoint": api_base(self.url), "served_models": list(self.models), "timing": "client-side"}


def api_base(url: str) -> str:
    """``http(s)://host[:port]/.../v1`` from what a user typed (a trailing /chat/completions or / removed)."""
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", url):
        raise ServedError(f"The endpoint must be an http(s) URL such as http://localhost:8000/v1, got {url!r:.80}.")
    url = re.sub(r"/chat/completions$", "", url)
    return url if url.endswith("/v1") else url + "/v1"


@dataclass
class Chunk:
    text: str
    t: float  # time.perf_counter() when it arrived
    tokens: int = 1  # streamed chunks carry one token each on vLLM, SGLang and transformers serve
    finish: str | None = None
    usage: dict | None = None


def _request(served: Served, path: str, body: dict | None) -> urllib.request.Request:
    data = json.dumps(body).encode() if body is not None else None
    return urllib.request.Request(
        api_base(served.url) + path, data, served.headers(), method="POST" if body is not None else "GET"
    )


def _open(served: Served, request: urllib.request.Request, what: str):
    """The response, or a ServedError naming what failed: refused, timed out, or the server's own error."""
    try:
        return urllib.request.urlopen(request, timeout=served.timeout_s)
    except urllib.error.HTTPError as exc:
        raise ServedError(f"The server answered {what} with HTTP {exc.code}: {_server_message(exc)}") from None
    except TimeoutError:
        raise ServedError(f"The server did not answer {what} within {served.timeout_s:g} s.") from None
    except (urllib.error.URLError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise ServedError(f"The server did not answer {what} within {served.timeout_s:g} s.") from None
        raise ServedError(f"The server at {api_base(served.url)} could not be reached ({reason}).") from None


def _server_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode("utf-8", "replace")
    except OSError:
        return exc.reason or "no message"
    try:
        error = json.loads(body)
        message = error.get("error", error.get("detail", error))
        message = message.get("message", message) if isinstance(message, dict) else message
    except (json.JSONDecodeError, AttributeError):
        message = body
    return (str(message).strip() or str(exc.reason))[:300]


def list_models(served: Served) -> list[str]:
    """The model names the server lists (GET /models); [] when it lists none."""
    with _open(served, _request(served, "/models", None), "the model list") as response:
        try:
            return [m["id"] for m in json.loads(response.read())["data"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ServedError("The server's /models answer is not an OpenAI model list.") from None


def check_models(served: Served) -> None:
    """Every named model is one the server lists (a server that lists none is taken at its word)."""
    listed = list_models(served)
    missing = [m for m in served.models if listed and m not in listed]
    if missing:
        raise ServedError(
            f"The server does not serve {', '.join(repr(m) for m in missing)}; it lists {', '.join(listed)[:200]}."
        )


def stream_chat(
    served: Served,
    prompt: str,
    *,
    model: str | None = None,
    max_tokens: int,
    temperature: float = 0.0,
    response_format: dict | None = None,
    stop: list[str] | None = None,
) -> Iterator[Chunk]:
    """Stream one chat completion of ``prompt`` (one user message) and yield its text chunks as they arrive;
    ``stop``: at most 4 strings that end the answer on the server."""
    body = {
        "model": model or served.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
        **served.extra,
        **({"response_format": response_format} if response_format else {}),
        **({"stop": stop[:4]} if stop else {}),
    }
    with _open(served, _request(served, "/chat/completions", body), f"a request for {body['model']!r}") as response:
        for line in _lines(served, response):
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            chunk = _chunk(data)
            if chunk is not None:
                yield chunk


def _lines(served: Served, response) -> Iterator[str]:
    try:
        for raw in response:
            yield raw.decode("utf-8", "replace").strip()
    except TimeoutError:
        raise ServedError(f"The server stopped streaming for more than {served.timeout_s:g} s.") from None
    except (ConnectionError, OSError) as exc:
        raise ServedError(f"The server closed the stream early ({exc}).") from None


def _chunk(data: str) -> Chunk | None:
    now = time.perf_counter()
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise ServedError(f"The server's stream is not JSON events: {data[:80]!r}.") from None
    if not isinstance(event, dict):
        raise ServedError(f"The server's stream holds {type(event).__name__}s, not chat completion chunks.")
    if "error" in event:
        error = event["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ServedError(f"The server reported an error mid-stream: {message}")
    choices = event.get("choices") or []
    usage = event.get("usage")
    if not choices:
        return Chunk("", now, 0, None, usage) if usage else None
    try:
        delta = choices[0].get("delta") or {}
        text = delta.get("content") or ""
        finish = choices[0].get("finish_reason")
    except AttributeError:
        raise ServedError("The server's stream chunks are not OpenAI chat completion chunks.") from None
    return Chunk(text, now, 1 if text else 0, finish, usage)


def complete(
    served: Served, prompt: str, *, model: str | None = None, max_tokens: int, temperature: float = 0.0
) -> str:
    """The text of one chat completion, asked for without streaming (a judge's short reply)."""
    body = {
        "model": model or served.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": temperature,
        **served.extra,
    }
    with _open(served, _request(served, "/chat/completions", body), f"a request for {body['model']!r}") as response:
        try:
            return json.loads(response.read())["choices"][0]["message"]["content"] or ""
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise ServedError("The server did not answer like an OpenAI chat completion.") from None
