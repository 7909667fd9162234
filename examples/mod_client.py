"""A game mod's side of `kibitz serve`: send the game's own state and events, read the companion's lines.

    python examples/mod_client.py --token kbz_...          # the player token `kibitz serve` printed

Any language with a WebSocket client can do this; the messages are in docs/protocol.schema.json. Here a pretend
platformer loses health, dies, and the player asks a question.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from websockets.asyncio.client import connect


async def main(url: str, token: str) -> None:
    async with connect(url) as ws:
        hello = {"type": "hello", "v": 1, "token": token, "watch": {"kind": "context", "title": "Hollow Knight"}}
        await ws.send(json.dumps(hello))
        print(json.loads(await ws.recv()))  # welcome (or an error saying what is wrong)

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "line":
                    print("companion:", message["text"])
                elif message["type"] in ("event", "error", "line_error"):
                    print(message)

        reader = asyncio.create_task(read())
        for health in (5, 4, 2, 1):
            await ws.send(json.dumps({"type": "context", "game": "Hollow Knight", "state": {"health": health}}))
            await asyncio.sleep(1.0)
        death = {"type": "death", "summary": "The knight died to the False Knight, the first boss."}
        context = {"type": "context", "game": "Hollow Knight", "state": {"health": 0}, "events": [death]}
        await ws.send(json.dumps(context))
        await asyncio.sleep(4.0)
        await ws.send(json.dumps({"type": "question", "text": "any tips for that boss?"}))
        await asyncio.sleep(8.0)
        reader.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8765/ws")
    parser.add_argument("--token", required=True, help="the player token kibitz serve printed")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.token))
