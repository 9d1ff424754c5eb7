"""Tiny offline models: random weights from a config and a tokenizer trained in-process.

No network and no files: the tokenizer is a byte-level BPE trained on a small built-in English
corpus with the ``tokenizers`` library (deterministic), and the model is a Llama-style causal
LM whose weights come from a seeded RNG. They are the embedded default for the tests, the
benchmark CLI and the app when no checkpoint is available, and keep the real Hugging Face code
paths (generation, cache, attention interface) in play.
"""

from __future__ import annotations

import torch

# Special tokens shared by every tiny model; ids follow this order (pad=0, bos=1, eos=2).
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<s>", "</s>"
CHAT_ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# A simple role-tagged template: "<s><|user|>\n...</s>\n<|assistant|>\n".
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

_CORPUS = """\
The quick brown fox jumps over the lazy dog. A small red ball rolls across the table.
What is happening in this video? Describe the scene in one sentence. The camera pans to the left.
A person walks into the room, picks up a cup of coffee and sits down by the window.
The weather today is sunny with a light breeze; tomorrow it may rain in the afternoon.
Key and value vectors are compressed with a random rotation and a scalar codebook.
How many objects are moving? There are two circles and one square on a dark background.
The blue square moves from the top left corner to the bottom right corner of the frame.
Please answer briefly. Yes, no, maybe. One, two, three, four, five, six, seven, eight, nine, ten.
She said that the model answers questions about short clips, images and plain text.
In the beginning the screen is black, then a green triangle appears and slowly grows.
"""


def build_offline_tokenizer(vocab_size: int = 512, extra_special_tokens: tuple[str, ...] = ()):
    """Train a byte-level BPE tokenizer offline and wrap it as a ``PreTrainedTokenizerFast``.

    Byte-level, so any text round-trips. Deterministic: the same arguments give the same
    vocabulary. Special tokens: ``<pad>`` (id 0), ``<s>`` (bos, 1), ``</s>`` (eos, 2), the chat
    role tokens, then ``extra_special_tokens`` (e.g. image placeholders of a VLM) in order.
    ``vocab_size`` is an upper bound; the small corpus yields fewer merges.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 300:
        raise ValueError(f"vocab_size: expected an int >= 300 (256 bytes + specials), got {vocab_size!r}")
    extra_special_tokens = tuple(extra_special_tokens)
    if not all(isinstance(t, str) and t for t in extra_special_tokens):
        raise TypeError(f"extra_special_tokens: expected non-empty strings, got {extra_special_tokens!r}")
    specials = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *CHAT_ROLE_TOKENS, *extra_special_tokens]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=list(CHAT_ROLE_TOKENS) + list(extra_special_tokens),
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_llama(seed: int = 0, **config_overrides):
    """A tiny random Llama-style causal LM and its offline tokenizer: ``(model, tokenizer)``.

    Defaults: 2 layers, hidden 256, 4 query heads and 2 KV heads (GQA) of ``head_dim`` 128,
    vocabulary = the tokenizer's. Weights are drawn from ``seed`` without touching the global
    RNG; the model is in eval mode, fp32, on CPU, with SDPA attention. ``config_overrides``
    are passed to ``LlamaConfig`` (e.g. ``num_hidden_layers=4``, ``head_dim=64``).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    tokenizer = build_offline_tokenizer()
    params = dict(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=128,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    params.update(config_overrides)
    config = LlamaConfig(**params)
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
