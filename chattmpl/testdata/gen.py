#!/usr/bin/env python3
"""Render the real chat templates the way Hugging Face transformers does.

Writes renders.json, the reference the Go tests compare chattmpl's output with
byte for byte. The tests never run this script; rerun it by hand when a
template or a conversation changes:

    python3 chattmpl/testdata/gen.py [TOKENIZERS_DIR] > chattmpl/testdata/renders.json

TOKENIZERS_DIR defaults to ../shared/data/tokenizers beside the checkout.

The environment is the one transformers' apply_chat_template compiles its
templates in (transformers/utils/chat_template_utils.py): an
ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
loopcontrols extension, a tojson filter that does not escape HTML or non-ASCII
text, raise_exception and strftime_now as globals; the template is rendered
with messages, tools=None, documents=None, add_generation_prompt and the
tokenizer's special tokens (only those tokenizer_config.json sets: a token it
sets to null, such as Qwen3's bos_token, is undefined in the template).
Needs only jinja2 (3.1.6 was used).
"""

import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Mistral-7B-v0.1 is a base model: its tokenizer_config.json has no
# chat_template. Its instruct sibling's template (Mistral-7B-Instruct-v0.1,
# same tokenizer) stands in, so that the [INST] layout and eos_token inside a
# template are covered too.
MISTRAL_INSTRUCT_V01 = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# Not a model's template: it covers what the real ones use only with tools
# (Qwen3's tool | tojson), and block whitespace control (trim_blocks,
# lstrip_blocks) on indented statements.
SYNTHETIC_TOJSON = (
    "{% for m in messages %}\n"
    "    {% if m.role == 'user' %}\n"
    "{{ m.content | tojson }}\n"
    "    {% else %}\n"
    "{{ {'role': m.role, 'n': loop.index} | tojson }}\n"
    "    {% endif %}\n"
    "{% endfor %}"
)

# The loopcontrols extension transformers enables.
SYNTHETIC_LOOPCONTROLS = (
    "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
    "{% if loop.index > 3 %}{% break %}{% endif %}"
    "{{ loop.index }} {{ m.role }}: {{ m.content | length }}\n{% endfor %}"
)

REACT_Q = "Which magazine was started first, Arthur's Magazine or First for Women?"
REACT_T1 = ("Thought 1: I need to search Arthur's Magazine and First for Women, "
            "and find which was started first.\nAction 1: Search[Arthur's Magazine]")
REACT_O1 = ("Observation 1: Arthur's Magazine (1844\u20131846) was an American literary "
            "periodical published in Philadelphia in the 19th century. "
            "Edited by T.S. Arthur, it featured work by Edgar A. Poe, J.H. Ingraham, "
            "Sarah Josepha Hale, Thomas G. Spear, and others.[1][2] \"Caf\u00e9\" <b>&amp;</b>")
REACT_T2 = ("Thought 2: Arthur's Magazine was started in 1844. I need to search First for Women next.\n"
            "Action 2: Search[First for Women]")
REACT_O2 = ("Observation 2: First for Women is a woman's magazine published by Bauer Media Group "
            "in the USA.[1] The magazine was started in 1989.\n")
REACT_T3 = ("Thought 3: First for Women was started in 1989. 1844 (Arthur's Magazine) < 1989 "
            "(First for Women), so Arthur's Magazine was started first.\nAction 3: Finish[Arthur's Magazine]")

CONVERSATIONS = {
    "system_user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hi there. How can I help?"},
        {"role": "user", "content": "  Tell me a joke.\n"},
    ],
    # FireAct's chat layout (finetune/dataformat.ChatMessages): the question as
    # the user's message, thought and action as the assistant's, each
    # observation as the user's.
    "react": [
        {"role": "user", "content": REACT_Q},
        {"role": "assistant", "content": REACT_T1},
        {"role": "user", "content": REACT_O1},
        {"role": "assistant", "content": REACT_T2},
        {"role": "user", "content": REACT_O2},
        {"role": "assistant", "content": REACT_T3},
    ],
    "react_system": [
        {"role": "system", "content": "Solve a question answering task with interleaving Thought, Action, "
                                      "Observation steps.\n(1) Search[entity]\n(2) Finish[answer]"},
        {"role": "user", "content": REACT_Q},
        {"role": "assistant", "content": REACT_T1},
        {"role": "user", "content": REACT_O1},
    ],
    # Qwen3 splits reasoning out of assistant messages at </think>.
    "think": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nAdd them.\n</think>\n\n4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "<think>\nAgain.\n</think>\n\n6"},
    ],
}


def environment():
    """The environment transformers' _compile_jinja_template builds."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token_text(v):
    """A special token as tokenizer_config.json gives it: text or an AddedToken dict."""
    if isinstance(v, dict):
        return v.get("content")
    return v


def templates(tokdir):
    out = {}
    for name in sorted(os.listdir(tokdir)):
        path = os.path.join(tokdir, name, "tokenizer_config.json")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        src = cfg.get("chat_template")
        if isinstance(src, list):  # named templates: transformers takes "default"
            src = {t["name"]: t["template"] for t in src}.get("default")
        toks = {k: token_text(cfg.get(k)) for k in ("bos_token", "eos_token")}
        if name == "mistral-v0.1" and src is None:
            name, src = "mistral-instruct-v0.1", MISTRAL_INSTRUCT_V01
        if src is None:
            continue
        out[name] = {"source": src, "bos_token": toks["bos_token"], "eos_token": toks["eos_token"]}
    out["synthetic-tojson"] = {"source": SYNTHETIC_TOJSON, "bos_token": None, "eos_token": None}
    out["synthetic-loopcontrols"] = {"source": SYNTHETIC_LOOPCONTROLS, "bos_token": None, "eos_token": None}
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    tokdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "..", "shared", "data", "tokenizers")
    env = environment()
    tmpls = templates(tokdir)
    cases = []
    for tname, t in tmpls.items():
        compiled = env.from_string(t["source"])
        for cname, msgs in CONVERSATIONS.items():
            for agp in (False, True):
                kw = {k: t[k] for k in ("bos_token", "eos_token") if t[k] is not None}
                case = {"template": tname, "conversation": cname, "add_generation_prompt": agp}
                try:
                    case["text"] = compiled.render(messages=msgs, tools=None, documents=None,
                                                   add_generation_prompt=agp, **kw)
                except jinja2.exceptions.TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    json.dump({"generator": "gen.py with jinja2 " + jinja2.__version__,
               "templates": tmpls, "conversations": CONVERSATIONS, "cases": cases},
              sys.stdout, ensure_ascii=False, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
