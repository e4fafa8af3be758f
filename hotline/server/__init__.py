"""The I/O shell: settings, FastAPI app, routes, per-call tasks, the ElevenLabs client."""
