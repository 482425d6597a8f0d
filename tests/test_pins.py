"""Dependencies are pinned, and every file pins a package to the same version."""

from __future__ import annotations

import re
from pathlib import Path

from tools.processes import ROOT

# name==version, the version as PEP 440 writes it (an epoch too: grafana-foundation-sdk==1769699520!11.4.0)
PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[a-z,]+\])?==([\w.+!-]+)$")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-r "):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned as name==version"
        found[match[1].lower().replace("_", "-")] = match[3]
    return found


def test_every_requirement_is_pinned_and_agrees_with_the_constraints():
    constraints = pins(ROOT / "constraints.txt")
    files = [ROOT / "requirements-dev.txt", ROOT / "requirements-bench.txt", *sorted(ROOT.glob("*/requirements.txt"))]
    assert len(files) == 5
    for path in files:
        for name, version in pins(path).items():
            assert constraints.get(name) == version, (
                f"{path}: {name}=={version}, constraints.txt: {constraints.get(name)}"
            )
