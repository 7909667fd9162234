"""The companion's mind: when to speak (policy), who it is (persona), what to say (prompts + LLM)."""
