"""Provider failures through litellm's HTTP path: retried, then reported; Retry-After honoured."""

import time

import pytest

from worker.engine import run
from worker.engine.llm import LLMClient, LLMError, ModelOptions
from worker.simulated import Fault

from .conftest import KEY_ENV, SUB, repl, sim_spec


def client_for(sp, max_retries: int = 3, timeout_s: float = 10) -> LLMClient:
    options = ModelOptions(api_base=sp.base_url, api_key_env=KEY_ENV, timeout_s=timeout_s, max_retries=max_retries)
    return LLMClient({SUB: options}, base_backoff_s=0.05)


def ask(client: LLMClient):
    return client.complete(SUB, [{"role": "user", "content": "hello"}])


def test_rate_limit_waits_as_long_as_retry_after_says(provider):
    provider.faults = [Fault("429", at=0, retry_after=1.0)]
    reply = ask(client_for(provider))
    assert (reply.content, reply.attempts) == ("ECHO: hello", 2)
    first, second = provider.requests
    assert second.received_at - first.finished_at >= 0.95
    assert reply.latency_s >= 0.95  # the whole call, the wait included, not just the last attempt


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "reset", "malformed", "empty"])
def test_transient_failures_are_retried(provider, kind):
    provider.faults = [Fault(kind, at=0), Fault(kind, at=1)]
    reply = ask(client_for(provider))
    assert (reply.content, reply.attempts) == ("ECHO: hello", 3)
    assert len(provider.requests) == 3  # no hidden retries underneath ours


def test_a_reply_slower_than_the_timeout_is_retried(provider):
    provider.faults = [Fault("slow", at=0, slow_s=8)]
    started = time.monotonic()
    reply = ask(client_for(provider, timeout_s=1))
    assert reply.attempts == 2
    assert time.monotonic() - started < 6  # the 8 s reply was abandoned, not waited for


def test_persistent_failure_ends_with_a_clear_error(provider):
    provider.faults = [Fault("503", when=lambda r: True, times=99)]
    with pytest.raises(LLMError) as failure:
        ask(client_for(provider, max_retries=2))
    assert failure.value.attempts == 3
    assert "gpt-4o-mini failed after 3 attempts" in str(failure.value)
    assert "ServiceUnavailable" in str(failure.value)


@pytest.mark.parametrize("kind", ["400", "401"])
def test_errors_retrying_cannot_fix_fail_at_once(provider, kind):
    provider.faults = [Fault(kind, at=0)]
    with pytest.raises(LLMError) as failure:
        ask(client_for(provider))
    assert failure.value.attempts == 1 and len(provider.requests) == 1


def test_missing_key_variable_is_named(provider, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(LLMError, match=KEY_ENV):
        ask(client_for(provider))
    assert provider.requests == []


def test_root_failing_for_good_fails_the_run_with_provider_error(provider, write_doc, sink):
    provider.faults = [Fault("500", when=lambda r: True, times=99)]
    doc = write_doc("a.txt", "abc")
    spec = sim_spec(provider, [doc])
    spec.model_options = {m: ModelOptions(api_base=provider.base_url, api_key_env=KEY_ENV, max_retries=1)
                          for m in spec.model_options}
    result = run(spec, sink)
    assert (result.status, result.stop_reason) == ("failed", "provider_error")
    assert "gpt-4o failed after 2 attempts" in result.failure_reason
    assert sink.events[-1].type == "run.finished"


def test_subcall_retries_are_counted_in_its_event(provider, write_doc, sink):
    provider.faults = [Fault("429", at=0, retry_after=0.2)]
    doc = write_doc("a.txt", "abc")
    result = run(sim_spec(provider, [doc], root_script=[repl("r = llm_query('x')"), 'FINAL_VAR("r")']), sink)
    assert result.final_answer == "ECHO: x"
    assert sink.of_type("subcall.finished")[0].data["attempts"] == 2
