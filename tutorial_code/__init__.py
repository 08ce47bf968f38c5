"""Code for the book *LLM Foundations / 大模型基本功*.

One module per topic; every chapter's notebook imports from here and every formula is
tested in ``tests/``.
"""

__version__ = "0.1.0"
