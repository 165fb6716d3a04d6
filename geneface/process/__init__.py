"""Offline feature extraction (video io, audio features, landmarks, pose, masks). No Lightning/Hydra."""
