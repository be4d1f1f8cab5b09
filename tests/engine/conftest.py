"""Engine test helpers: documents on disk, the simulated provider, run specs that go through it.

Models used through the simulated provider are real litellm model strings with real prices
(`openai/gpt-4o` as root, `openai/gpt-4o-mini` as sub), reached over HTTP at the provider's
base URL with a key read from an environment variable, exactly as in production.
"""

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from worker.engine import DocumentInput, Limits, ModelOptions, RunSpec  # noqa: E402
from worker.engine.events import ListSink  # noqa: E402
from worker.simulated import SimulatedProvider  # noqa: E402

ROOT = "openai/gpt-4o"
SUB = "openai/gpt-4o-mini"
KEY_ENV = "RLMWEB_TEST_PROVIDER_KEY"
SECRET_KEY = "sk-test-5ecret-DO-NOT-LEAK-91f3a7"

FILLER_WORDS = ["alpha", "beta", "gamma", "delta", "river", "stone", "market", "harbor", "lantern", "copper", "code", "signal", "north", "quiet", "winter", "garden", "orbit", "ledger", "canyon", "meadow", "vessel", "archive", "bridge"]


def filler(chars: int, seed: int = 7) -> str:
    """Plausible-looking sentences; the word 'code' appears often, as a distraction."""
    rng = random.Random(seed)
    parts, n = [], 0
    while n < chars:
        sentence = " ".join(rng.choice(FILLER_WORDS) for _ in range(rng.randint(8, 16))).capitalize() + ". "
        parts.append(sentence)
        n += len(sentence)
    return "".join(parts)[:chars]


def hide(text: str, fact: str, at: float) -> str:
    """`text` with `fact` inserted as a sentence at the fraction `at` of its length."""
    cut = text.rfind(". ", 0, int(len(text) * at)) + 2
    return text[:cut] + fact + " " + text[cut:]


@pytest.fixture
def write_doc(tmp_path):
    def write(name: str, text: str) -> DocumentInput:
        path = Path(tmp_path) / name
        path.write_text(text, encoding="utf-8")
        return DocumentInput(name=name, path=str(path), chars=len(text))

    return write


@pytest.fixture
def provider_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET_KEY)
    return SECRET_KEY


@pytest.fixture
def provider(provider_key):
    """A started simulated provider; tests set .root_replies, .faults, .latency_s as needed."""
    with SimulatedProvider(root_model="gpt-4o") as sp:
        yield sp


def sim_options(sp: SimulatedProvider, *models: str, timeout_s: float = 10, max_retries: int = 3) -> dict:
    return {
        m: ModelOptions(api_base=sp.base_url, api_key_env=KEY_ENV, timeout_s=timeout_s, max_retries=max_retries)
        for m in (models or (ROOT, SUB))
    }


def sim_spec(sp: SimulatedProvider, documents: list[DocumentInput], question: str = "What is the code?",
             root_script: list[str] | None = None, **limits) -> RunSpec:
    return RunSpec(
        question=question, documents=documents, mode=limits.pop("mode", "rlm"), root_model=ROOT, sub_model=SUB,
        limits=Limits(**limits), model_options=sim_options(sp), root_script=root_script,
    )


def repl(code: str, text: str = "") -> str:
    """An assistant message with one ```repl block."""
    return f"{text}\n\n```repl\n{code.strip()}\n```" if text else f"```repl\n{code.strip()}\n```"


@pytest.fixture
def sink():
    return ListSink()
