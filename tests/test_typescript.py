"""The browser client's TypeScript declarations type-check, and the built client is fresh.

The client is the TypeScript package in clients/js (`@oddstream/client`); its build
(gateway/static/oddstream.js, contract.js and their .d.ts) is committed so the gateway runs
without Node. `tsc` compiles tests/typescript/usage.ts, an example program written against the
built declarations with `@ts-expect-error` lines for misuse they must reject, and a
deliberately wrong program that must not compile (so a broken setup cannot pass by checking
nothing). A fresh build must equal the committed files.

tsc is the package's locked compiler, clients/js/node_modules/.bin/tsc (`npm ci` in
clients/js), else $ODDSTREAM_TSC. It is required: without it these tests fail rather than
skip, so CI cannot go green without checking the declarations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "clients" / "js"
STATIC = REPO / "gateway" / "static"
TSCONFIG = REPO / "tests" / "typescript" / "tsconfig.json"
DECLARATIONS = STATIC / "oddstream.d.ts"
LOCAL_TSC = PACKAGE / "node_modules" / ".bin" / "tsc"
INSTALL = "cd clients/js && npm ci"
TSC_TIMEOUT = 120


def find_tsc() -> str:
    """The TypeScript compiler to use; fails the test when there is none."""
    if LOCAL_TSC.is_file():
        return str(LOCAL_TSC)
    configured = os.environ.get("ODDSTREAM_TSC")
    if configured:
        found = shutil.which(configured)
        if found is None:
            pytest.fail(f"ODDSTREAM_TSC={configured!r} is not an executable. Install: {INSTALL}")
        return found
    pytest.fail(
        "The TypeScript compiler is needed to check the browser client's declarations and was "
        f"not found ({LOCAL_TSC}, $ODDSTREAM_TSC). Install it: {INSTALL}"
    )


def run_tsc(tsconfig: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_tsc(), "-p", str(tsconfig), "--pretty", "false", *args],
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


def test_committed_build_matches_the_typescript_source(tmp_path: Path) -> None:
    """gateway/static holds what `npm run build` makes of clients/js/src, nothing older."""
    result = run_tsc(PACKAGE / "tsconfig.json", PACKAGE, "--outDir", str(tmp_path))
    assert result.returncode == 0, output_of(result)
    built = sorted(path.name for path in tmp_path.iterdir())
    # oddstream.js, the entry, and the modules it imports (one concept each), + contract.js
    modules = (
        "backoff config contract errors events filters manager oddstream state subscription types"
    )
    assert built == sorted(f"{m}{ext}" for m in modules.split() for ext in (".d.ts", ".js"))
    stale = [
        name
        for name in built
        if not (STATIC / name).is_file()
        or (STATIC / name).read_bytes() != (tmp_path / name).read_bytes()
    ]
    assert not stale, f"gateway/static is stale: {stale}; run `npm run build` in clients/js"


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
