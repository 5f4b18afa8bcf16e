"""Small things several test modules build: a character corpus from a short text."""

import torch

from zero2gpt.language import CharCorpus, CharTokenizer


def tiny_char_corpus(text: str, n_train: int) -> CharCorpus:
    """A CharCorpus of ``text`` in its own characters' ids: the first ``n_train`` ids to train on, the rest
    to validate on."""
    tokenizer = CharTokenizer(text)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    return CharCorpus(text, tokenizer, ids[:n_train], ids[n_train:])
