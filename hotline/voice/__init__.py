"""The offline local voice: eSpeak NG speech served over ElevenLabs' own WebSocket protocol."""
