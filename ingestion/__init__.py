"""Ingestion: loaders per format, Whisper transcription, chunking, and the incremental pipeline."""
