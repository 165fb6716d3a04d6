"""The processing commands (thin Hydra entries): `python -m geneface.process` (a speaker video) and
`python -m geneface.process.corpus` (a clip corpus). The work is in geneface.processing."""
