"""hotline: a phone-line voice bridge from ElevenLabs streaming TTS to Twilio Media Streams.

Layers (imports only point downwards):

    hotline.server  the I/O shell: FastAPI routes, sockets, settings, tasks
    hotline.core    sans-I/O protocol objects and the per-call state machine
    hotline.codec   the compiled codec (libmpg123 + C kernels): bytes in, µ-law out
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
