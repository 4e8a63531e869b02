"""Tracing (OpenTelemetry) and structured JSON logs with the request id.

Each app has its own :class:`~opentelemetry.sdk.trace.TracerProvider` (no process-global state,
so tests can build several apps); spans go to an OTLP/HTTP exporter when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, and to any exporter passed to ``create_app``. The span
names the service uses: ``HTTP <method> <route>`` (every request), ``db.<operation>``,
``cache.<operation>``, ``tokens.count`` and ``context.select`` (the context routes).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Tracer

from relay_context._version import __version__
from relay_context.config.settings import Settings
from relay_context.errors import InvalidArgumentError

#: The id of the request being served (``-`` outside a request); read by the log formatter.
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "relay_request_id", default="-"
)

TRACER_NAME = "relay_context.service"


def make_tracer_provider(
    settings: Settings, span_exporter: SpanExporter | None = None
) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": settings.otel_service_name,
                "service.version": __version__,
                "deployment.environment": settings.environment.value,
            }
        )
    )
    if settings.otel_exporter_otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise InvalidArgumentError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
                "pip install 'relay-context[otlp]'"
            ) from exc
        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider


def get_tracer(provider: TracerProvider, *, recording: bool = True) -> Tracer:
    """The service's tracer. ``recording=False`` (no exporter configured): a no-op tracer, since
    a span nobody exports still costs its ids, sampling and attributes on every request."""
    if not recording:
        return trace.NoOpTracer()
    return provider.get_tracer(TRACER_NAME, __version__)


def exports_spans(settings: Settings, span_exporter: SpanExporter | None = None) -> bool:
    """Whether :func:`make_tracer_provider` gives spans anywhere to go."""
    return bool(settings.otel_exporter_otlp_endpoint) or span_exporter is not None


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the record's
    ``extra`` fields."""

    _STANDARD = frozenset(
        logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
        | {"message", "asctime", "taskName", "color_message"}
    )

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


_HANDLER_NAME = "relay-json"


def configure_logging(level: str) -> None:
    """JSON logs on standard error for ``relay_context`` and uvicorn (idempotent). ``relay
    serve`` starts uvicorn without its own logging config, so these are the only handlers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonLogFormatter())
    for name in ("relay_context", "uvicorn"):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False


__all__ = [
    "JsonLogFormatter",
    "configure_logging",
    "exports_spans",
    "get_tracer",
    "make_tracer_provider",
    "request_id_var",
]
