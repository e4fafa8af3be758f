"""The TTS stand-in: eSpeak NG speaking ElevenLabs' text-to-speech WebSocket protocols on
127.0.0.1, so the real client path runs offline (``hotline tts-standin``)."""
