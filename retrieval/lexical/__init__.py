"""The BM25 stack: text analysis (English, Chinese), postings, BM25 weights and the lexical engines."""
