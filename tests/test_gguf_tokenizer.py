"""The SentencePiece-BPE tokenizer rebuilt from a GGUF, on a small GGUF written here."""

import numpy as np
from gguf import GGUFWriter

from core.models.gguf_tokenizer import spm_bpe_tokenizer

# ids: 0 <unk>, 1 <eos>, 2 <bos>, then pieces; score = -merge rank (higher merges first)
TOKENS = ["<unk>", "<eos>", "<bos>", "▁", "a", "b", "c", "ab", "▁ab", "abc", "bc", "\n\n"]
SCORES = [-1000, -1000, -1000, -9, -10, -11, -12, -1, -2, -3, -5, -1000]
TYPES = [2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4]


def write_gguf(path):
    w = GGUFWriter(str(path), "gemma3")
    w.add_tokenizer_model("llama")
    w.add_token_list(TOKENS)
    w.add_token_scores(SCORES)
    w.add_token_types(TYPES)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_tensor("dummy", np.zeros(1, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_merges_follow_score_priority_and_bos_is_added(tmp_path):
    path = tmp_path / "t.gguf"
    write_gguf(path)
    tok = spm_bpe_tokenizer(path)
    # "abc": ab (rank 1) merges before bc (rank 5), then ab+c -> abc (rank 3)
    assert tok("abc")["input_ids"] == [2, 9]
    # " ab": ▁ + ab -> ▁ab; a user-defined token is matched whole
    assert tok(" ab\n\nc")["input_ids"] == [2, 8, 11, 6]
    assert tok.decode([2, 8, 11, 6], skip_special_tokens=True) == " ab\n\nc"
    assert tok.bos_token == "<bos>" and tok.eos_token == "<eos>"
