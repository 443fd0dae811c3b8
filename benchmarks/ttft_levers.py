"""Time to first token, lever by lever, on the Paul Graham questions (issue 17).

Each configuration answers the same questions through `RAG.stream` (retrieval, prompt, the
packaged GGUF; the stream is closed at its first delta, so only time to first token is spent)
and prints p50/p95 of the time to first token and the mean prompt length. Configurations take
turns question by question, so a busy shared machine slows them alike; the CPU seconds each
spends to its first token (both llama.cpp threads counted) do not depend on that load. Levers:
- `context_budget_tokens` (rag/context_budget.py): the sentences of the chunks that match
  the question instead of the whole chunks;
- the system-prompt prefix kept in llama.cpp's KV cache across questions (`prefix_cache`);
- llama.cpp runtime options: n_batch/n_ubatch, flash attention, a q8_0 KV cache.

Run: `flock /tmp/rag-heavy.lock nice -n 19 .venv/bin/python benchmarks/ttft_levers.py
--index /tmp/pg_index --questions 10`. The index is built from the essays when empty.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.answers_paul_graham import DATA, open_index, percentile  # noqa: E402

# name -> (context_budget_tokens, prefix_cache, llama.cpp options)
CONFIGS: dict[str, tuple[int, bool, dict]] = {
    "whole chunks": (0, False, {}),
    "whole chunks + prefix cache": (0, True, {}),
    "budget 300 + prefix cache": (300, True, {}),
    "budget 250": (250, False, {}),
    "budget 250 + prefix cache": (250, True, {}),
    "budget 250 + prefix cache + flash_attn": (250, True, {"flash_attn": True}),
    "budget 200 + prefix cache": (200, True, {}),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/pg_index"))
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    from rag.llm import LlamaCppChat

    cases = [json.loads(line) for line in (DATA / "normalized.jsonl").read_text().splitlines()
             if line.strip()][: args.questions]
    rag = open_index(args.index)
    rag.retrieve("warm up")
    base = rag.settings
    configs = {k: v for k, v in CONFIGS.items() if not args.only or k in args.only}
    llms = {}
    for name, (_, cache, options) in configs.items():
        llms[name] = LlamaCppChat(base.llm_model, base.llm_context_window, base.llm_threads,
                                  base.llm_temperature, base.llm_seed, prefix_cache=cache,
                                  **options)
        llms[name].count_tokens("warm up")
    figures = {name: {"ttft": [], "cpu": [], "prompt_tokens": []} for name in configs}
    for case in cases:
        for name, (budget, _, _) in configs.items():
            rag.settings = base.replace(context_budget_tokens=budget)
            rag._llm = llms[name]
            started, cpu = time.perf_counter(), time.process_time()
            stream = rag.stream(case["question"])
            if stream.gated:
                stream.close()
                continue
            next(iter(stream), None)
            ttft = time.perf_counter() - started
            cpu = time.process_time() - cpu
            stream.close()
            prompt = "\n".join(m["content"] for m in stream.messages)
            figures[name]["ttft"].append(ttft)
            figures[name]["cpu"].append(cpu)
            figures[name]["prompt_tokens"].append(llms[name].count_tokens(prompt))
            print(json.dumps({"id": case["id"], "config": name, "ttft_s": round(ttft, 2),
                              "cpu_s": round(cpu, 2),
                              "prompt_tokens": figures[name]["prompt_tokens"][-1]}),
                  file=sys.stderr, flush=True)
    print(f"{'configuration':48} {'n':>3} {'TTFT p50':>9} {'p95':>7} {'CPU p50':>8} "
          f"{'prompt tok':>10}")
    table = {}
    for name, f in figures.items():
        row = table[name] = {
            "n": len(f["ttft"]), "ttft_p50_s": percentile(f["ttft"], 0.5),
            "ttft_p95_s": percentile(f["ttft"], 0.95), "cpu_p50_s": percentile(f["cpu"], 0.5),
            "prompt_tokens_mean": statistics.mean(f["prompt_tokens"]) if f["ttft"] else 0}
        print(f"{name:48} {row['n']:>3} {row['ttft_p50_s']:>8.2f}s {row['ttft_p95_s']:>6.2f}s "
              f"{row['cpu_p50_s']:>7.2f}s {row['prompt_tokens_mean']:>10.0f}")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")
    rag.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
