"""The report folder of a run: `report.json` (everything), `index.html` (a static summary), plots.

The HTML is a Jinja2 template with inline CSS and PNG files beside it: it opens from disk in
any browser with no script and no network. It shows whatever metrics the run has, so judged
metrics appear once they are registered, with their reasons in `report.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.latency import STAGES

if TYPE_CHECKING:
    from eval.baseline import Comparison
    from eval.runner import EvalRun

REPORT_JSON = "report.json"
REPORT_HTML = "index.html"
PLOTS = "plots"


def report_data(run: "EvalRun", comparison: "Comparison | None" = None) -> dict[str, Any]:
    """The JSON report: every case with its scores and timings, aggregates, and what it ran on."""
    return {
        "dataset": {"name": run.dataset.name, "path": str(run.dataset.path),
                    "format": run.dataset.format, "hash": run.dataset_hash,
                    "cases_hash": run.cases_hash, "cases": len(run.records)},
        "started_at": run.started_at,
        "wall_s": round(run.wall_s, 3),
        "warmup_s": round(run.warmup_s, 3),
        "options": run.options,
        "settings": run.settings,
        "fingerprints": run.fingerprints,
        "aggregates": {name: agg.to_json() for name, agg in run.aggregates.items()},
        "baseline": comparison.to_json() if comparison else None,
        "cases": [r.to_json() for r in run.records],
    }


def write_report(run: "EvalRun", folder: str | Path,
                 comparison: "Comparison | None" = None) -> Path:
    """Write `report.json`, `index.html` and `plots/*.png` into `folder`; returns the HTML path."""
    from eval.plots import distribution_plot, latency_plot

    folder = Path(folder)
    (folder / PLOTS).mkdir(parents=True, exist_ok=True)
    data = report_data(run, comparison)
    (folder / REPORT_JSON).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    plots = {}
    for name, agg in run.aggregates.items():
        if agg.kind == "latency":
            continue
        values = [r.scores[name].value for r in run.records
                  if name in r.scores and r.scores[name].status == "scored"]
        path = distribution_plot(name, values, agg.not_scored, agg.failed, folder / PLOTS)
        plots[name] = f"{PLOTS}/{path.name}"
    timings = {stage: [r.result.timings[stage] for r in run.records
                       if stage in r.result.timings] for stage in STAGES}
    latency = latency_plot(timings, folder / PLOTS)
    html = _render(data, plots, f"{PLOTS}/{latency.name}" if latency else None)
    path = folder / REPORT_HTML
    path.write_text(html, encoding="utf-8")
    return path


def format_ratios(ours: "EvalRun", stock: "EvalRun") -> str:
    """Ours next to stock llama-index, metric by metric, with ours / stock."""
    lines = [f"ours vs {stock.options.get('pipeline', 'stock')} ({ours.dataset.name}, same run):",
             f"  {'metric':<28} {'ours':>9} {'stock':>9} {'ours/stock':>10}"]
    for name, agg in ours.aggregates.items():
        other = stock.aggregates.get(name)
        if other is None or agg.value is None or other.value is None:
            continue
        digits = 1 if agg.kind == "latency" else 4
        ratio = f"{agg.value / other.value:.2f}x" if other.value else "-"
        lines.append(f"  {name:<28} {agg.value:>9.{digits}f} {other.value:>9.{digits}f} {ratio:>10}")
    return "\n".join(lines)


def format_summary(run: "EvalRun", comparison: "Comparison | None" = None) -> str:
    """The aggregates as a plain-text table for the terminal."""
    deltas = comparison.deltas if comparison else {}
    judge = run.fingerprints.get("judge")
    pipeline = run.options.get("pipeline")
    lines = [f"{pipeline + ': ' if pipeline else ''}{run.dataset.name}: {len(run.records)} cases, "
             f"{'retrieval only' if not run.options.get('answers') else 'with answers'}, "
             f"top_k {run.options.get('top_k')}, {run.wall_s:.1f} s "
             f"(models loaded in {run.warmup_s:.1f} s"
             + (f"; {run.options['answers_from_cache']} answers from the answer cache, not timed"
                if run.options.get("answers_from_cache") else "") + ")",
             f"  {'metric':<28} {'value':>9} {'scored':>7} {'n/s':>5} {'failed':>6}"
             + (f" {'baseline':>9} {'delta':>8}  status" if comparison else "")]
    for name, agg in run.aggregates.items():
        digits = 1 if agg.kind == "latency" else 4
        value = "-" if agg.value is None else f"{agg.value:.{digits}f}"
        line = f"  {name:<28} {value:>9} {agg.scored:>7} {agg.not_scored:>5} {agg.failed:>6}"
        if comparison and name in deltas:
            d = deltas[name]
            base = "-" if d.baseline is None else f"{d.baseline:.{digits}f}"
            change = "-" if d.delta is None else f"{d.delta:+.{digits}f}"
            line += f" {base:>9} {change:>8}  {d.status}"
        lines.append(line)
    why: dict[str, list[str]] = {}
    for name, agg in run.aggregates.items():
        for reason, count in agg.reasons.items():
            why.setdefault(reason, []).append(f"{name} ({count})")
    for reason, names in why.items():
        lines.append(f"  {reason}: {', '.join(names)}")
    if judge:
        state = {True: "reliable", False: "UNRELIABLE", None: "unvalidated"}[judge["reliable"]]
        lines.append(f"  judge: {judge['name']} ({state}: {judge['verdict']})")
    return "\n".join(lines)


def _render(data: dict[str, Any], plots: dict[str, str], latency: str | None) -> str:
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    metric_names = [n for n, a in data["aggregates"].items() if a["kind"] != "latency"]
    return env.from_string(TEMPLATE).render(
        d=data, plots=plots, latency=latency, metric_names=metric_names,
        latency_names=[n for n, a in data["aggregates"].items() if a["kind"] == "latency"],
        deltas=(data["baseline"] or {}).get("metrics", {}))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>rag eval: {{ d.dataset.name }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5rem 0; } td, th { padding: .2rem .6rem; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.regressed { color: #b00020; font-weight: 600; } .improved { color: #1b7f3b; } .muted { color: #888; }
.ok-banner { background: #e8f5e9; padding: .5rem .8rem; } .bad-banner { background: #fdecea; padding: .5rem .8rem; }
.plots { display: flex; flex-wrap: wrap; gap: .5rem; } .plots img { border: 1px solid #eee; }
.cases td { font-size: 12.5px; max-width: 28rem; } dl { display: grid; grid-template-columns: max-content auto; gap: .1rem 1rem; }
</style></head><body>
<h1>rag eval: {{ d.dataset.name }}</h1>
<dl>
<dt>dataset</dt><dd>{{ d.dataset.path }} ({{ d.dataset.format }}, {{ d.dataset.cases }} cases run)</dd>
<dt>dataset hash</dt><dd><code>{{ d.dataset.hash }}</code></dd>
<dt>cases hash</dt><dd><code>{{ d.dataset.cases_hash }}</code></dd>
<dt>run</dt><dd>{{ d.started_at }}, {{ d.wall_s | num(1) }} s wall (models loaded in {{ d.warmup_s | num(1) }} s), top_k {{ d.options.top_k }},
{{ "with answers" if d.options.answers else "retrieval only" }}{% if d.options.limit %}, limit {{ d.options.limit }}{% endif %}{% if d.options.answers_from_cache %}, {{ d.options.answers_from_cache }} answers from the answer cache (not timed){% endif %}</dd>
<dt>embedding</dt><dd>{{ (d.fingerprints.index_settings or {}).embedding_model }}
<code>{{ (d.fingerprints.index_settings or {}).embedding_fingerprint }}</code></dd>
<dt>LLM</dt><dd>{{ d.fingerprints.llm or "not used" }}{% if d.fingerprints.llm_cpu_kernels %}, llama.cpp kernels: {{ d.fingerprints.llm_cpu_kernels }}{% endif %}</dd>
<dt>judge</dt><dd>{% if d.fingerprints.judge %}{{ d.fingerprints.judge.name }} <code>{{ d.fingerprints.judge.fingerprint }}</code>, {{ d.fingerprints.judge.repeats }} repeat(s){% else %}not used{% endif %}</dd>
</dl>
{% if d.fingerprints.judge %}{% if d.fingerprints.judge.reliable == false %}<p class="bad-banner"><b>Unreliable judge:</b> {{ d.fingerprints.judge.verdict }}</p>
{% elif d.fingerprints.judge.reliable is none %}<p class="bad-banner">Unvalidated judge: {{ d.fingerprints.judge.verdict }}</p>{% endif %}{% endif %}
{% if d.baseline %}
{% if d.baseline.ok %}<p class="ok-banner">No metric regressed against {{ d.baseline.baseline }}.</p>
{% else %}<p class="bad-banner">Regressed against {{ d.baseline.baseline }}: <b>{{ d.baseline.regressed | join(", ") }}</b></p>{% endif %}
{% endif %}
<h2>Metrics</h2>
<table><tr><th>metric</th><th>kind</th><th class="n">value</th><th class="n">scored</th><th class="n">not scored</th><th class="n">failed</th>
{% if d.baseline %}<th class="n">baseline</th><th class="n">difference</th><th class="n">tolerance</th><th>status</th>{% endif %}</tr>
{% for name in metric_names %}{% set a = d.aggregates[name] %}{% set x = deltas.get(name) %}
<tr><td>{{ name }}</td><td>{{ a.kind }}</td><td class="n">{{ a.value | num }}</td><td class="n">{{ a.scored }}</td>
<td class="n">{{ a.not_scored }}</td><td class="n">{{ a.failed }}</td>
{% if d.baseline %}<td class="n">{{ x.baseline | num if x else "–" }}</td><td class="n">{{ "%+.4f" % x.delta if x and x.delta is not none else "–" }}</td>
<td class="n">{{ x.tolerance | num(3) if x else "–" }}</td><td class="{{ x.status if x else '' }}">{{ x.status if x else "" }}</td>{% endif %}</tr>
{% endfor %}</table>
{% set reasons = [] %}
{% for name in metric_names %}{% for why, n in d.aggregates[name].reasons.items() %}{% set _ = reasons.append((name, why, n)) %}{% endfor %}{% endfor %}
{% if reasons %}<p class="muted">Cases a metric did not score:</p><ul class="muted">
{% for name, why, n in reasons %}<li>{{ name }}: {{ n }} &times; {{ why }}</li>{% endfor %}</ul>{% endif %}
<h2>Score distributions</h2>
<div class="plots">{% for name in metric_names %}{% if plots.get(name) %}<img src="{{ plots[name] }}" alt="distribution of {{ name }}" width="420">{% endif %}{% endfor %}</div>
<h2>Latency</h2>
{% if latency_names %}<table><tr><th>stage / percentile</th><th class="n">ms</th>{% if d.baseline %}<th class="n">baseline</th><th class="n">difference</th>{% endif %}</tr>
{% for name in latency_names %}{% set x = deltas.get(name) %}<tr><td>{{ name }}</td><td class="n">{{ d.aggregates[name].value | num(1) }}</td>
{% if d.baseline %}<td class="n">{{ x.baseline | num(1) if x else "–" }}</td><td class="n">{{ "%+.1f" % x.delta if x and x.delta is not none else "–" }}</td>{% endif %}</tr>
{% endfor %}</table>{% endif %}
{% if latency %}<img src="{{ latency }}" alt="latency per stage" width="550">{% endif %}
<h2>Cases</h2>
<table class="cases"><tr><th>id</th><th>question</th><th>answer</th>{% for name in metric_names %}<th class="n">{{ name }}</th>{% endfor %}<th class="n">total ms</th></tr>
{% for c in d.cases %}<tr><td>{{ c.id }}{% if not c.answerable %} <span class="muted">(unanswerable)</span>{% endif %}</td><td>{{ c.question }}</td>
<td>{% if c.error %}<span class="regressed">{{ c.error }}</span>{% elif c.answer is none %}<span class="muted">not generated</span>{% else %}{{ c.answer | truncate(300) }}{% if c.declined %} <span class="muted">(declined)</span>{% endif %}{% endif %}</td>
{% for name in metric_names %}{% set s = c.scores.get(name) %}<td class="n" title="{{ s.reason if s and s.reason else '' }}">{% if not s %}{% elif s.status == "scored" %}{{ s.value | num(2) }}{% else %}<span class="muted">{{ "failed" if s.status == "failed" else "–" }}</span>{% endif %}</td>{% endfor %}
<td class="n">{{ (c.timings_ms.total or c.timings_ms.retrieve) | num(0) }}</td></tr>
{% endfor %}</table>
<h2>Settings</h2>
<details><summary>effective settings ({{ d.settings | length }})</summary><table>
{% for k, v in d.settings.items() %}<tr><td>{{ k }}</td><td><code>{{ v }}</code></td></tr>{% endfor %}</table></details>
</body></html>
"""
