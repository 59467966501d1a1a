"""Builders for the tiny offline models the model tests use (importable by tests, unlike conftest)."""

from __future__ import annotations

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
WORDS = (
    "the a an and or but if then because so of to in on at by for with from about as into over after "
    "is are was were be been has have had do does did can could will would should may might must "
    "I you he she it we they me him her us them my your his its our their this that these those "
    "what which who when where why how yes no not all any some many few more most other such only "
    "capital city country river mountain ocean paris france berlin germany rome italy madrid spain "
    "water fire earth air sun moon star planet light dark day night time year week hour minute "
    "one two three four five six seven eight nine ten hundred thousand number sum add plus minus "
    "cat dog bird fish horse cow sheep mouse lion tiger animal tree flower grass leaf seed root "
    "red blue green yellow black white orange purple color big small long short old new good bad "
    "answer question explain describe list write tell say think know learn teach help please thanks "
    "hello world assistant user system model language data train test score reward prefer choose "
    "book story poem song word sentence letter name people person child friend family home school "
    "eat drink sleep run walk talk read play work make take give find see look come go get"
).split()


def _corpus() -> list[str]:
    """Deterministic sentences covering the word list, digits and punctuation, for BPE training."""
    import random

    rng = random.Random(0)
    lines = [" ".join(WORDS[i : i + 12]) for i in range(0, len(WORDS), 12)]
    for _ in range(300):
        words = rng.sample(WORDS, rng.randint(3, 10))
        lines.append(" ".join(words).capitalize() + rng.choice([".", "?", "!", ",", ":"]))
    lines += ["0 1 2 3 4 5 6 7 8 9 10 12 42 100", "user\nassistant\nsystem\n"]
    return lines


def build_tokenizer(path):
    """Train a byte-level BPE tokenizer in memory and save it with ChatML special tokens and template to `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    # No pad token on purpose: LocalModel must fall back to EOS, as for SmolLM2-style checkpoints without one.
    tokenizer.chat_template = CHATML_TEMPLATE
    tokenizer.save_pretrained(path)
    return path


def build_tiny_model(tokenizer, seed: int = 0, dtype=None):
    """A 2-layer Llama with hidden size 32 over the tokenizer's vocabulary, deterministic for `seed`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        # Random init at 0.02 gives near-uniform next-token distributions; a wider init makes sampling and greedy
        # decoding clearly different and keeps argmax ties away.
        initializer_range=0.5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(dtype or torch.float64)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    return model.eval()


def save_lora(base_dir, out, seed: int, targets: list[str]):
    """Save a LoRA adapter with random, non-zero A and B, so it really changes the model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    torch.manual_seed(seed)
    # init_lora_weights=False draws B randomly too; the default (B = 0) would be a no-op adapter.
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out
