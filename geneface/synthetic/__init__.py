"""Synthetic data with a known answer: a speaker dataset and a clip corpus from a parametric head.

`python -m geneface.synthetic` writes both (configs/synthetic.yaml); the functions below are
what tests and the demo call directly.
"""

from geneface.synthetic.corpus import write_synthetic_corpus
from geneface.synthetic.speaker import write_synthetic_speaker

__all__ = ["write_synthetic_corpus", "write_synthetic_speaker"]
