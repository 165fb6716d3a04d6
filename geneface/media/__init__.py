"""Media I/O and features, below every producer and consumer of datasets: the ffmpeg binary, video
probing and frames, audio in and out, the mp4 writer, audio features (mel, f0, HuBERT), the face-mesh
runner and the input errors they raise. Imports only geneface.utils and the data contract
(geneface.data.contract, geneface.data.landmarks). No Lightning/Hydra."""
