"""The optional Triton backend of the NeRF ops (GPU; CPU through TRITON_INTERPRET=1 for the tests). The
torch code in geneface.nerf stays the reference and the fallback: triton is imported only by backend.py,
on the first forward that asks for it, never at import."""
