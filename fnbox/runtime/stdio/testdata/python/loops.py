"""A module that takes the event loop at import, as some libraries do."""
import asyncio
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    LOOP = asyncio.get_event_loop()


async def same_loop(event, context):
    return {"same": asyncio.get_running_loop() is LOOP}
