"""Evaluation test helpers: the simulated provider configured as server models, a scripted root
that answers each question right or wrong on purpose, and the `rlm eval` command."""

import io
import json
import re

import pytest
from django.core.management import call_command

from tests.engine.conftest import KEY_ENV, SECRET_KEY
from tests.web.runs_factories import clean_rate_limits  # noqa: F401
from worker.simulated import SimulatedProvider

ROOT = "openai/gpt-4o"
UNPRICED = "openai/acme-unpriced-model"
QUESTION = re.compile(r"^## Question\n(.+?)$", re.MULTILINE)


class ScriptedAnswers:
    """Root replies: probe once, then FINAL(answer) where answer = answers[(mode, question)];
    in direct mode the answer itself. Unknown questions are answered 'I do not know'."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], str] = {}

    def set(self, mode: str, question: str, answer: str) -> None:
        self.answers[(mode, question)] = answer

    def __call__(self, request) -> str:
        first_user = next((m.get("content") or "" for m in request.messages if m.get("role") == "user"), "")
        if first_user.startswith("You grade answers"):
            return self.judge(first_user)
        match = QUESTION.search(first_user if isinstance(first_user, str) else "")
        question = match.group(1).strip() if match else ""
        direct = request.system.startswith("Answer the question from the documents below")
        if direct:
            return self.answers.get(("direct", question), "I do not know")
        users = [m for m in request.messages if m.get("role") == "user"]
        mode = "rlm-no-subcalls" if "Sub-calls are disabled in this run" in request.system else "rlm"
        answer = self.answers.get((mode, question)) or self.answers.get(("rlm", question), "I do not know")
        if len(users) == 1:
            return "Let me look first.\n```repl\nprint(len(context))\n```"
        return f"FINAL({answer})"


    @staticmethod
    def judge(prompt: str) -> str:
        """A judge that says CORRECT exactly when the expected answer occurs in the graded one."""
        expected = re.search(r"^Expected answer: (.*)$", prompt, re.MULTILINE).group(1).strip().lower()
        answer = re.search(r"^Answer to grade: (.*)$", prompt, re.MULTILINE).group(1).strip().lower()
        return "CORRECT. It states it." if expected in answer else "INCORRECT. It does not."


@pytest.fixture
def scripted(monkeypatch, settings):
    """A simulated provider serving openai/gpt-4o (priced) and an unpriced model, configured as
    server models exactly like an operator's RLMWEB_MODELS entries."""
    monkeypatch.setenv(KEY_ENV, SECRET_KEY)
    answers = ScriptedAnswers()
    with SimulatedProvider(responder=answers) as sp:
        settings.RLMWEB_MODELS = [
            *settings.RLMWEB_MODELS[:1],
            {"model": ROOT, "label": "GPT-4o (simulated)", "api_base": sp.base_url, "api_key_env": KEY_ENV},
            {"model": UNPRICED, "label": "Unpriced (simulated)", "api_base": sp.base_url, "api_key_env": KEY_ENV},
        ]
        answers.provider = sp
        yield answers


def rlm_eval(*args: str) -> tuple[str, dict | None]:
    out = io.StringIO()
    call_command("rlm", "eval", *args, stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    last = text.strip().splitlines()[-1]
    return text, json.loads(last) if last.startswith("{") else None
