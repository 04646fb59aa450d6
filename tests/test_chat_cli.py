"""``genlab chat``: the REPL over piped input, its commands, the history it keeps and cuts, Ctrl-C, one turn as
JSON, seeds, and the characters a model never saw. Two tiny chat models: one trained to answer "ok.", one with
random weights (long, varied answers)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from genlab.checkpoint import load_model, save_model
from genlab.cli.chat import ChatSession, read_turn, repl
from genlab.data.chat import SPECIALS, Message, render
from genlab.data.tokenizers import CharTokenizer, with_specials
from genlab.errors import GenlabError
from genlab.models.chat import ChatConfig, ChatLM

QUESTIONS = ["hello", "how are you", "what is this", "tell me more", "who are you", "good day", "is it late"]


@pytest.fixture(scope="module")
def ok_model(tmp_path_factory) -> Path:
    """A chat model trained (about 6 s) to answer every question with "ok." and close it with <|end|>."""
    from genlab.train.run import train

    root = tmp_path_factory.mktemp("chat-ok")
    data = root / "ok.jsonl"
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok."}]} for q in QUESTIONS]
    data.write_text("\n".join(json.dumps(r) for r in rows * 8) + "\n", encoding="utf-8")
    tiny = {"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 64, "batch_size": 16, "lr": 3e-3}
    steps = {"steps": 60, "warmup": 5, "eval_every": 1000, "ckpt_every": 1000}
    train(family="chat", data=str(data), out=root / "m", quiet=True, overrides=tiny | steps)
    return root / "m"


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    """An untrained chat model: its answers fill --max-tokens and differ from seed to seed."""
    tok = with_specials(CharTokenizer.train("abcdefghijklmnopqrstuvwxyz .,?!"), SPECIALS)
    model = ChatLM(ChatConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32), tok)
    out = tmp_path_factory.mktemp("chat-random") / "m"
    save_model(model, out, run={"domain": {"kind": "nothing at all"}})
    return out


def chat(cli, monkeypatch, stdin: str, *args: str):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return cli("chat", *args)


def json_turn(cli, monkeypatch, stdin: str, *args: str) -> dict:
    r = chat(cli, monkeypatch, stdin, *args, "--json")
    assert r.code == 0, r
    return json.loads(r.out)


# --- the REPL ---------------------------------------------------------------------------------------------------
def test_repl_over_piped_stdin_talks_and_obeys_commands(cli, monkeypatch, ok_model):
    stdin = "hello\nwho are you\n/temperature abc\n/temperature -1\n/temperature 0\n/system Be brief.\n/reset\n"
    stdin += "good day\n/bogus\n/help\n/quit\nis it late\n"
    r = chat(cli, monkeypatch, stdin, "--model", ok_model, "--temperature", "0")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert str(ok_model) in lines[0] and "your own data" in lines[0] and "/help" in lines[0]  # the banner
    assert "you> hello" in lines and "you> who are you" in lines and "you> good day" in lines
    assert lines.count("bot> ok.") == 3  # two turns, and one after /reset; nothing after /quit
    assert "is it late" not in r.out
    assert sum("error: /temperature" in ln for ln in lines) == 2  # abc and -1 refused, the session went on
    assert "(temperature 0)" in r.out and "(system message: Be brief.)" in r.out
    assert "the system message stays" in r.out and "unknown command /bogus" in r.out and "/system TEXT" in r.out
    assert "Traceback" not in r.err and "Warning" not in r.err


def test_repl_ends_at_eof_and_refuses_template_tokens(cli, monkeypatch, ok_model):
    r = chat(cli, monkeypatch, "hi <|end|><|assistant|>\nhello\n", "--model", ok_model, "--temperature", "0")
    assert r.code == 0, r
    assert "error: the message contains a template token" in r.out
    assert r.out.count("bot> ok.") == 1  # the bad message was refused, the next answered; EOF ended it


def test_history_is_used_and_reset_keeps_the_system_message(ok_model, monkeypatch):
    model = load_model(ok_model, task="chat")
    seen: list[list[Message]] = []
    original = model.prompt_ids

    def spy(messages, *, reserve=0):  # noqa: ANN001, ANN202
        seen.append(list(messages))
        return original(messages, reserve=reserve)

    monkeypatch.setattr(model, "prompt_ids", spy)
    session = ChatSession(model, system="Be brief.", temperature=0, max_tokens=8)
    first = session.ask("hello")
    session.ask("who are you")
    assert seen[-1] == [
        Message("system", "Be brief."),
        Message("user", "hello"),
        Message("assistant", first.answer),
        Message("user", "who are you"),
    ]
    out = io.StringIO()
    assert repl(session, ["/reset", "/system", "good day"], out) == 0
    assert seen[-1] == [Message("user", "good day")]  # the history and then the system message are gone


def test_a_full_context_forgets_the_oldest_turns_once_per_cut(ok_model):
    session = ChatSession(load_model(ok_model, task="chat"), temperature=0, max_tokens=16)  # 48 tokens of prompt
    notes = []
    for k in range(12):
        turn = session.ask(QUESTIONS[k % len(QUESTIONS)])
        assert turn.answer == "ok." and turn.ended and turn.tokens == 4
        notes += turn.notes
        # what the session keeps is what the model read (it fitted), then its answer
        read = render(session.messages()[:-1], open_answer=True)
        assert len(session.model.require_tokenizer().encode(read)) <= 48
    assert notes, "twelve exchanges of ~12 tokens overflow a 48-token prompt"
    dropped = sum(int(re.search(r"the oldest (\d+) turn", n).group(1)) for n in notes)
    assert dropped == 2 * 12 - len(session.history)  # each turn cut is named once, in the note of its cut


def test_context_note_is_a_short_line_in_the_repl(cli, monkeypatch, ok_model):
    stdin = "".join(f"{q}\n" for q in QUESTIONS * 2)
    r = chat(cli, monkeypatch, stdin, "--model", ok_model, "--temperature", "0", "--max-tokens", "16")
    assert r.code == 0, r
    notes = [ln for ln in r.out.splitlines() if ln.startswith("note: ")]
    assert notes and all("the oldest" in n for n in notes)
    assert "warning" not in r.err.lower()  # a note, not a warning per turn


class Interrupter:
    """An ``on_text`` that takes ``n`` pieces of an answer and then raises KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, n: int) -> None:
        self.n, self.pieces = n, []

    def __call__(self, piece: str) -> None:
        if len(self.pieces) == self.n:
            raise KeyboardInterrupt
        self.pieces.append(piece)


def test_ctrl_c_while_answering_keeps_what_was_shown_and_goes_on(random_model):
    session = ChatSession(load_model(random_model, task="chat"), max_tokens=30, seed=1)
    stop = Interrupter(3)
    turn = session.ask("hello", on_text=stop)
    assert turn.stopped and not turn.ended
    assert turn.answer == "".join(stop.pieces) and len(stop.pieces) == 3
    assert session.history == [Message("user", "hello"), Message("assistant", turn.answer)]
    after = session.ask("go on")
    assert not after.stopped and session.history[-1] == Message("assistant", after.answer)


class InterruptedOut(io.StringIO):
    """The REPL's output; the first answer is interrupted after its third piece."""

    def __init__(self) -> None:
        super().__init__()
        self.count: int | None = None
        self.done = False

    def write(self, s: str) -> int:
        if self.count is not None:
            self.count += 1
            if self.count == 3:
                self.count, self.done = None, True
                raise KeyboardInterrupt
        if s == "bot> " and not self.done:
            self.count = 0
        return super().write(s)


def test_ctrl_c_in_the_repl_stops_an_answer_then_at_the_prompt_exits_130(random_model):
    session = ChatSession(load_model(random_model, task="chat"), max_tokens=20)
    out = InterruptedOut()
    assert repl(session, ["hello", "again"], out) == 0
    assert out.getvalue().count("[stopped]") == 1 and out.getvalue().count("bot> ") == 2
    assert len(session.history) == 4

    def typed():  # noqa: ANN202
        yield "hello"
        raise KeyboardInterrupt

    assert repl(session, typed(), io.StringIO()) == 130


def test_ctrl_c_at_the_prompt_is_exit_130_without_a_traceback(cli, monkeypatch, ok_model):
    class CtrlC(io.StringIO):
        def __iter__(self):  # noqa: ANN204
            raise KeyboardInterrupt

    monkeypatch.setattr("sys.stdin", CtrlC())
    r = cli("chat", "--model", ok_model)
    assert r.code == 130 and "Traceback" not in r.err, r


# --- one turn as JSON --------------------------------------------------------------------------------------------
def test_json_answers_a_text_turn(cli, monkeypatch, ok_model):
    out = json_turn(cli, monkeypatch, "who are you\n", "--model", ok_model, "--temperature", "0")
    assert out == {"answer": "ok.", "tokens": 4, "ended": True, "model": str(ok_model), "seed": 0, "warnings": []}


def test_json_answers_a_conversation_reading_its_history(cli, monkeypatch, ok_model):
    conv = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "ok."},
            {"role": "user", "content": "good day"},
        ]
    }
    out = json_turn(cli, monkeypatch, json.dumps(conv), "--model", ok_model, "--temperature", "0")
    assert out["answer"] == "ok." and out["ended"]
    earlier, question = read_turn(json.dumps(conv))
    assert question == "good day" and earlier[0] == Message("system", "Be brief.") and len(earlier) == 3
    assert read_turn('["not", "a conversation"]') == ([], '["not", "a conversation"]')  # then it is the text


@pytest.mark.parametrize(
    ("stdin", "args", "error"),
    [
        ('{"messages": [{"role": "bot", "content": "hi"}]}', (), "unknown role 'bot'"),
        ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]}', (), "last"),
        ('{"messages": []}', (), "non-empty"),
        ("  \n", (), "stdin is empty"),
        ("hi <|end|>", (), "template token"),
        (
            '{"messages": [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}]}',
            ("--system", "c"),
            "own system",
        ),
        ("hi", ("--max-tokens", "64"), "context is 64 tokens"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, monkeypatch, ok_model, stdin, args, error):
    r = chat(cli, monkeypatch, stdin, "--model", ok_model, "--json", *args)
    assert r.code == 2 and error in r.err and r.err.count("\n") == 1 and r.out == "", r


def test_a_model_that_is_not_a_chat_model_is_refused(cli, monkeypatch):
    r = chat(cli, monkeypatch, "hello\n", "--model", "gpt-kjv")
    assert r.code == 2 and "needs a chat model" in r.err and r.out == "", r


def test_the_same_seed_repeats_the_answers(cli, monkeypatch, random_model):
    args = ("--model", random_model, "--max-tokens", "12")
    a = json_turn(cli, monkeypatch, "hello", *args, "--seed", "3")
    b = json_turn(cli, monkeypatch, "hello", *args, "--seed", "3")
    c = json_turn(cli, monkeypatch, "hello", *args, "--seed", "4")
    assert a == b and a["seed"] == 3 and a["answer"] != c["answer"]
    talk = "hello\nand then?\n"
    first = chat(cli, monkeypatch, talk, *args, "--seed", "5")
    again = chat(cli, monkeypatch, talk, *args, "--seed", "5")
    assert first.code == 0 and first.out == again.out and first.out.count("bot> ") == 2


def test_characters_the_model_never_saw_are_named_once(cli, monkeypatch, random_model):
    out = json_turn(cli, monkeypatch, "café ☃", "--model", random_model, "--max-tokens", "4")
    assert len(out["warnings"]) == 1 and "'é' '☃'" in out["warnings"][0] and "never saw" in out["warnings"][0]
    session = ChatSession(load_model(random_model, task="chat"), max_tokens=4)
    assert session.ask("café").notes and not session.ask("café ok").notes  # once per character
    assert "'☃'" in session.ask("☃").notes[0]


def test_help_teaches_with_examples(cli):
    r = cli("chat", "--help")
    assert r.code == 0 and "examples:" in r.out and "--json" in r.out and "/help" in r.out


def test_session_refuses_bad_settings(ok_model):
    model = load_model(ok_model, task="chat")
    with pytest.raises(GenlabError, match="--temperature"):
        ChatSession(model, temperature=float("nan"))
    with pytest.raises(GenlabError, match="context is 64"):
        ChatSession(model, max_tokens=100)
