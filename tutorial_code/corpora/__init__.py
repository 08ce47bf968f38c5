"""Text the book trains on, generated deterministically from a seed: nothing is downloaded.

* :func:`tiny_stories`: four-sentence children's stories from a small grammar (chapter 0 and
  the training chapters);
* :func:`english_text` and :func:`chinese_text`: larger, more varied prose with Zipf-like word
  frequencies (the tokenizer chapter, the scaling and data chapter).

The grammars' word lists are package data (``words/en.txt``, ``words/zh.txt``).
"""

from tutorial_code.corpora.chinese import chinese_text
from tutorial_code.corpora.english import english_text
from tutorial_code.corpora.stories import tiny_stories

__all__ = ["chinese_text", "english_text", "tiny_stories"]
