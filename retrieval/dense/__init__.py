"""The dense stack: encoders, token batches, long-text windows, the embedding cache, device placement and the vector stores."""
