"""Inference pieces (wav → landmarks → frames → mp4), plain functions without Lightning or Hydra."""
