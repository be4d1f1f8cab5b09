"""The RLM engine: a plain library (no Django) that answers a question over documents.

    from worker.engine import DocumentInput, Limits, RunSpec, run
    from worker.engine.events import ListSink
    result = run(RunSpec(question=..., documents=[DocumentInput(name, path, chars)]), ListSink())

Everything the run does is emitted as events (worker.engine.events) to the sink; the returned
RunResult summarises the same outcome.
"""

from worker.engine.llm import ModelOptions
from worker.engine.runner import MODES, DocumentInput, Limits, RunResult, RunSpec, run
from worker.engine.session import Earlier, Helper, Session

__all__ = ["MODES", "DocumentInput", "Earlier", "Helper", "Limits", "ModelOptions", "RunResult", "RunSpec", "Session",
           "run"]
