"""zero2gpt.alignment: the instruction format, the gold judge, the reward model, KL, REINFORCE and DPO."""

import math
import random

import pytest
import torch
from torch import nn

from zero2gpt.alignment import (DICTIONARY, MAX_ANSWER_CHARS, TOPICS, PreferencePair, RewardModel, answer_batch,
                                answer_mask, answer_scores, dpo_loss, gold_reward, instruction_answer,
                                instruction_dataset, instruction_prompt, kl_estimate, preference_pairs,
                                reinforce_loss, sample_answers, sequence_log_probs, train_dpo, train_policy,
                                train_reward_model, well_formed)
from zero2gpt.gpt import GPT, GPTConfig
from zero2gpt.language import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOKENIZER = CharTokenizer("\n " + "".join(sorted(set(instruction_dataset(200)))) + "QA:")


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(TOKENIZER.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16, dropout=0.0)).eval()


def test_the_dataset_is_seeded_and_its_answers_are_well_formed():
    text = instruction_dataset(50, seed=3)
    assert text == instruction_dataset(50, seed=3) != instruction_dataset(50, seed=4)
    examples = [example for example in text.split("\n\n") if example]
    assert len(examples) == 50
    for example in examples:
        question, answer = example.split("\nA: ")
        assert question.startswith("Q: write about the ") and question[-4:] in TOPICS
        assert well_formed(answer + "\n") and len(answer.split()) <= 6
    assert all(len(topic) == 4 for topic in TOPICS), "questions of one length stack into one batch"
    assert len(instruction_prompt("moon")) + MAX_ANSWER_CHARS <= 64, "a question and its answer fit block 64"


def test_well_formed():
    assert well_formed("the moon sat by the spoon\nQ: more")
    assert not well_formed("the moon sat by the spoon")
    assert not well_formed("the moon sat by the spoooon\n")
    assert not well_formed("the  moon\n") and not well_formed("\n") and not well_formed(" moon\n")
    assert not well_formed("moon " * 8 + "\n"), "a newline must come within MAX_ANSWER_CHARS characters"
    assert DICTIONARY >= set(TOPICS)


@pytest.mark.parametrize("sample, expected", [
    ("the moon sat by the spoon\n", 2.0),  # topic and rhyme
    ("the dog sat by the spoon\n", 1.0),  # rhyme only
    ("a dog sat by the fire\n", 0.0),
    ("the moon sat by the moon\n", 1.0),  # a word does not rhyme with itself
    ("a moon sat on a moon by a spoon\n", 1 + 1 - 3),  # nine words: three too many
    ("the moon sat by the spoon", 0.0),  # never ended
    ("the Moon sat by the spoon\n", 0.0),  # a word out of the dictionary
])
def test_gold_reward_by_hand(sample, expected):
    assert gold_reward("moon", sample) == expected


def test_answer_scores_are_means():
    scores = answer_scores(["moon", "king"], ["the moon sat by the spoon\n", "a king\nthe"])
    assert scores == {"gold": 1.5, "well_formed": 1.0, "words": 4.0}


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="sun"):
        gold_reward("sun", "the sun\n")
    with pytest.raises(ValueError, match="sun"):
        instruction_answer("sun", random.Random(0))
    with pytest.raises(ValueError, match="n_examples"):
        instruction_dataset(0)
    with pytest.raises(ValueError, match="1 topics, 2 samples"):
        answer_scores(["moon"], ["a\n", "b\n"])
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0.0)
    with pytest.raises(ValueError, match="one line"):
        answer_batch(TOKENIZER, ["moon"], ["moon " * 8])
    with pytest.raises(ValueError, match="shape"):
        kl_estimate(torch.zeros(2), torch.zeros(3))
    model = tiny_gpt()
    with pytest.raises(ValueError, match="beta"):
        train_policy(model, RewardModel(model), TOKENIZER, beta=-1.0, steps=1)
    with pytest.raises(ValueError, match="multiple of 8"):
        train_policy(model, RewardModel(model), TOKENIZER, beta=0.0, steps=1, batch_size=12)
    with pytest.raises(ValueError, match="n_pairs"):
        preference_pairs(model, TOKENIZER, 0)
    with pytest.raises(TypeError, match="GPT"):
        RewardModel(nn.Linear(2, 2))


def test_answer_mask_covers_the_answer_and_its_first_newline():
    ids = torch.tensor([[5, 5, 1, 2, 0, 3, 0], [5, 5, 1, 1, 1, 1, 1]])
    mask = answer_mask(ids, start=2, newline=0)
    assert mask.tolist() == [[False, False, True, True, True, False, False],
                             [False, False, True, True, True, True, True]]


class FixedLogits(nn.Module):
    """Uniform predictions over ``vocab`` ids: every id has log-probability -log(vocab)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, ids):
        return torch.zeros(*ids.shape, self.vocab)


def test_sequence_log_probs_by_hand():
    ids = torch.tensor([[0, 1, 2, 3]])
    mask = torch.tensor([[False, False, True, True]])  # ids 2 and 3 count, each log(1/4)
    assert torch.allclose(sequence_log_probs(FixedLogits(4), ids, mask), torch.tensor([2 * math.log(1 / 4)]))


def test_kl_estimate_is_zero_for_one_model_positive_for_two_and_a_difference():
    assert kl_estimate(torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])).tolist() == [0.5, -1.0]
    reference = tiny_gpt()
    ids, start = sample_answers(reference, TOKENIZER, ["moon"] * 8, generator=torch.Generator().manual_seed(0))
    mask = answer_mask(ids, start, TOKENIZER.encode("\n")[0])
    with torch.no_grad():
        same = kl_estimate(sequence_log_probs(reference, ids, mask), sequence_log_probs(tiny_gpt(), ids, mask))
    assert torch.equal(same, torch.zeros(8))
    policy = tiny_gpt()
    with torch.no_grad():
        policy.token_embedding.weight.mul_(40)  # sharp predictions: far from the near-uniform reference
        ids, start = sample_answers(policy, TOKENIZER, ["moon"] * 256, generator=torch.Generator().manual_seed(1))
        mask = answer_mask(ids, start, TOKENIZER.encode("\n")[0])
        kl = kl_estimate(sequence_log_probs(policy, ids, mask), sequence_log_probs(reference, ids, mask))
    assert kl.mean() > 1.0


def test_reward_model_shape_and_its_loss_falls_on_a_separable_set():
    model = tiny_gpt()
    reward_model = RewardModel(model)
    ids, mask = answer_batch(TOKENIZER, ["moon", "king", "rose"], ["the moon", "a dog sat", "rose"])
    assert reward_model(ids, mask).shape == (3,)
    assert torch.equal(reward_model(ids, mask), torch.zeros(3)), "a zero head: every reward starts at 0"
    rng = random.Random(0)
    pairs = [PreferencePair(topic, f"the {topic} sat", f"the {rng.choice(['dog', 'fox'])} sat") for topic in TOPICS]

    def loss(rm):
        from zero2gpt.alignment import reward_model_loss
        topics = [pair.topic for pair in pairs]
        with torch.no_grad():
            return float(reward_model_loss(rm(*answer_batch(TOKENIZER, topics, [p.chosen for p in pairs])),
                                           rm(*answer_batch(TOKENIZER, topics, [p.rejected for p in pairs]))))

    assert loss(reward_model) == pytest.approx(math.log(2))
    trained = train_reward_model(model, TOKENIZER, pairs, steps=30, learning_rate=3e-3, batch_size=8)
    assert loss(trained) < 0.5 * math.log(2)
    assert not trained.training and all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                          tiny_gpt().state_dict().values()))


def test_dpo_loss_by_hand():
    policy_chosen, policy_rejected = torch.tensor([-9.0, -5.0]), torch.tensor([-12.0, -5.0])
    reference_chosen, reference_rejected = torch.tensor([-10.0, -5.0]), torch.tensor([-11.0, -5.0])
    # margins 2 and 0: losses log(1 + e^-(beta * 2)) and log 2
    for beta in (1.0, 0.5):
        expected = (math.log(1 + math.exp(-2 * beta)) + math.log(2)) / 2
        assert float(dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta)) \
            == pytest.approx(expected)


def test_reinforce_loss_by_hand():
    log_probs = torch.tensor([-3.0, -5.0], requires_grad=True)
    loss = reinforce_loss(log_probs, torch.tensor([1.0, 0.0]))
    advantage = 0.5 / math.sqrt(0.5)  # (1 - 0.5) over the standard deviation of [1, 0]
    assert float(loss.detach()) == pytest.approx(-(advantage * -3.0 - advantage * -5.0) / 2, rel=1e-5)
    loss.backward()
    assert log_probs.grad[0] < 0 < log_probs.grad[1], "a step raises the rewarded sequence's probability"


def test_train_policy_and_train_dpo_leave_the_model_unchanged_and_log_every_step():
    model = tiny_gpt()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    policy, log = train_policy(model, RewardModel(model), TOKENIZER, beta=0.1, steps=2, batch_size=8)
    assert len(log.proxy) == len(log.gold) == len(log.kl) == len(log.well_formed) == 2
    pairs = [PreferencePair("moon", "the moon sat", "a dog sat")] * 4
    dpo = train_dpo(model, TOKENIZER, pairs, beta=1.0, steps=2, batch_size=4)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert policy is not model and dpo is not model
