"""Reading the root's replies: code blocks to run, and a final answer written as text.

The known brittleness (models answering inside their reasoning, inventing REPL output and
answering in the same turn) is handled by the loop's rules, not by cleverer regexes: text
answers count only in a message without code, and only at the start of a line.
"""

import re
from dataclasses import dataclass

CODE_BLOCK = re.compile(r"```(repl|python|py)[ \t]*\r?\n(.*?)```", re.DOTALL)
FINAL_VAR_LINE = re.compile(r"^[ \t]*FINAL_VAR\(\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?\s*\)[ \t]*$", re.MULTILINE)
FINAL_START = re.compile(r"^[ \t]*FINAL\(", re.MULTILINE)


@dataclass(frozen=True)
class TextFinal:
    kind: str  # "FINAL" (value is the answer) or "FINAL_VAR" (value is a variable name)
    value: str


def code_blocks(text: str) -> list[str]:
    """The ```repl / ```python blocks of a reply, in order (other fences are not run)."""
    return [m.group(2) for m in CODE_BLOCK.finditer(text) if m.group(2).strip()]


def prose(text: str) -> str:
    """The reply without its code blocks."""
    return CODE_BLOCK.sub("", text)


def text_final(text: str) -> TextFinal | None:
    """A FINAL(...) or FINAL_VAR(name) written at the start of a line, outside code blocks."""
    outside = prose(text)
    var = FINAL_VAR_LINE.search(outside)
    final = FINAL_START.search(outside)
    if var and (not final or var.start() <= final.start()):
        return TextFinal("FINAL_VAR", var.group(1))
    if final:
        rest = outside[final.end():]
        close = rest.rfind(")")
        answer = (rest[:close] if close >= 0 else rest).strip()
        if len(answer) >= 2 and answer[0] == answer[-1] and answer[0] in "\"'":
            answer = answer[1:-1]
        return TextFinal("FINAL", answer.strip())
    return None
