"""V8's code cache for jsii's Node process: the same modules, the same behaviour, compiled once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from mlflow_platform import node_code_cache

MODULES = {
    # A shebang line, a relative require, __dirname, require.resolve, a JSON require.
    "main.js": "#!/usr/bin/env node\n"
    "const lib = require('./lib/greet');\n"
    "const data = require('./lib/data.json');\n"
    "const path = require('path');\n"
    "console.log(JSON.stringify({\n"
    "  greeting: lib.greet(data.name),\n"
    "  dirname: path.basename(__dirname),\n"
    "  resolved: path.relative(__dirname, require.resolve('./lib/greet')),\n"
    "  main: require.main === module,\n"
    "}));\n",
    "lib/greet.js": "const { basename } = require('path');\n"
    "exports.greet = (name) => `hello ${name} from ${basename(__filename)}`;\n",
}


def _package(tmp_path: Path) -> Path:
    package = tmp_path / "pkg"
    for name, text in MODULES.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    (package / "lib" / "data.json").write_text('{"name": "mlflow"}')
    return package


def _run(package: Path, cache: Path) -> dict:
    environ = {"PATH": os.environ["PATH"]}
    node_code_cache.enable(environ, directory=cache)
    result = subprocess.run(
        ["node", str(package / "main.js")], env=environ, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def _entries(cache: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in cache.rglob("*") if p.is_file()}


def test_modules_behave_the_same_compiled_from_source_and_from_the_cache(tmp_path):
    package, cache = _package(tmp_path), tmp_path / "cache"
    expected = {
        "greeting": "hello mlflow from greet.js",
        "dirname": "pkg",
        "resolved": "lib/greet.js",
        "main": True,
    }

    assert _run(package, cache) == expected
    [folder] = [p for p in cache.iterdir() if p.is_dir()]
    assert folder.stat().st_mode & 0o077 == 0, "only the user may write compiled code"
    written = _entries(cache)
    # One entry per JavaScript module, named by its content: the JSON file is not compiled.
    assert set(written) == {hashlib.sha256(t.encode()).hexdigest() for t in MODULES.values()}

    assert _run(package, cache) == expected
    assert _entries(cache) == written, "entries V8 accepted are not written again"


def test_an_unusable_entry_is_replaced_and_changes_nothing(tmp_path):
    package, cache = _package(tmp_path), tmp_path / "cache"
    expected = _run(package, cache)
    entry = next(p for p in cache.rglob("*") if p.is_file())
    entry.write_bytes(b"not V8's code cache")

    assert _run(package, cache) == expected
    assert entry.read_bytes() != b"not V8's code cache"


def test_an_empty_directory_setting_turns_the_cache_off(tmp_path):
    package = _package(tmp_path)
    environ = {"PATH": os.environ["PATH"], node_code_cache.VARIABLE: ""}
    node_code_cache.enable(environ, directory=tmp_path / "cache")
    subprocess.run(["node", str(package / "main.js")], env=environ, check=True, capture_output=True)
    assert not (tmp_path / "cache").exists()


def test_enable_keeps_node_options_and_adds_the_hook_once():
    environ = {"NODE_OPTIONS": "--max-http-header-size=16384"}
    node_code_cache.enable(environ, directory=Path("/somewhere"))
    node_code_cache.enable(environ, directory=Path("/elsewhere"))
    assert environ["NODE_OPTIONS"] == (
        f'--max-http-header-size=16384 --require "{node_code_cache.HOOK}"'
    )
    assert environ[node_code_cache.VARIABLE] == "/somewhere"
