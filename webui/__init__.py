"""The browser shell: the Gradio app, its page assets, shared widgets and what it serves (see ARCHITECTURE.md)."""
