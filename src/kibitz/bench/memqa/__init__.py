"""`kibitz bench memory-qa`: does kibitz's long-term memory answer what players told it sessions ago?

Synthetic players (English and Korean) play several sessions of several games over weeks; everything goes
through kibitz's real memory paths (MemoryWriter, the fact and command rules, the SQLite store, the e5
embedder). Then they ask what only earlier sessions answer: single facts, sums over sessions, the last
session, their latest preferences. Scored: Recall@5 of the supporting memory, and answer accuracy of the model
with kibitz's top 5 memories next to the same model given the player's whole history.

- `world`: the data files and the Korean particle rule;
- `generate`: the seeded players, sessions and questions (the truth is decided here, independently of kibitz);
- `score`: support and answer matching, accepted forms of numbers, dates and levels;
- `run`: ingestion, recall, answers (kibitz and the full-history baseline), figures;
- `report`: the HTML page.
"""
