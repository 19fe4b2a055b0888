"""Packaged model folders, each laid out as a Hugging Face Hub model repository."""
