"""zero2gpt.compression (chapter 17): the arithmetic coder, quantised frequencies, compressors, two-part codes."""

import math
import random

import numpy as np
import pytest
import torch

from zero2gpt.compression import (
    COMPRESSORS,
    MAX_TOTAL,
    ArithmeticDecoder,
    ArithmeticEncoder,
    arithmetic_decode,
    arithmetic_encode,
    compressor_bits_per_char,
    cumulative_frequencies,
    description_length,
    next_token_probabilities,
    quantised_frequencies,
)
from zero2gpt.gpt import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def fixed(frequencies):
    """A model that gives the same frequencies at every step."""
    return lambda prefix: frequencies


class Counting:
    """An adaptive model: each symbol's frequency is 1 plus how often it occurred so far."""

    def __init__(self, vocab_size):
        self.vocab_size = vocab_size

    def __call__(self, prefix):
        counts = [1] * self.vocab_size
        for symbol in prefix:
            counts[symbol] += 1
        return counts


def ideal_bits(symbols, model):
    """sum of -log2 p(symbol) under the model's frequencies: what a perfect coder would write."""
    total = 0.0
    for number, symbol in enumerate(symbols):
        frequencies = model(list(symbols[:number]))
        total -= math.log2(frequencies[symbol] / sum(frequencies))
    return total


def round_trip(symbols, make_model):
    data = arithmetic_encode(symbols, make_model())
    assert arithmetic_decode(data, len(symbols), make_model()) == list(symbols)
    return data


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_symbols_round_trip_within_a_few_bytes_of_the_ideal(seed):
    rng = random.Random(seed)
    frequencies = [rng.randint(1, 50) for _ in range(rng.randint(2, 70))]
    symbols = rng.choices(range(len(frequencies)), weights=frequencies, k=1500)
    data = round_trip(symbols, lambda: fixed(frequencies))
    assert 8 * len(data) <= ideal_bits(symbols, fixed(frequencies)) + 16


def test_adaptive_counting_model_round_trips_within_a_few_bytes_of_the_ideal():
    rng = random.Random(3)
    symbols = rng.choices(range(5), weights=[10, 5, 2, 1, 1], k=800)
    data = round_trip(symbols, lambda: Counting(5))
    assert 8 * len(data) <= ideal_bits(symbols, Counting(5)) + 16


def test_empty_input_round_trips():
    data = round_trip([], lambda: fixed([1, 1]))
    assert len(data) <= 1
    assert arithmetic_decode(b"", 0, fixed([1, 1])) == []


def test_single_symbol_alphabet_costs_almost_nothing():
    data = round_trip([0] * 1000, lambda: fixed([1]))
    assert len(data) <= 1, "a certain symbol carries no information"


@pytest.mark.parametrize("n", [1, 2, 3, 8, 9])
def test_short_inputs_round_trip(n):
    round_trip([n % 3 for n in range(n)], lambda: fixed([3, 2, 1]))


def test_a_long_repeat_with_an_adaptive_model_gets_cheap():
    symbols = [1] * 3000
    data = round_trip(symbols, lambda: Counting(4))
    assert 8 * len(data) <= ideal_bits(symbols, Counting(4)) + 16
    assert len(data) < 10, "after a while, the repeated symbol is nearly certain"


def test_near_certain_and_nearly_impossible_symbols():
    frequencies = [MAX_TOTAL - 2, 1, 1]  # symbols 1 and 2 have probability 1 / 2**24
    symbols = [0] * 500 + [1] + [0] * 500 + [2, 2] + [0] * 10
    data = round_trip(symbols, lambda: fixed(frequencies))
    assert 8 * len(data) <= ideal_bits(symbols, fixed(frequencies)) + 16
    assert 8 * len(data) >= 3 * 24 - 2, "each rare symbol costs about 24 bits"


def test_the_encoder_and_decoder_classes_step_by_step():
    encoder = ArithmeticEncoder()
    steps = [(0, [1, 1]), (2, [1, 2, 3]), (1, [5, 5])]
    for symbol, frequencies in steps:
        encoder.encode(symbol, frequencies)
    decoder = ArithmeticDecoder(encoder.finish())
    assert [decoder.decode(frequencies) for _, frequencies in steps] == [symbol for symbol, _ in steps]


def test_a_zero_frequency_is_allowed_for_symbols_that_do_not_occur():
    round_trip([0, 2, 2, 0], lambda: fixed([1, 0, 3]))


@pytest.mark.parametrize("symbol", [3, -1, 1.0, "a"])
def test_a_symbol_outside_the_alphabet_is_a_clear_error(symbol):
    with pytest.raises(ValueError, match=rf"symbol {symbol!r} is outside the alphabet 0\.\.2"):
        ArithmeticEncoder().encode(symbol, [1, 1, 1])
    with pytest.raises(ValueError, match="outside the alphabet"):
        arithmetic_encode([0, symbol], fixed([1, 1, 1]))


def test_coding_a_symbol_of_frequency_zero_is_a_clear_error():
    with pytest.raises(ValueError, match="symbol 1 has frequency 0"):
        ArithmeticEncoder().encode(1, [1, 0, 1])


@pytest.mark.parametrize("frequencies, message", [([0, 0], "sum to a number from 1 to 16,777,216; got 0"),
                                                  ([], "got 0"),
                                                  ([1, -1, 2], "each frequency must be an integer >= 0; got -1"),
                                                  ([0.5, 1], "got 0.5"),
                                                  ([MAX_TOTAL, 1], "got 16,777,217")])
def test_bad_frequencies_are_a_clear_error(frequencies, message):
    with pytest.raises(ValueError, match=message):
        cumulative_frequencies(frequencies)
    with pytest.raises(ValueError, match=message):
        ArithmeticDecoder(b"\x12\x34").decode(frequencies)


def test_bad_data_and_lengths_are_clear_errors():
    with pytest.raises(ValueError, match="data must be bytes; got str"):
        ArithmeticDecoder("abc")
    with pytest.raises(ValueError, match="n must be an integer >= 0; got -1"):
        arithmetic_decode(b"", -1, fixed([1, 1]))


def test_quantised_frequencies_sum_to_the_total_and_keep_every_symbol():
    probabilities = np.array([0.999999, 1e-12, 0.0, 1e-6 - 1e-12])
    frequencies = quantised_frequencies(probabilities, total=1 << 16)
    assert sum(frequencies) == 1 << 16 and min(frequencies) >= 1
    assert frequencies[0] == max(frequencies)
    assert quantised_frequencies(torch.tensor([1.0, 3.0]), total=8) == [2, 6], "unnormalised, and a tensor"


@pytest.mark.parametrize("seed", range(5))
def test_quantisation_costs_at_most_the_bound(seed):
    rng = np.random.default_rng(seed)
    probabilities = rng.dirichlet(np.full(65, 0.1))
    total = 1 << 12
    frequencies = np.array(quantised_frequencies(probabilities, total))
    extra = -np.log2(frequencies / total) + np.log2(probabilities)
    assert (extra <= -math.log2(1 - 65 / total) + 1e-9).all()


@pytest.mark.parametrize("probabilities, total, message", [([], 16, "non-empty"), ([[0.5, 0.5]], 16, "1-D"),
                                                           ([0.5, float("nan")], 16, "finite"),
                                                           ([0.5, -0.1], 16, ">= 0"), ([0, 0], 16, "positive sum"),
                                                           ([0.5, 0.5, 0.0], 2, "total must be an integer >= 3"),
                                                           ([1.0], MAX_TOTAL + 1, "total must be")])
def test_bad_probabilities_are_a_clear_error(probabilities, total, message):
    with pytest.raises(ValueError, match=message):
        quantised_frequencies(probabilities, total)


def test_compressor_bits_per_char_scores_what_the_text_adds():
    train = "the cat sat on the mat. " * 200
    repeat = compressor_bits_per_char(train, "the cat sat on the mat. " * 4, "bz2")
    noise = compressor_bits_per_char(train, "".join(random.Random(0).choices("abcdefghijklmnopqrstuvwxyz", k=2000)),
                                     "lzma")
    assert repeat < noise
    assert 4 < noise < 6, "random letters need about log2(26) = 4.7 bits each"
    for name in COMPRESSORS:
        assert math.isfinite(compressor_bits_per_char("abc" * 100, "abcabc", name))


@pytest.mark.parametrize("train, val, name, message", [("a", "b", "gzip", "name must be one of 'zlib', 'bz2', 'lzma'"),
                                                       ("a", "", "zlib", "val not empty"),
                                                       (b"a", "b", "zlib", "must be strings")])
def test_compressor_bits_per_char_checks_its_arguments(train, val, name, message):
    with pytest.raises(ValueError, match=message):
        compressor_bits_per_char(train, val, name)


def test_description_length_adds_the_model_to_the_data():
    assert description_length(1000.0, 10) == 1000.0 + 160
    assert description_length(1000.0, 10, bits_per_parameter=4) == 1040.0
    assert description_length(0, 0) == 0.0
    with pytest.raises(ValueError, match="n_parameters must be an integer >= 0; got -1"):
        description_length(1.0, -1)
    with pytest.raises(ValueError, match="data_bits"):
        description_length(-1.0, 1)


def test_a_tiny_gpt_drives_the_coder_and_decodes_exactly():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
    symbols = [random.Random(1).randrange(7) for _ in range(60)]

    def model_frequencies(prefix):
        return quantised_frequencies(next_token_probabilities(model, prefix, 8, 7))

    data = arithmetic_encode(symbols, model_frequencies)
    assert arithmetic_decode(data, len(symbols), model_frequencies) == symbols
    first = next_token_probabilities(model, [], 8, 7)
    assert np.allclose(first, 1 / 7) and first.dtype == np.float64
    long_prefix = next_token_probabilities(model, symbols[:30], 8, 7)
    assert np.allclose(long_prefix, next_token_probabilities(model, symbols[22:30], 8, 7)), "only the last block_size"
    assert abs(long_prefix.sum() - 1) < 1e-12
    with pytest.raises(ValueError, match="the model gives 7 logits, but vocab_size is 5"):
        next_token_probabilities(model, [1], 8, 5)
