"""``genlab chat``: talk to a chat model (the chat family: supervised fine-tuning, reward-tuned, RLHF checkpoints).

Two ways in. The REPL (stdin a terminal or a pipe) keeps the conversation: each answer is sampled from the whole
history rendered with the chat template (:mod:`genlab.data.chat`), streamed token by token; when the context fills,
the oldest turns are forgotten (a note says so, once per cut). ``--json`` answers one turn for scripts: stdin is the
user's message, or a conversation ``{"messages": [...]}`` whose last message is the user's.

The session (:class:`ChatSession`) and the loop (:func:`repl`) take their input and output as arguments, so both
are tested without a terminal or signals; Ctrl-C reaches them as ``KeyboardInterrupt``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from genlab.cli.common import NATURAL, SEED, Formatter, Num, json_out
from genlab.data.chat import SPECIALS, Message, parse_conversation, render
from genlab.errors import GenlabError, GenlabWarning

TEMPERATURE = Num(float, 0, 100)  # the option's and /temperature's range

COMMANDS = """\
commands:
  /reset            forget the conversation (the system message stays)
  /system TEXT      set the system message (/system alone clears it)
  /temperature X    set the sampling temperature (0 = always the most likely token)
  /help             this list
  /quit             leave (Ctrl-D too); Ctrl-C stops an answer, and at the prompt leaves"""


@dataclass
class Turn:
    """One answer: its text, the tokens sampled (with the closing special token), whether ``<|end|>`` closed it,
    whether Ctrl-C stopped it, and notes for the user (turns forgotten, characters the model never saw)."""

    answer: str
    tokens: int
    ended: bool
    stopped: bool = False
    notes: list[str] = field(default_factory=list)


def unknown_chars(model: Any, text: str) -> list[str]:
    """The characters of ``text`` a character-level tokenizer does not know (it spells them as UTF-8 bytes, which
    the model never saw in training); [] for tokenizers that know every character (byte-level BPE)."""
    tok = model.require_tokenizer()
    base = getattr(tok, "base", tok)  # a SpecialTokenizer's own vocabulary
    chars = getattr(base, "chars", None)
    if chars is None:
        return []
    known = set(chars)
    return sorted({c for c in text if c not in known})


class ChatSession:
    """A conversation with a chat ``model``: the system message(s), the turns so far, the sampling settings and a
    generator seeded with ``seed`` (the same seed and the same inputs give the same answers). Answers are at most
    ``max_tokens`` long (default: half the model's context; the conversation has the rest)."""

    def __init__(
        self,
        model: Any,
        *,
        system: str | None = None,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        max_tokens: int | None = None,
        seed: int = 0,
    ) -> None:
        from genlab.runtime import make_generator
        from genlab.sampling.text import check_controls

        context = model.config.block_size
        max_tokens = context // 2 if max_tokens is None else max_tokens
        check_controls(temperature, top_k, top_p, max_tokens)
        if max_tokens >= context:
            raise GenlabError(
                f"--max-tokens {max_tokens}: the model's context is {context} tokens, shared by the conversation "
                f"and the answer; ask for fewer (e.g. {context // 2})"
            )
        self.model = model
        self.system: list[Message] = []
        self.set_system(system)
        self.history: list[Message] = []  # user and assistant turns, oldest first
        self.temperature, self.top_k, self.top_p, self.max_tokens = temperature, top_k, top_p, max_tokens
        self.generator = make_generator(seed, model.device)
        self._warned: set[str] = set()  # characters already named in a note

    def set_system(self, text: str | None) -> None:
        self._check(text or "", "the system message")
        self.system = [Message("system", text)] if text else []

    def messages(self) -> list[Message]:
        return self.system + self.history

    def _check(self, text: str, what: str) -> None:
        if any(s in text for s in SPECIALS):
            raise GenlabError(f"{what} contains a template token ({', '.join(SPECIALS)}); rephrase it")

    def _char_note(self, text: str) -> list[str]:
        new = [c for c in unknown_chars(self.model, text) if c not in self._warned]
        self._warned.update(new)
        if not new:
            return []
        shown = " ".join(repr(c) for c in new[:12]) + (" ..." if len(new) > 12 else "")
        return [f"the model never saw these characters in training: {shown}; answers may be poor"]

    def _prompt(self) -> tuple[list[int], list[str]]:
        """The prompt's token ids, and the note of a cut: the turns ``prompt_ids`` left out are forgotten here too,
        so that the next answer does not cut (and warn) again."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", GenlabWarning)
            ids = self.model.prompt_ids(self.messages(), reserve=self.max_tokens)
        notes = [" ".join(str(w.message).split()) for w in caught if issubclass(w.category, GenlabWarning)]
        if notes:
            tok = self.model.require_tokenizer()
            while len(self.history) > 1 and tok.encode(render(self.messages(), open_answer=True)) != ids:
                self.history.pop(0)
        return ids, notes

    def ask(self, text: str, on_text: Callable[[str], None] | None = None) -> Turn:
        """The answer to the user's ``text`` after the conversation so far, streamed to ``on_text``; both join the
        history. A ``KeyboardInterrupt`` while it streams stops it: what ``on_text`` took is the answer."""
        from genlab.sampling.text import generate_ids

        self._check(text, "the message")
        notes = self._char_note(text)
        self.history.append(Message("user", text))
        try:
            ids, cut = self._prompt()
        except GenlabError:
            self.history.pop()
            raise
        shown: list[str] = []

        def emit(piece: str) -> None:
            if on_text is not None:
                on_text(piece)
            shown.append(piece)

        try:
            gen = generate_ids(
                self.model, ids, max_tokens=self.max_tokens, temperature=self.temperature, top_k=self.top_k,
                top_p=self.top_p, stop=SPECIALS, generator=self.generator, on_text=emit,
            )  # fmt: skip
            new = gen.ids[0]
            turn = Turn(gen.texts[0], len(new), bool(new) and new[-1] == self.model.end_id(), notes=notes + cut)
        except KeyboardInterrupt:
            answer = "".join(shown)
            turn = Turn(answer, len(self.model.require_tokenizer().encode(answer)), False, True, notes + cut)
        if turn.answer.strip():
            self.history.append(Message("assistant", turn.answer))
        return turn


# --- the REPL ------------------------------------------------------------------------------------------------
def repl(session: ChatSession, lines: Iterable[str], out: TextIO, *, echo: bool = False, banner: str = "") -> int:
    """Talk until ``/quit`` or the end of ``lines`` (0), or Ctrl-C at the prompt (130). Each line is a message or a
    command; ``echo`` writes the line after the prompt (piped input, which a terminal would have shown)."""

    def say(text: str) -> None:
        out.write(text)
        out.flush()

    if banner:
        say(banner + "\n")
    it: Iterator[str] = iter(lines)
    while True:
        say("you> ")
        try:
            line = next(it).rstrip("\r\n")
        except StopIteration:
            say("\n")
            return 0
        except KeyboardInterrupt:
            say("\n")
            return 130
        if echo:
            say(line + "\n")
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if _command(session, text, say):
                return 0
            continue
        say("bot> ")
        try:
            turn = session.ask(text, on_text=say)
        except GenlabError as e:
            say(f"error: {e}\n")
            continue
        say(" [stopped]\n" if turn.stopped else "\n")
        for note in turn.notes:
            say(f"note: {note}\n")


def _command(session: ChatSession, text: str, say: Callable[[str], None]) -> bool:
    """Carry out a REPL command; True for /quit."""
    name, _, arg = text.partition(" ")
    arg = arg.strip()
    if name == "/quit":
        return True
    if name == "/help":
        say(COMMANDS + "\n")
    elif name == "/reset":
        session.history.clear()
        say("(the conversation is forgotten" + ("; the system message stays)\n" if session.system else ")\n"))
    elif name == "/system":
        try:
            session.set_system(arg or None)
        except GenlabError as e:
            say(f"error: {e}\n")
            return False
        say(f"(system message: {arg})\n" if arg else "(no system message)\n")
    elif name == "/temperature":
        if not arg:
            say(f"(temperature {session.temperature:g})\n")
            return False
        try:
            session.temperature = float(TEMPERATURE(arg))
        except argparse.ArgumentTypeError as e:
            say(f"error: /temperature: {e}\n")
            return False
        say(f"(temperature {session.temperature:g})\n")
    else:
        say(f"error: unknown command {name}; /help lists them\n")
    return False


def _terminal_lines() -> Iterator[str]:
    """Lines typed at a terminal, with line editing where Python has readline."""
    try:
        import readline  # noqa: F401 - input() edits lines once it is imported
    except ImportError:  # pragma: no cover - Windows
        pass
    while True:
        try:
            yield input()
        except EOFError:
            return


# --- one turn as JSON ------------------------------------------------------------------------------------------
def read_turn(text: str) -> tuple[list[Message], str]:
    """(system and earlier messages, the user's message to answer) from stdin's ``text``: a JSON object with
    ``"messages"`` (the conversation format of :func:`genlab.data.chat.parse_conversation`), else the text itself."""
    if not text.strip():
        raise GenlabError('stdin is empty: give the message, or {"messages": [...]} (see genlab chat --help)')
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        obj = None
    if not (isinstance(obj, dict) and "messages" in obj):
        return [], text.strip()
    conv = parse_conversation(obj, "stdin", prompt=True)
    return list(conv[:-1]), conv[-1].content


def cmd_chat(args: argparse.Namespace) -> int:
    from genlab.checkpoint import load_model
    from genlab.data.domain import model_domain
    from genlab.runtime import best_device

    earlier: list[Message] = []
    if args.json:
        earlier, question = read_turn(sys.stdin.read())
        if args.system is not None and any(m.role == "system" for m in earlier):
            raise GenlabError("--system: the conversation on stdin has its own system message; give one of them")
    model = load_model(args.model, task="chat", device=best_device(args.device))
    session = ChatSession(
        model, system=args.system, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        max_tokens=args.max_tokens, seed=args.seed,
    )  # fmt: skip
    if not args.json:
        kind = model_domain(model).get("kind", "its training data is not recorded")
        banner = f"genlab chat: {model.path} ({kind}); /help for commands"
        terminal = sys.stdin.isatty()
        return repl(session, _terminal_lines() if terminal else sys.stdin, sys.stdout, echo=not terminal, banner=banner)
    session.system += [m for m in earlier if m.role == "system"]
    session.history = [m for m in earlier if m.role != "system"]
    turn = session.ask(question)
    for note in turn.notes:
        warnings.warn(note, GenlabWarning, stacklevel=1)
    json_out(
        {
            "answer": turn.answer,
            "tokens": turn.tokens,
            "ended": turn.ended,
            "model": str(model.path),
            "seed": args.seed,
            "warnings": [],
        }
    )
    return 0


def add_chat(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "chat",
        help="talk to a chat model, or answer one turn as JSON",
        formatter_class=Formatter,
        description="Talk to a chat model (genlab train chat; docs/chat.md). The conversation is kept: each answer "
        "reads the history in the chat template, and when the model's context fills the oldest turns are forgotten "
        "(a note says so). Answers stream as they are sampled; Ctrl-C stops one, Ctrl-D or /quit leaves. "
        "Type /help for the commands (/reset, /system, /temperature). --json answers one turn for scripts: stdin "
        'is the message, or {"messages": [{"role", "content"}, ...]} ending with the user\'s; the same --seed and '
        "inputs give the same answers.",
        epilog="""examples:
  genlab chat                                                    # the shipped chat-kjv; /help lists the commands
  genlab chat --model chat-kjv-rlhf                              # its DPO successor (more positive answers)
  genlab chat --model runs/sft                                   # a model you trained
  genlab chat --model runs/sft --system "Answer briefly." --temperature 0.7 --seed 3
  echo "What is your name?" | genlab chat --model runs/sft --json
  echo '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "How are you?"}]}' | genlab chat --model runs/sft --json
""",
    )
    p.add_argument(
        "--model",
        metavar="DIR",
        help="a chat checkpoint, or a shipped one's name: chat-kjv (the default, SFT) or chat-kjv-rlhf (DPO)",
    )
    p.add_argument("--system", metavar="TEXT", help="the system message: instructions the model reads first")
    p.add_argument("--temperature", type=TEMPERATURE, default=0.8, help="softmax temperature; 0 = greedy")
    p.add_argument("--top-k", type=NATURAL, default=0, dest="top_k", help="keep the k most likely tokens (0 = all)")
    p.add_argument(
        "--top-p", type=Num(float, hi=1, gt=0), default=1.0, dest="top_p", help="keep the smallest set this likely"
    )
    p.add_argument(
        "--max-tokens",
        type=NATURAL,
        dest="max_tokens",
        help="the longest answer, in tokens (default: half the model's context; the conversation has the rest)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="random seed: the same seed and inputs, the same answers")
    p.add_argument("--json", action="store_true", help="answer stdin's one turn as one JSON object")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: the best available)")
    p.set_defaults(func=cmd_chat)
