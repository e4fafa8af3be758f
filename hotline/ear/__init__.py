"""The offline local ear: pocketsphinx speech-to-text served over ElevenLabs Scribe's and
Deepgram's own WebSocket protocols (``python -m hotline.ear --port N``)."""
