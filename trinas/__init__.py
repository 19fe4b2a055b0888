"""trinas: trilevel neural architecture search for efficient single-image super-resolution.

The research library: the Genotype format, the plain network inference runs (`TriNet`), data, metrics,
training. It never imports the `upscale` application.
"""

from .allocator import request_huge_pages

request_huge_pages()  # before PyTorch's first allocation, or never (trinas.allocator)

__version__ = "0.1.0"
