"""The layers depend one way (ui | eval -> rag -> ingestion -> retrievers, checked by
import-linter in `make test`), and importing a lower layer changes nothing in the process."""

import json
import subprocess
import sys

from rag.process import DEFAULTS as PROCESS_DEFAULTS

PROBE = r"""
import importlib, json, os, pkgutil, sys
before_env, before_switch = dict(os.environ), sys.getswitchinterval()
imported = []
for package in ("retrievers", "ingestion"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
changed = sorted(k for k in set(before_env) | set(os.environ) if before_env.get(k) != os.environ.get(k))
print(json.dumps({"imported": imported, "env_changed": changed,
                  "switch_changed": sys.getswitchinterval() != before_switch,
                  "upper": sorted(m for m in sys.modules if m.split(".")[0] in ("rag", "ui", "eval"))}))
"""


def test_importing_retrievers_and_ingestion_has_no_side_effects():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert "retrievers.index" in report["imported"] and "ingestion.pipeline" in report["imported"]
    assert report["env_changed"] == [], report["env_changed"]
    assert not report["switch_changed"]
    assert report["upper"] == [], "a lower layer imported a higher one"


def test_rag_reaches_the_ui_command_only_through_its_entry_point():
    code = ("import sys, json; from rag.cli import build_parser; build_parser(); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'ui')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["ui", "ui.cli"]  # the plugin module, not gradio's app


def test_importing_rag_changes_nothing_until_it_is_used():
    code = ("import json, os; before = dict(os.environ); import rag, rag.api, rag.cli, rag.config; "
            "print(json.dumps(sorted(k for k in os.environ if before.get(k) != os.environ[k])))")
    env = {k: v for k, v in __import__("os").environ.items() if k not in PROCESS_DEFAULTS}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    assert json.loads(out.stdout) == []
