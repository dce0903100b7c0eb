"""The index folder: its on-disk format (manifest, generations, documents table), writing and loading it, and the user cache."""
