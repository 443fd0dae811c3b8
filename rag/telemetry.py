"""Per-stage timings of every ingest and query, through OpenTelemetry spans.

Why OpenTelemetry rather than a hand-rolled timer: the stages are ordinary spans (`bm25`,
`dense`, `generate`, ...), so a host application that already exports traces can add its own
exporter to `Telemetry.provider` and see the same spans in Jaeger or Phoenix; here one span
processor (`StageCollector`) sums each operation's stage spans and hands the record to the
latency log (`rag.latency_log`) behind `rag stats --latency`.

Each `RAG` has its own `TracerProvider` (never the global one: importing or opening `rag` must
not change the host's tracing). An operation is a root span (`ingest`, `ask`, `retrieve`);
its stages are its descendant spans carrying the `rag.stage` attribute. Stage spans of one
operation never overlap in a query, so they add up to the operation's wall time (what is left
is reported as `other`); an ingest that reads files ahead in a helper thread overlaps them
(its `read_ahead=0` run is sequential). Numbers a stage carries (`rag.tokens.*`,
`rag.items`) are summed per operation too.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from retrievers.tracing import STAGE_ATTR, stage

__all__ = ["Telemetry", "Operation", "OperationRecord", "StageCollector", "stage", "STAGE_ATTR"]
OPERATION_ATTR = "rag.operation"  # a root span with this attribute is an operation
COUNT_PREFIX = "rag.tokens."  # numeric attributes summed per operation (token counts)
FIRST_TOKEN_ATTR = "rag.first_token_ms"  # on the generate span: ms from its start to the first token
FIRST_TOKEN_STAGE = "generate.first_token"  # not additive: part of `generate`


@dataclass
class OperationRecord:
    """One finished operation: its wall time, the time of each stage (ms) and its counts."""

    kind: str
    total_ms: float
    stages: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    at: float = 0.0

    @property
    def additive_ms(self) -> float:
        """The sum of the stages that do not overlap each other (all but first token)."""
        return sum(v for k, v in self.stages.items() if k != FIRST_TOKEN_STAGE)

    def to_json(self) -> dict[str, Any]:
        stages = {k: round(v, 2) for k, v in self.stages.items()}
        stages["other"] = round(max(0.0, self.total_ms - self.additive_ms), 2)
        return {"operation": self.kind, "total_ms": round(self.total_ms, 2), "stages_ms": stages,
                "counts": dict(self.counts)}


class StageCollector(SpanProcessor):
    """Sums the stage spans of each operation (by trace id) and reports it when its root ends.

    Holds one small dict per operation in flight, never the spans themselves, so an ingest of
    thousands of files costs a few numbers."""

    def __init__(self, on_operation: Callable[[OperationRecord], None] | None = None):
        self.on_operation = on_operation
        self._open: dict[int, OperationRecord] = {}
        self._done: dict[int, OperationRecord] = {}
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if span.parent is None:
            with self._lock:
                self._open[span.context.trace_id] = OperationRecord(
                    str(span.attributes.get(OPERATION_ATTR, span.name)), 0.0, at=time.time())

    def on_end(self, span: ReadableSpan) -> None:
        trace_id = span.context.trace_id
        with self._lock:
            record = self._open.get(trace_id)
            if record is None:
                return
            attrs = span.attributes or {}
            elapsed = (span.end_time - span.start_time) / 1e6
            stage = attrs.get(STAGE_ATTR)
            if stage is not None:
                record.stages[stage] = record.stages.get(stage, 0.0) + elapsed
            if FIRST_TOKEN_ATTR in attrs:
                record.stages[FIRST_TOKEN_STAGE] = float(attrs[FIRST_TOKEN_ATTR])
            for key, value in attrs.items():
                if key.startswith(COUNT_PREFIX) and isinstance(value, (int, float)):
                    name = key[len(COUNT_PREFIX):]
                    record.counts[name] = record.counts.get(name, 0) + int(value)
            if span.parent is not None:
                return
            del self._open[trace_id]
            record.total_ms = elapsed
            self._done[trace_id] = record
            while len(self._done) > 64:  # results nobody asked for
                self._done.pop(next(iter(self._done)))
        if self.on_operation is not None:
            self.on_operation(record)

    def take(self, trace_id: int) -> OperationRecord | None:
        """The record of a finished operation (once)."""
        with self._lock:
            return self._done.pop(trace_id, None)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Operation:
    """A root span in flight: stages started under `context` belong to it; `finish()` ends it
    and returns its `OperationRecord`."""

    def __init__(self, telemetry: "Telemetry", kind: str):
        self.telemetry = telemetry
        self.span = telemetry.tracer.start_span(kind, context=otel_context.Context(),
                                                attributes={OPERATION_ATTR: kind})
        self.context = trace.set_span_in_context(self.span, otel_context.Context())
        self.record: OperationRecord | None = None

    @contextmanager
    def active(self) -> Iterator["Operation"]:
        """Make this operation the current span (stages started inside attach to it)."""
        token = otel_context.attach(self.context)
        try:
            yield self
        finally:
            otel_context.detach(token)

    def finish(self) -> OperationRecord | None:
        if self.record is None:
            self.span.end()
            self.record = self.telemetry.collector.take(self.span.context.trace_id)
        return self.record


class Telemetry:
    """A private `TracerProvider` with the stage collector; `tracer` is what the parts take."""

    def __init__(self, on_operation: Callable[[OperationRecord], None] | None = None):
        self.collector = StageCollector(on_operation)
        # shutdown_on_exit=False: no atexit hook in the host process.
        self.provider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(self.collector)
        self.tracer = self.provider.get_tracer("rag")

    def operation(self, kind: str) -> Operation:
        return Operation(self, kind)

