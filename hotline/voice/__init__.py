"""Deprecated: the TTS stand-in moved to :mod:`hotline.tts_standin` ("voice" meant five things).

A thin re-export shim, kept until every importer has moved: ``hotline.voice.server`` gives the
old names (``LocalVoice``, ``VoiceConfig``, ``VoiceStats``), and ``hotline.voice.espeak`` /
``encode`` / ``synth`` / ``textbuf`` are the very modules of the new package.
"""
