#!/usr/bin/env python3
"""Train the tiny-text SentencePiece tokenizer and save it as a Llama tokenizer.

Writes OUT/ (default training/text/tokenizer/) containing tokenizer.model plus the
transformers files (tokenizer.json, tokenizer_config.json, chat template), so that
``AutoTokenizer.from_pretrained(OUT)`` returns a LlamaTokenizer(Fast) with
bos=<s>, eos=</s>, pad=<pad>, unk=<unk>.

Byte fallback is on, so any input (emoji, CJK, control characters) encodes.
Role markers <|system|>, <|user|>, <|assistant|> are single tokens.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]

# A Zephyr-style template: every message is "<|role|>\n" + content + eos + "\n";
# a generation prompt is "<|assistant|>\n".  Generation stops at eos (</s>).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


def iter_sentences(jsonl: Path):
    for line in open(jsonl, encoding="utf-8"):
        text = json.loads(line)["text"]
        for s in text.split("\n"):
            s = s.strip()
            for tok in ("<s>", "</s>"):
                s = s.replace(tok, "")
            if s:
                yield s[:2000]


def train(data_dir: Path, out: Path, vocab_size: int, seed: int):
    import sentencepiece as spm

    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    sents = list(iter_sentences(data_dir / "train.jsonl"))
    rng.shuffle(sents)
    with tempfile.TemporaryDirectory() as td:
        txt = Path(td) / "sp_input.txt"
        txt.write_text("\n".join(sents[:1_500_000]) + "\n", encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(txt),
            model_prefix=str(out / "tokenizer"),
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=0.9995,
            byte_fallback=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            add_dummy_prefix=False,  # line-initial words have no "▁" (they follow "\n" in documents)
            user_defined_symbols=ROLE_TOKENS,
            unk_id=0, bos_id=1, eos_id=2, pad_id=3,
            unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>", pad_piece="<pad>",
            input_sentence_size=1_500_000,
            shuffle_input_sentence=True,
            seed_sentencepiece_size=1_000_000,
            num_threads=2,
            max_sentence_length=4192,
            minloglevel=2,
        )
    # tokenizer.model is what LlamaTokenizer.from_pretrained(dir) expects
    (out / "tokenizer.vocab").unlink(missing_ok=True)
    scrub_paths(out / "tokenizer.model")
    return out / "tokenizer.model"


def scrub_paths(model_file: Path) -> None:
    """Drop this machine's paths (the trainer's input file and model_prefix) from the
    SentencePiece model; they do not affect tokenization."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    del proto.trainer_spec.input[:]
    proto.trainer_spec.model_prefix = "tokenizer"
    model_file.write_bytes(proto.SerializeToString())


def to_hf(out: Path):
    from transformers import AutoTokenizer, LlamaTokenizer
    tok = LlamaTokenizer.from_pretrained(str(out), legacy=False, add_prefix_space=False,
                                         add_bos_token=True, add_eos_token=False)
    tok.add_special_tokens({"pad_token": "<pad>", "additional_special_tokens": ROLE_TOKENS})
    tok.chat_template = CHAT_TEMPLATE
    tok.model_max_length = 256
    tok.save_pretrained(str(out))
    mark_role_tokens_special(out / "tokenizer_config.json")
    tok = AutoTokenizer.from_pretrained(str(out))
    return tok


def mark_role_tokens_special(config_path: Path) -> None:
    """List the role tokens in ``added_tokens_decoder``: transformers 5 saves them only as
    ``extra_special_tokens``, and llama.cpp's convert_hf_to_gguf.py then stores them as plain
    text (``<|user|>`` became 5 tokens in the GGUF, so every chat prompt differed from
    transformers'). With this they become CONTROL tokens there; transformers is unchanged."""
    import json

    from sentencepiece import SentencePieceProcessor
    sp = SentencePieceProcessor(model_file=str(config_path.parent / "tokenizer.model"))
    config = json.loads(config_path.read_text())
    config["added_tokens_decoder"] = {
        str(sp.piece_to_id(t)): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                 "single_word": False, "special": True} for t in ROLE_TOKENS}
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--out", default=str(HERE / "tokenizer"))
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    out = Path(args.out)
    train(Path(args.data), out, args.vocab_size, args.seed)
    tok = to_hf(out)
    # sanity checks
    assert len(tok) == args.vocab_size, (len(tok), args.vocab_size)
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 3)
    for s in ["In the beginning God created the heaven and the earth.",
              "def f(x):\n    return x ** 2  # ok", "naïve café 😀 日本語"]:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        back = tok.decode(ids)
        print(len(s), "chars ->", len(ids), "tokens", "roundtrip OK" if back == s else f"roundtrip {back!r}")
    msgs = [{"role": "user", "content": "What does love mean?"}]
    txt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    print(repr(txt))
    print(tok.convert_ids_to_tokens(ids))
    print(type(tok).__name__, "vocab", len(tok), "saved to", out)


if __name__ == "__main__":
    main()
