"""zero2gpt: the library that the book Zero to GPT builds, one chapter at a time."""

__version__ = "0.1.0"
