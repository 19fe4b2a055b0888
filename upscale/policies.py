"""What `upscale video` does with the streams it does not upscale (kept free of PyAV, so the command line
starts fast)."""

AUDIO_CHOICES = ("copy", "reencode", "none")  # copy converts only what the output container cannot hold
SUBTITLE_CHOICES = ("copy", "convert", "none")
