"""LLM backends chosen by name: the embedded llama.cpp model or any OpenAI-compatible server."""

from kibitz.brain.llm.base import BACKENDS, LLMBackend, make_backend

BACKENDS.register("llamacpp", "kibitz.brain.llm.llamacpp:LlamaCppBackend", "embedded GGUF model via llama-cpp-python")
BACKENDS.register(
    "openai",
    "kibitz.brain.llm.openai:OpenAIBackend",
    "any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, LM Studio, Ollama, cloud)",
)

__all__ = ["BACKENDS", "LLMBackend", "make_backend"]
