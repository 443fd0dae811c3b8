"""The Gradio app (`rag ui`): chat with sources, uploads, library, collections, settings,
evaluation, and a headless API."""
