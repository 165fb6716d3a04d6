"""Pure-torch NeRF building blocks (encodings, rays, occupancy, rendering) for the RAD-NeRF stages."""
