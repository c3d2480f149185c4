"""A SentencePiece-BPE tokenizer rebuilt from a GGUF's vocabulary, for Gemma GGUFs.

transformers turns a Gemma GGUF's tokenizer into a Unigram model over the GGUF
scores; but those scores are BPE merge priorities (score = -rank), not log
probabilities, so the Unigram tokenizer splits text into single characters. Here the
merges are recovered the way SentencePiece BPE applies them: a pair (a, b) whose
concatenation is a vocabulary token t merges with the priority of t's score.
"""

from __future__ import annotations

from pathlib import Path

NORMAL, CONTROL, USER_DEFINED, BYTE = 1, 3, 4, 6


def _field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    if f.types[0].name == "ARRAY":
        return [f.parts[i] for i in f.data]
    return f.parts[-1]


def spm_bpe_tokenizer(gguf: Path):
    """A ``PreTrainedTokenizerFast`` equivalent to the GGUF's SentencePiece-BPE tokenizer."""
    from gguf import GGUFReader
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers import PreTrainedTokenizerFast

    reader = GGUFReader(str(gguf))
    tokens = [bytes(p).decode("utf-8", "replace") for p in _field(reader, "tokenizer.ggml.tokens")]
    scores = [float(p[0]) for p in _field(reader, "tokenizer.ggml.scores")]
    types = [int(p[0]) for p in _field(reader, "tokenizer.ggml.token_type")]
    bos = int(_field(reader, "tokenizer.ggml.bos_token_id")[0])
    eos = int(_field(reader, "tokenizer.ggml.eos_token_id")[0])
    add_bos = bool(_field(reader, "tokenizer.ggml.add_bos_token")[0])
    vocab = {t: i for i, t in enumerate(tokens)}

    merges = []
    for i, (tok, kind) in enumerate(zip(tokens, types, strict=True)):
        if kind != NORMAL or len(tok) < 2:
            continue
        for cut in range(1, len(tok)):
            left, right = tok[:cut], tok[cut:]
            if left in vocab and right in vocab:
                merges.append((scores[i], -vocab[left], left, right))
    merges.sort(key=lambda m: (-m[0], -m[1]))
    model = models.BPE(
        vocab=vocab,
        merges=[(a, b) for *_, a, b in merges],
        byte_fallback=True,
        fuse_unk=True,
        unk_token=tokens[int(_field(reader, "tokenizer.ggml.unknown_token_id")[0])],
    )
    tk = Tokenizer(model)
    tk.normalizer = normalizers.Replace(" ", "▁")
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tk.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, k in zip(tokens, types, strict=True) if k == CONTROL]
    )
    tk.add_tokens([AddedToken(t, normalized=False) for t, k in zip(tokens, types, strict=True) if k == USER_DEFINED])
    if add_bos:
        tk.post_processor = processors.TemplateProcessing(
            single=f"{tokens[bos]} $A", pair=f"{tokens[bos]} $A $B", special_tokens=[(tokens[bos], bos)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        bos_token=tokens[bos],
        eos_token=tokens[eos],
        unk_token=model.unk_token,
        pad_token=tokens[eos],
    )
