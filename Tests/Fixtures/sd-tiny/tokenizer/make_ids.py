# Token ids of the sd-tiny tokenizer (this folder) for more
# prompts than the fixture's four, made with Hugging Face `tokenizers` (0.23.3) from its
# tokenizer.json, padded and truncated as CLIPTokenizer(padding="max_length", max_length=77,
# truncation=True) does: at most 75 tokens between <|startoftext|> and <|endoftext|>, padded
# with <|endoftext|>. Checked first against the fixture's own ids for its four prompts.
import json, sys
import numpy as np
from tokenizers import Tokenizer
from safetensors.numpy import save_file, load_file
from safetensors import safe_open

tok = Tokenizer.from_file(sys.argv[1])
def ids(prompt):
    body = tok.encode(prompt, add_special_tokens=False).ids[:75]
    row = [632] + body + [633]
    return row + [633] * (77 - len(row))

f = safe_open("../io.safetensors", "np")
fixture = f.get_tensor("prompt_input_ids")
prompts = json.loads(f.metadata()["prompts"])
assert (np.array([ids(p) for p in prompts]) == fixture).all(), "does not reproduce the fixture"
extra = [
    "Two   spaces\tand\na newline",
    "don't you're it's we've I'm they'll he'd",
    "digits 1234 and 3.14, punctuation?!... (brackets) [x] {y}",
    "Café naïve résumé — unicode ü ß",
    "UPPER lower MiXeD",
    "  leading and trailing whitespace  ",
    "a " * 100,
    "<|startoftext|>special tokens in text<|endoftext|>",
    "emoji 🙂 and symbols ©®",
]
out = np.array([ids(p) for p in extra], dtype=np.float32)
save_file({"input_ids": out}, "extra-ids.safetensors", metadata={"prompts": json.dumps(extra)})
print(out[:, :20])
