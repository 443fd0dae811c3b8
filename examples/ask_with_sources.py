"""Ask questions about your own files and print answers with their sources.

    python examples/ask_with_sources.py                 # the bundled sample documents
    python examples/ask_with_sources.py ~/notes "What did we decide about the budget?"

Everything runs offline with the packaged models. To use another model, pass e.g.
`llm_backend="openai", llm_base_url="http://127.0.0.1:11434/v1", llm_model="qwen2.5"` to
`RAG.open` (the key, if any, is read from $OPENAI_API_KEY), or `llm=` any llama-index LLM.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from rag import RAG

SAMPLE = Path(__file__).resolve().parents[1] / "rag" / "sample"


def main() -> None:
    docs = Path(sys.argv[1]).expanduser() if len(sys.argv) > 1 else SAMPLE
    questions = sys.argv[2:] or ["How long should green tea steep?",
                                 "What is the boiling point of mercury?"]
    index_dir = Path(tempfile.gettempdir()) / "rag_example_index"

    with RAG.open(index_dir) as rag:
        # Re-running is cheap: unchanged files are skipped.
        for result in rag.ingest([docs]):
            if result.status == "failed":
                print(f"skipped {result.path}: {result.error}")

        for question in questions:
            print(f"\nQ: {question}\nA: ", end="")
            stream = rag.stream(question)  # tokens as the model writes them
            for delta in stream:
                print(delta, end="", flush=True)
            answer = stream.answer  # final: citations resolved, support checked
            print()
            if answer.declined:
                print("   (the documents do not contain the answer)")
            for c in answer.citations:  # every [n] in the text is one of these
                print(f"   [{c.n}] {c.label()}: {' '.join(c.text.split())[:100]}...")

        # A conversation: the follow-up is rewritten into a standalone query first.
        messages = [{"role": "user", "content": "Which teas does the guide cover?"}]
        first = rag.chat(messages)
        messages += [{"role": "assistant", "content": first.text},
                     {"role": "user", "content": "How hot should the water be for the second one?"}]
        follow_up = rag.chat(messages)
        print(f"\nchat follow-up searched as: {follow_up.query!r}\nA: {follow_up.text}")


if __name__ == "__main__":
    main()
