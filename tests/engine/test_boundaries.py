"""The engine is a plain library: no Django, and litellm behind one module."""

import ast
import subprocess
import sys
import urllib.request
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "worker" / "engine"


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_engine_imports_nothing_from_django_or_the_apps():
    for path in ENGINE.glob("*.py"):
        for name in imported_modules(path):
            assert not name.startswith(("django", "apps", "rlmweb", "channels", "celery")), (path.name, name)


def test_only_the_lm_client_imports_litellm():
    users = {p.name for p in ENGINE.glob("*.py") if any(n.startswith("litellm") for n in imported_modules(p))}
    assert users == {"llm.py"}


def test_simulated_provider_runs_as_a_process():
    proc = subprocess.Popen([sys.executable, "-m", "worker.simulated", "--port", "0", "--latency", "0"],
                            cwd=ENGINE.parents[1], stdout=subprocess.PIPE, text=True)
    try:
        base_url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}'
        request = urllib.request.Request(f"{base_url}/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = response.read().decode()
        assert '"ECHO: ping"' in reply and '"prompt_tokens"' in reply
    finally:
        proc.terminate()
        proc.wait(timeout=10)
