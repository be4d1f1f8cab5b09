"""The judge scorer: a configured model reads the question, the expected answer and the answer,
and replies CORRECT or INCORRECT. Its cost is returned so it counts against the evaluation's cap."""

from apps.runs.models_config import model_choice
from worker.engine.llm import LLMClient, LLMError, ModelOptions

from .scorers import Verdict

JUDGE_PROMPT = """You grade answers. Reply with one word, CORRECT or INCORRECT, then one short sentence why.
The answer is CORRECT when it states the expected answer (other wording is fine) and does not contradict it.

Question: {question}
Expected answer: {expected}
Answer to grade: {answer}"""


def judge_verdict(model: str, question: str, expected: object, answer: str,
                  client: LLMClient | None = None) -> tuple[Verdict, float | None]:
    """(verdict, cost in USD or None when unpriced). A judge that fails or replies anything else
    scores 0 with the reason, never crashes the evaluation."""
    choice = model_choice(model)
    options = {model: ModelOptions(api_base=choice.api_base, api_key_env=choice.api_key_env,
                                   context_window=choice.context_window)} if choice else {}
    client = client or LLMClient(options)
    prompt = JUDGE_PROMPT.format(question=question, expected=expected, answer=answer[:20_000])
    try:
        reply = client.complete(model, [{"role": "user", "content": prompt}])
    except LLMError as exc:
        return Verdict(0.0, f"judge {model} failed: {exc}"), None
    text = reply.content.strip()
    word = text.split(None, 1)[0].strip(".:,*").upper() if text else ""
    if word == "CORRECT":
        return Verdict(1.0, f"judge {model}: {text[:300]}"), reply.cost_usd
    if word == "INCORRECT":
        return Verdict(0.0, f"judge {model}: {text[:300]}"), reply.cost_usd
    return Verdict(0.0, f"judge {model} gave no verdict: {text[:300]}"), reply.cost_usd
