"""README.md's shell commands as a reader copies them, and the sample answers printed under them.

The rule (tests/test_readme.py holds every command to it): a command is a logical line of a fenced code
block whose info string is ``bash``, ``sh``, ``shell`` or ``console`` (fences may be indented, as in a list
item), after joining lines that end in ``\\`` and dropping comments (a ``#`` at the start of a line or after
a blank, outside quotes) and blank lines; in a ``console`` block only lines starting with ``$ `` are
commands. A full-line comment right under a command that starts with ``# {`` (continued by lines starting
``#  ``) is that command's documented answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)```\s*([\w-]*)\s*$")
OPENS = re.compile(r"^(for|while|until|if|case)\b")
CLOSES = re.compile(r"(^|[;\s])(done|fi|esac)\s*$")


@dataclass(frozen=True)
class Command:
    text: str  # the command as a reader runs it (one logical line)
    line: int  # README line it starts on
    block: int  # which shell block it is in (0, 1, ...)
    answer: str | None = None  # the documented answer under it, without the comment marks


def uncommented(line: str) -> str:
    """``line`` without its comment: a ``#`` at the start or after a blank, outside single and double quotes."""
    quote, index = None, 0
    while index < len(line):
        char = line[index]
        if char == "\\" and quote != "'":
            index += 2  # an escaped character
            continue
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
        index += 1
    return line.rstrip()


def _blocks(text: str):
    """Yield ``(first line number, lines)`` of every shell block, the fence's indentation removed."""
    lines, index = text.splitlines(), 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if not opened:
            index += 1
            continue
        indent, lang = opened.groups()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith("```"):
            end += 1
        if lang in SHELL_BLOCKS:
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[index + 1:end]]
            yield index + 2, lang, body
        index = end + 1


def commands(text: str | None = None) -> list[Command]:
    """Every command of ``text`` (README.md by default), in order."""
    text = README.read_text() if text is None else text
    found: list[Command] = []
    for block, (first, lang, body) in enumerate(_blocks(text)):
        pending, start, answer_of = "", 0, None
        for offset, raw in enumerate(body):
            stripped = raw.strip()
            if answer_of is not None and stripped.startswith("#"):
                if stripped.startswith("# {") or (found[answer_of].answer and stripped.startswith("#  ")):
                    previous = found[answer_of]
                    joined = " ".join(filter(None, [previous.answer, stripped[1:].strip()]))
                    found[answer_of] = Command(previous.text, previous.line, previous.block, joined)
                    continue
            answer_of = None
            if lang == "console" and not pending:
                if not stripped.startswith("$ "):
                    continue
                raw = stripped[2:]
            line = uncommented(raw)
            if not pending:
                start = first + offset
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            whole = (pending + line.strip()).strip()
            if OPENS.match(whole) and not CLOSES.search(whole):  # a loop or if spans lines: one command
                pending = whole + "\n"
                continue
            pending = ""
            if whole:
                found.append(Command(whole, start, block))
                answer_of = len(found) - 1
    return found
