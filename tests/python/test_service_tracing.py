"""Spans cost CPU on every request: the service records them only when they go somewhere (an
OTLP endpoint or an exporter given to ``create_app``)."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from relay_context.config.settings import Settings
from relay_context.service.app import build_state
from relay_context.service.telemetry import exports_spans


def settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(data_dir=tmp_path, secret_key=SecretStr("s" * 40), **extra)  # type: ignore[arg-type]


def test_without_an_exporter_spans_are_not_recorded(tmp_path: Path) -> None:
    current = settings(tmp_path)
    assert not exports_spans(current)
    state = build_state(current)
    with state.tracer.start_as_current_span("db.get_session") as span:
        assert not span.is_recording()


def test_with_an_exporter_spans_are_recorded_and_exported(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    current = settings(tmp_path)
    assert exports_spans(current, exporter)
    state = build_state(current, exporter)
    with state.tracer.start_as_current_span("db.get_session") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["db.get_session"]
    assert exports_spans(settings(tmp_path, otel_exporter_otlp_endpoint="http://127.0.0.1:4318"))
