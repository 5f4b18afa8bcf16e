"""zero2gpt.tokens: byte-level BPE, trained, used, saved and loaded (chapter 9)."""

import json
import re
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from zero2gpt.tokens import SPLIT_PATTERN, BPETokenizer, train_bpe

SHAKESPEARE_LIKE = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
                    "First Citizen:\nYou are all resolved rather to die than to famish?\n") * 3


def reference_train(text: str, vocab_size: int, pattern: str | None) -> list[tuple[int, int]]:
    """The merges by the book's definition, recounting everything at every step: slow but plainly right."""
    chunks = re.findall(pattern, text) if pattern is not None else ([text] if text else [])
    words = [list(chunk.encode("utf-8")) for chunk in chunks]
    merges = []
    for new_id in range(256, vocab_size):
        counts = Counter(pair for word in words for pair in zip(word, word[1:]))
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        for number, word in enumerate(words):
            merged, position = [], 0
            while position < len(word):
                if tuple(word[position:position + 2]) == best:
                    merged.append(new_id)
                    position += 2
                else:
                    merged.append(word[position])
                    position += 1
            words[number] = merged
    return merges


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    return train_bpe(SHAKESPEARE_LIKE, 320, progress=False)


# --- the worked example -------------------------------------------------------------------------


def test_the_classic_example_learns_aa_then_ab_then_aaab():
    tokenizer = train_bpe("aaabdaaabac", 259, pattern=None, progress=False)
    assert tokenizer.merges == [(97, 97), (97, 98), (256, 257)]
    assert tokenizer.vocab[256:] == [b"aa", b"ab", b"aaab"]
    assert tokenizer.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]
    assert tokenizer.decode([258]) == "aaab"


def test_training_stops_early_when_no_pair_is_left():
    tokenizer = train_bpe("abab", 1000, pattern=None, progress=False)
    assert tokenizer.merges == [(97, 98), (256, 256)] and tokenizer.vocab_size == 258
    assert train_bpe("", 300, progress=False).vocab_size == 256


# --- round trips and agreement with the definition ----------------------------------------------


@settings(max_examples=150, deadline=None)
@given(text=st.text())
@example(text="")
@example(text="Café 🐱\r\n\t  x_y 12 ½²  e\u0301")
def test_round_trip_of_any_unicode_text(trained, text):
    ids = trained.encode(text)
    assert all(isinstance(i, int) and 0 <= i < trained.vocab_size for i in ids)
    assert trained.decode(ids) == text
    assert trained.decode(torch.tensor(ids, dtype=torch.long)) == text


@settings(max_examples=60, deadline=None)
@given(training=st.text(max_size=60), text=st.text(max_size=60), n_merges=st.integers(0, 30),
       split=st.booleans())
def test_training_and_encoding_match_the_definition_on_any_text(training, text, n_merges, split):
    pattern = SPLIT_PATTERN if split else None
    tokenizer = train_bpe(training, 256 + n_merges, pattern=pattern, progress=False)
    assert tokenizer.merges == reference_train(training, 256 + n_merges, pattern)
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode(tokenizer.encode(training)) == training
    # encoding replays the merges in the order learned, chunk by chunk
    expected = []
    for chunk in (re.findall(pattern, text) if split else [text]):
        ids = list(chunk.encode("utf-8"))
        for new_id, pair in enumerate(tokenizer.merges, start=256):
            merged, position = [], 0
            while position < len(ids):
                if tuple(ids[position:position + 2]) == pair:
                    merged.append(new_id)
                    position += 2
                else:
                    merged.append(ids[position])
                    position += 1
            ids = merged
        expected.extend(ids)
    assert tokenizer.encode(text) == expected


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_the_split_pattern_covers_every_character(text):
    assert "".join(re.findall(SPLIT_PATTERN, text)) == text


def test_training_shortens_the_text_it_learned_from(trained):
    assert len(trained.encode(SHAKESPEARE_LIKE)) < len(SHAKESPEARE_LIKE.encode("utf-8")) / 2
    assert all(not re.search(rb"\S\s", token) for token in trained.vocab), "no token crosses a word's edge"


def test_ids_that_cut_a_character_decode_to_the_replacement_character():
    tokenizer = BPETokenizer()
    cat = tokenizer.encode("🐱")
    assert len(cat) == 4 and tokenizer.decode(cat[:2]) == "\ufffd"


# --- saving and loading ---------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path, trained):
    path = tmp_path / "bpe.json"
    trained.save(path)
    loaded = BPETokenizer.load(str(path))
    assert loaded.merges == trained.merges and loaded.pattern == trained.pattern
    assert loaded.vocab == trained.vocab
    assert loaded.encode(SHAKESPEARE_LIKE) == trained.encode(SHAKESPEARE_LIKE)
    no_pattern = BPETokenizer([(97, 97)])
    no_pattern.save(tmp_path / "plain.json")
    assert BPETokenizer.load(tmp_path / "plain.json").pattern is None


@pytest.mark.parametrize("content", [
    b"To be, or not to be",  # not JSON
    b"\xff\xfe\x00binary",  # not even UTF-8
    b"[1, 2, 3]",  # JSON, but not an object
    json.dumps({"model": {"type": "BPE"}}).encode(),  # someone else's tokenizer
    json.dumps({"format": "zero2gpt.BPETokenizer", "version": 2, "merges": []}).encode(),  # a future version
])
def test_loading_a_file_that_is_not_a_saved_tokenizer_is_a_clear_error(tmp_path, content):
    path = tmp_path / "other.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"other\.json is not a saved BPETokenizer"):
        BPETokenizer.load(path)


def test_loading_a_saved_file_with_broken_merges_names_the_merge(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"format": "zero2gpt.BPETokenizer", "version": 1, "pattern": None,
                                "merges": [[97, 97], [97, 999]]}))
    with pytest.raises(ValueError, match=r"merge 1 must be a pair of ids from 0 to 256; got \(97, 999\)"):
        BPETokenizer.load(path)


def test_loading_a_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError):
        BPETokenizer.load(tmp_path / "nowhere.json")


# --- errors at the edge ---------------------------------------------------------------------------


@pytest.mark.parametrize("vocab_size", [255, 0, -1, 300.0, "300", True, None])
def test_vocab_size_must_be_an_integer_of_at_least_256(vocab_size):
    with pytest.raises(ValueError, match=rf"vocab_size must be an integer >= 256; got {re.escape(repr(vocab_size))}"):
        train_bpe("some text", vocab_size, progress=False)


@pytest.mark.parametrize("text", [b"bytes", None, ["a", "b"], 42])
def test_text_must_be_a_str(trained, text):
    with pytest.raises(TypeError, match=rf"text must be a str; got {type(text).__name__}"):
        trained.encode(text)
    with pytest.raises(TypeError, match="text must be a str"):
        train_bpe(text, 300, progress=False)


def test_a_lone_surrogate_is_named_with_its_position(trained):
    with pytest.raises(ValueError, match=r"character '\\ud800' at position 2 cannot be written in UTF-8"):
        trained.encode("ab\ud800c")
    with pytest.raises(ValueError, match=r"position 0 cannot be written in UTF-8"):
        train_bpe("\udfff", 300, progress=False)


@pytest.mark.parametrize("bad", [320, -1, 2.0, True, "a"])
def test_decoding_an_unknown_id_names_it_its_position_and_the_range(trained, bad):
    with pytest.raises(ValueError, match=rf"id {re.escape(repr(bad))} at position 1 is not in the vocabulary: "
                                         r"ids are integers from 0 to 319"):
        trained.decode([97, bad])


def test_decode_accepts_integer_arrays_and_refuses_two_dimensional_ones(trained):
    ids = trained.encode("Speak, speak.")
    assert trained.decode(np.array(ids)) == "Speak, speak."
    with pytest.raises(ValueError, match=r"ids must be 1-D; got a tensor of shape \(1, \d+\)"):
        trained.decode(torch.tensor([ids]))


@pytest.mark.parametrize("merges, message", [
    ([(97, 256)], r"merge 0 must be a pair of ids from 0 to 255; got \(97, 256\)"),
    ([(97,)], r"merge 0 must be a pair of ids"),
    ([(97, 98), "ab"], r"merge 1 must be a pair of ids from 0 to 256; got 'ab'"),
    ([(97, True)], r"merge 0 must be a pair of ids"),
    ([(97, 98), (97, 98)], r"the pair \(97, 98\) is merged twice"),
])
def test_a_broken_merge_list_is_refused(merges, message):
    with pytest.raises(ValueError, match=message):
        BPETokenizer(merges)


def test_a_bad_pattern_is_refused():
    with pytest.raises(ValueError, match=r"pattern '\(' is not a regular expression"):
        BPETokenizer(pattern="(")
    with pytest.raises(TypeError, match="pattern must be a str"):
        BPETokenizer(pattern=3)
    with pytest.raises(ValueError, match=r"the split pattern '\\\\w\+' skips ' ' at position 5"):
        train_bpe("hello world", 300, pattern=r"\w+", progress=False)
    with pytest.raises(ValueError, match=r"skips '!' at position 2"):
        BPETokenizer(pattern=r"[a-z]+").encode("ab!")


def test_the_progress_bar_can_be_shown(capsys):
    tokenizer = train_bpe(SHAKESPEARE_LIKE, 300, progress=True)
    assert tokenizer.vocab_size == 300
    assert "BPE merges" in capsys.readouterr().err
