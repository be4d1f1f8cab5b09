"""The offline model `offline/heuristic`: a heuristic stand-in for a language model.

It needs no key and no network and costs nothing (a known price of 0). It is not a language model:
- as ROOT (recognised by the root system prompt) it writes a real RLM program over three turns:
  probe the context, derive keywords from the question, filter every document with a regex, cut
  windows around the hits, fan `llm_query_batched` out over the best windows (or, with sub-calls
  disabled, score sentences in the REPL), then finish with `FINAL_VAR("answer")`;
- as SUB model it answers extractively: the sentence of the passage that best matches the
  question's keywords, or NOT FOUND.

litellm is reached only through worker.engine.llm, which calls `register(litellm)`.
"""

import re
import time
from typing import Any

from worker.engine import prompts

PREFIX = "offline/"
MODEL = "offline/heuristic"
NOT_FOUND = "NOT FOUND"
MAX_WINDOWS = 24
WINDOW_RADIUS = 600

STOPWORDS = frozenset(
    ["a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "of", "in", "on", "at", "to", "for", "from", "by", "with", "about", "as", "into", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "does", "do", "did", "done", "can", "could", "should", "would", "will", "shall", "may", "might", "must", "this", "that", "these", "those", "there", "here", "it", "its", "it's", "they", "them", "their", "i", "you", "he", "she", "we", "our", "your", "his", "her", "me", "my", "any", "all", "some", "each", "every", "not", "no", "nor", "or", "and", "but", "if", "then", "than", "so", "such", "please", "tell", "find", "give", "list", "name", "say", "said", "document", "documents", "text", "context", "passage", "mentioned", "mention", "according", "stated", "state"]
)


def keywords(question: str, limit: int = 8) -> list[str]:
    """Content words of the question, reduced to a stem that prefix-matches their variants."""
    found: list[str] = []
    for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", question):
        w = word.lower().strip("'-")
        if w in STOPWORDS or (len(w) < 3 and not w.isdigit()):
            continue
        stem = re.sub(r"(ing|ed|es|s)$", "", w) if len(w) > 5 else w
        if stem not in found:
            found.append(stem)
    return found[:limit]


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def score(text: str, stems: list[str]) -> int:
    """How many distinct keyword stems start a word of `text`."""
    lowered = text.lower()
    return sum(1 for stem in stems if re.search(r"\b" + re.escape(stem), lowered))


def extract_answer(prompt: str) -> str:
    """The sub-model: the passage sentence best matching the question, or NOT FOUND."""
    question_match = re.search(r"^(?:Question:|" + re.escape(prompts.QUESTION_HEADING) + r"\n)\s*(.+)$", prompt, re.MULTILINE)
    if question_match:
        question = question_match.group(1)
        passage_match = re.search(r"^Passage[^\n]*:\n", prompt, re.MULTILINE)
        passage = prompt[passage_match.end():] if passage_match else prompt[question_match.end():]
    else:
        first, _, rest = prompt.strip().partition("\n")
        question, passage = first[:500], rest or first
    stems = keywords(question)
    best, best_score = None, 0
    for sentence in split_sentences(passage):
        s = score(sentence, stems)
        if s > best_score or (s == best_score and best is not None and s and len(sentence) < len(best)):
            best, best_score = sentence, s
    return best if best is not None and best_score > 0 else NOT_FOUND


PROBE = '''(Offline heuristic stand-in, not a language model: it runs a fixed probe, filter and fan-out program.)
I will start by probing the context: its type, size and how each document begins.

```repl
docs = context if isinstance(context, list) else [context]
names = context_names if isinstance(context, list) else ["document"]
print("list" if isinstance(context, list) else "str", "with", len(docs), "document(s),", sum(len(d) for d in docs), "characters")
for name, doc in zip(names, docs):
    print("-", name, len(doc), "chars; starts:", repr(doc[:150]))
```'''

FILTER = '''Reading everything is out of the question, so I filter: a regex for the question's keywords \
{keywords} over every document, a window of {radius} characters either side of each hit, and the \
windows (at most {max_window} characters each) that match the most distinct keywords first.

```repl
import re
question = {question!r}
keywords = {keywords!r}
pattern = re.compile(r"\\b(" + "|".join(keywords) + r")", re.IGNORECASE)

def score(text):
    return len(set(m.group(1).lower() for m in pattern.finditer(text)))

windows = []
for d in range(len(docs)):
    doc = docs[d]
    for m in pattern.finditer(doc):
        start = max(0, m.start() - {radius})
        end = min(len(doc), m.end() + {radius})
        if windows and windows[-1][0] == d and start <= windows[-1][2] and end - windows[-1][1] <= {max_window}:
            windows[-1][2] = max(windows[-1][2], end)
        else:
            windows.append([d, start, end])
if not windows:
    for d in range(len(docs)):
        step = max(1, len(docs[d]) // 8)
        for start in range(0, len(docs[d]), step):
            windows.append([d, start, min(len(docs[d]), start + 2 * {radius})])
ranked = sorted(windows, key=lambda w: -score(docs[w[0]][w[1]:w[2]]))[:{max_windows}]
best = score(docs[ranked[0][0]][ranked[0][1]:ranked[0][2]]) if ranked else 0
ranked = [w for w in ranked if 2 * score(docs[w[0]][w[1]:w[2]]) >= best]
print(len(windows), "windows; best scores:", [score(docs[w[0]][w[1]:w[2]]) for w in ranked[:10]])
```'''

FAN_OUT = '''Now one sub-call per window, all in one batch, then keep the answer that matches the most keywords.

```repl
prompts = []
for d, start, end in ranked:
    prompts.append("Question: " + question + "\\nAnswer with the sentence of the passage that answers the question, "
                   + "or NOT FOUND.\\n\\nPassage (" + names[d] + ", characters " + str(start) + "-" + str(end) + "):\\n"
                   + docs[d][start:end])
answers = llm_query_batched(prompts)
candidates = [a.strip() for a in answers if "NOT FOUND" not in a and not a.startswith("ERROR:")]
candidates.sort(key=lambda a: (-score(a), len(a)))
answer = candidates[0] if candidates else "Not found: no passage matching " + ", ".join(keywords) + " answers the question."
print(len(candidates), "of", len(answers), "sub-calls found something; best:", answer[:300])
```'''

SCAN = '''Sub-calls are disabled, so I score the sentences of the best windows in the REPL myself.

```repl
sentences = []
for d, start, end in ranked:
    for s in re.split(r"(?<=[.!?])\\s+|\\n+", docs[d][start:end]):
        if s.strip() and score(s) > 0:
            sentences.append(s.strip())
sentences.sort(key=lambda s: (-score(s), len(s)))
answer = sentences[0] if sentences else "Not found: no sentence matching " + ", ".join(keywords) + "."
print(len(sentences), "candidate sentences; best:", answer[:300])
```'''

FINISH = '''The output shows the answer, held in `answer`.

```repl
FINAL_VAR("answer")
```'''


def root_reply(messages: list[dict[str, Any]]) -> str:
    """The root's next message, from the conversation so far."""
    system = _content(messages[0]) if messages else ""
    turns = sum(1 for m in messages if m.get("role") == "assistant") + _compacted_turns(messages)
    last = _content(messages[-1]) if messages else ""
    if prompts.COMPACT_REQUEST in last:
        return (f"(Offline heuristic summary.) {turns} turns so far: probed the context, filtered it with a "
                "regex for the question's keywords into `windows` and `ranked`, and kept the best answer in "
                "`answer` when sub-calls found one.")
    if prompts.FORCED_NOTE in last:
        return "FINAL_VAR(answer)"
    if turns == 0:
        return PROBE
    if turns == 1:
        question = _question(messages)
        stems = keywords(question) or ["the"]
        program = FILTER.format(question=question, keywords=stems, radius=WINDOW_RADIUS, max_windows=MAX_WINDOWS,
                                max_window=4 * WINDOW_RADIUS)
        step = SCAN if prompts.NO_SUBCALLS_NOTE in system else FAN_OUT
        body = step.split("```repl", 1)[1]
        return program.rstrip("`").rstrip() + "\n" + body.lstrip("\n")
    if "Error:" in last:
        return f"The search failed, so I cannot answer from the documents.\n\nFINAL(The heuristic search failed: {last[-300:]})"
    return FINISH


def _compacted_turns(messages: list[dict[str, Any]]) -> int:
    """Turns an earlier compaction folded into a summary: they still count for the fixed program."""
    for message in messages:
        if message.get("role") == "user" and (found := re.search(prompts.COMPACTED_TURNS_RE, _content(message))):
            return int(found.group(1))
    return 0


def _question(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user":
            text = _content(message)
            if prompts.QUESTION_HEADING in text:
                after = text.split(prompts.QUESTION_HEADING, 1)[1]
                return after.split(prompts.CONTEXT_HEADING, 1)[0].strip()
            return text.strip()[:500]
    return ""


def _content(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content


def reply(messages: list[dict[str, Any]]) -> str:
    if messages and prompts.ROOT_ROLE in _content(messages[0]):
        return root_reply(messages)
    user = [m for m in messages if m.get("role") == "user"]
    return extract_answer(_content(user[-1]) if user else "")


def register(litellm: Any) -> None:
    """Register the offline provider and its price (0, known) with litellm."""

    # litellm is handed in as a module object, so its CustomLLM is Any to mypy.
    class OfflineLLM(litellm.CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, model_response: Any = None,
                       **kwargs: Any) -> Any:
            started = time.monotonic()
            text = reply(messages)
            prompt_chars = sum(len(_content(m)) for m in messages)
            return litellm.ModelResponse(
                model=model,
                choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                usage={"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, len(text) // 4),
                       "total_tokens": max(1, prompt_chars // 4) + max(1, len(text) // 4)},
                response_ms=(time.monotonic() - started) * 1000,
            )

    providers = [p for p in (litellm.custom_provider_map or []) if p.get("provider") != "offline"]
    litellm.custom_provider_map = [*providers, {"provider": "offline", "custom_handler": OfflineLLM()}]
    litellm.register_model({
        MODEL: {
            "litellm_provider": "offline",
            "mode": "chat",
            "max_input_tokens": 128_000,
            "max_output_tokens": 16_384,
            "input_cost_per_token": 0.0,
            "output_cost_per_token": 0.0,
            "cache_creation_input_token_cost": 0.0,
            "cache_read_input_token_cost": 0.0,
        }
    })
