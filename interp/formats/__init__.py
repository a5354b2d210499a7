"""On-disk checkpoint layouts: what a folder or file holds, read without importing torch where possible.

One module per layout. ``hf``: Hugging Face model folders (``config.json`` + weights).
"""
