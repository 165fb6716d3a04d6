"""Offline dataset producers: a speaker video or a clip corpus → the data contract (landmarks → pose,
masks, background, report). Reads media through geneface.media. No Lightning/Hydra: the commands
that configure it are geneface/process/."""
