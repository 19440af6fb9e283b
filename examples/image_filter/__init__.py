"""The image-filter example: every image x filter pair as one pass of a parallel batch flow."""
