"""Fixtures for the sandbox tests: documents on disk, a recording handler, shared sandboxes."""

from __future__ import annotations

import os

import pytest

from worker.sandbox import Sandbox, SandboxCallError, SandboxLimits
from worker.sandbox.host import TEST_NO_OS_LAYERS_ENV

DOC_A = "".join(f"Line {i}: the quick brown fox jumps over the lazy dog number {i}.\n" for i in range(2000))
DOC_B = "Second document. " * 500


class Recorder:
    """A handler that records every call and answers predictably."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, name: str, args: dict) -> object:
        self.calls.append((name, args))
        if name == "llm_query":
            if args["prompt"] == "fail please":
                raise SandboxCallError("budget exhausted")
            return f"answer({len(args['prompt'])})"
        if name == "llm_query_batched":
            return [f"answer({len(p)})" for p in args["prompts"]]
        if name == "rlm_query":
            return f"sub-rlm({args['prompt']})"
        raise AssertionError(name)


@pytest.fixture(scope="module", autouse=True, params=["os-layers-on", "os-layers-off"])
def os_layers(request):
    """Every sandbox test runs twice: with Landlock and seccomp, and with both switched off (the
    language layer must hold on its own). test_lockdown.py overrides this: it tests the OS layer."""
    off = request.param == "os-layers-off"
    before = os.environ.get(TEST_NO_OS_LAYERS_ENV)
    if off:
        os.environ[TEST_NO_OS_LAYERS_ENV] = "1"
    else:
        os.environ.pop(TEST_NO_OS_LAYERS_ENV, None)
    yield request.param
    if before is None:
        os.environ.pop(TEST_NO_OS_LAYERS_ENV, None)
    else:
        os.environ[TEST_NO_OS_LAYERS_ENV] = before


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    a, b = d / "a.txt", d / "b.txt"
    a.write_text(DOC_A, encoding="utf-8")
    b.write_text(DOC_B, encoding="utf-8")
    return [("a.txt", str(a)), ("b.txt", str(b))]


@pytest.fixture(scope="module")
def recorder():
    return Recorder()


FAST_LIMITS = SandboxLimits(memory_bytes=1024**3, cell_timeout_s=3.0, output_limit_chars=100_000)


@pytest.fixture(scope="module")
def sandbox(docs, recorder, os_layers):
    """One document (context is a str); shared by a test module; the REPL must survive every test."""
    with Sandbox(docs[:1], recorder, FAST_LIMITS) as sb:
        yield sb


@pytest.fixture(scope="module")
def multi_sandbox(docs, recorder, os_layers):
    with Sandbox(docs, recorder, FAST_LIMITS) as sb:
        yield sb
