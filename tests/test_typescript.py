"""The browser client's TypeScript declarations (gateway/static/oddstream.d.ts) type-check.

`tsc` compiles tests/typescript/usage.ts, an example program written against the declarations
with `@ts-expect-error` lines for misuse they must reject, and a deliberately wrong program
that must not compile (so a broken setup cannot pass by checking nothing).

tsc is found as $ODDSTREAM_TSC, else <repo>/.ci-node/node_modules/.bin/tsc, else `tsc` on
PATH. It is required: without it these tests fail rather than skip, so CI cannot go green
without checking the declarations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TSCONFIG = REPO / "tests" / "typescript" / "tsconfig.json"
DECLARATIONS = REPO / "gateway" / "static" / "oddstream.d.ts"
LOCAL_TSC = REPO / ".ci-node" / "node_modules" / ".bin" / "tsc"
INSTALL = "npm install --prefix .ci-node typescript@5  (from the repository root)"
TSC_TIMEOUT = 120


def find_tsc() -> str:
    """The TypeScript compiler to use; fails the test when there is none."""
    configured = os.environ.get("ODDSTREAM_TSC")
    if configured:
        found = shutil.which(configured)
        if found is None:
            pytest.fail(f"ODDSTREAM_TSC={configured!r} is not an executable. Install: {INSTALL}")
        return found
    if LOCAL_TSC.is_file():
        return str(LOCAL_TSC)
    on_path = shutil.which("tsc")
    if on_path is None:
        pytest.fail(
            "The TypeScript compiler is needed to check gateway/static/oddstream.d.ts and was "
            f"not found ($ODDSTREAM_TSC, {LOCAL_TSC}, PATH). "
            f"Install it: {INSTALL}"
        )
    return on_path


def run_tsc(tsconfig: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tsc(), "-p", str(tsconfig), "--pretty", "false"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TSC_TIMEOUT,
        check=False,
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"tsc exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_declarations_and_example_type_check() -> None:
    result = run_tsc(TSCONFIG, REPO)
    assert result.returncode == 0, output_of(result)


MISUSE = """\
import { WebSocketManager } from "oddstream";

const manager = new WebSocketManager();
await manager.subscribe("odds", { sport: "MLB" });
manager.setConfig({ reconnect_delay: 1000 });
manager.on("mesage", () => {});
"""


def test_misuse_is_rejected(tmp_path: Path) -> None:
    """The check can fail: a program misusing the API does not compile."""
    (tmp_path / "misuse.ts").write_text(MISUSE, encoding="utf-8")
    config = {
        "extends": str(TSCONFIG),
        "compilerOptions": {"paths": {"oddstream": [str(DECLARATIONS)]}},
        "files": ["misuse.ts"],
    }
    tsconfig = tmp_path / "tsconfig.json"
    tsconfig.write_text(json.dumps(config), encoding="utf-8")

    result = run_tsc(tsconfig, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output_of(result)
    expected = [
        # unknown subscription type
        "misuse.ts(4,25): error TS2345",
        '"odds"',
        # unknown setting
        "misuse.ts(5,21): error TS2353",
        "'reconnect_delay' does not exist",
        # unknown event
        "misuse.ts(6,12): error TS2345",
        '"mesage"',
    ]
    missing = [text for text in expected if text not in output]
    assert not missing, f"missing {missing} in {output_of(result)}"
    assert output.count("error TS") == 3, output_of(result)
