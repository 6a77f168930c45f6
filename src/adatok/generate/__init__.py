"""Generation: an autoregressive transformer over token sequences of any tokenizer (torch)."""
