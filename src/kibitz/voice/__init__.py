"""Voice: hearing the player and speaking aloud (ASR, VAD, echo cancellation, TTS, playback)."""
