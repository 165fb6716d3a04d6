"""The optional C++/OpenMP backend of the NeRF ops (CPU). The torch code in geneface.nerf stays the
reference and the fallback: this package is imported only where a module asks for
`implementation="cpp"`, and it builds its extension on first use, never at import."""
