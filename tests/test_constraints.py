"""The tested versions (constraints.txt) agree with every exact pin of pyproject.toml and the
Makefile: a pin moved in one place only makes `make install` fail to resolve on a fresh machine."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def project_pins() -> list[tuple[str, str, str]]:
    """(where, name, version) for each `==` pin in pyproject.toml and the Makefile's pip lines."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = []
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    for group, requirements in groups.items():
        for text in requirements:
            requirement = Requirement(text)
            for spec in requirement.specifier:
                if spec.operator == "==":
                    found.append((group, canonicalize_name(requirement.name), spec.version))
    for match in re.finditer(r"--no-deps ([A-Za-z0-9_.-]+)==([0-9][^\s]*)", (REPO / "Makefile").read_text()):
        found.append(("Makefile", canonicalize_name(match[1]), match[2]))
    return found


def test_every_exact_pin_matches_the_tested_set():
    tested = constraints()
    assert len(tested) > 100  # the whole resolved set, not a hand-picked few
    pins = project_pins()
    assert any(name == "nltk" for _, name, _ in pins)  # the parse found the pins
    mismatched = [(where, name, version, tested[name]) for where, name, version in pins
                  if name in tested and tested[name] != version]
    assert mismatched == []


def test_the_packages_the_suite_needs_are_in_the_tested_set():
    """Each direct requirement of the default and test installs has a tested version."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    needed = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    missing = [text for text in needed if canonicalize_name(Requirement(text).name) not in constraints()]
    assert missing == []
