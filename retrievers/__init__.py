"""Retrieval: the chunk catalog, BM25 (rank-bm25 scoring), the Milvus dense store, and fusion."""
