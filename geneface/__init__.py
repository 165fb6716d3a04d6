"""geneface: person-specific, audio-driven talking heads (GeneFace, ICLR 2023) on Lightning + Hydra."""

__version__ = "0.1.0"
