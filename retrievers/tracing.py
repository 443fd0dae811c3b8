"""Stage spans for the layers below `rag`: each part takes an OpenTelemetry `Tracer` (the
no-op tracer when none is given) and wraps its stages in `stage(tracer, "bm25")`.

Why here, at the bottom: ingestion and the retrievers time their own stages without knowing
who collects them; `rag.telemetry` gives them a tracer whose processor sums the stages per
operation. A span is a stage when it carries `STAGE_ATTR`.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context

STAGE_ATTR = "rag.stage"  # a span with this attribute is a stage; its value is the stage name
NO_TRACER: trace.Tracer = trace.NoOpTracer()


def stage(tracer: trace.Tracer | None, name: str, context: Context | None = None,
          **attributes: Any):
    """A stage span, under `context` when given (another thread's operation), else under the
    current span: `with stage(tracer, "bm25"): ...`. Extra attributes are set on the span."""
    return (tracer or NO_TRACER).start_as_current_span(
        name, context=context, attributes={STAGE_ATTR: name, **attributes})
